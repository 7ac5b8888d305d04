"""``sea-tf device listen``: ``device.listen`` on one board, its JSON lines streamed back live.

:func:`listen_boards` (the command's entry point: the resolved config) picks the model and the
board and runs :func:`listen_on_host`, which copies ``device/`` and the model (:func:`~sea_tf.remote.plan.listen_plan`
picks it) as a run does, then keeps the channel open: each line the board prints is written to a
local JSON-lines file as it arrives, and Ctrl-C here closes the board's stdin so that it stops and
sends its summary.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from sea_tf.config import Config, write_resolved
from sea_tf.errors import RemoteError
from sea_tf.remote.plan import DEVICE_FILES, listen_plan
from sea_tf.remote.run import _artifact_uploads, _device_dir, _indent, _upload, remote_dir_for
from sea_tf.remote.ssh import Connection, _drain, connect, execute
from sea_tf.ssh_hosts import Host, resolve_host


class ListenDisplay(Protocol):
    """What :func:`listen_boards` shows while a board listens (``sea-tf device listen``: the route, a live
    line per window and the events; :class:`PlainDisplay`: only the board's stderr)."""

    def start(self, host: Host, model: Path, classifier: Path | None, source: str, out: Path) -> None:
        """The session is about to start: ``model`` (+ ``classifier``) on ``source``, lines to ``out``."""

    def line(self, record: dict[str, Any]) -> None:
        """One JSON line of the board (a window, an event, at last the summary), already in ``out``."""

    def end(self) -> None:
        """The board's stream ended (with or without a summary)."""

    def error(self, text: str) -> None:
        """Text the board wrote on its stderr."""


class PlainDisplay:
    """:class:`ListenDisplay` for a library caller: the board's stderr on stderr, nothing else."""

    def start(self, host: Host, model: Path, classifier: Path | None, source: str, out: Path) -> None:
        """Not shown."""

    def line(self, record: dict[str, Any]) -> None:
        """Not shown (the line is in ``out``)."""

    def end(self) -> None:
        """Not shown."""

    def error(self, text: str) -> None:
        print(text, file=sys.stderr)


@dataclasses.dataclass
class ListenOutcome:
    """How one ``device listen`` session ended: the board, the local JSON-lines file and the board's summary."""
    host: Host
    out: Path
    summary: dict[str, Any]
    code: int | None
    interrupted: bool

    @property
    def ok(self) -> bool:
        """The board exited cleanly, or was stopped here (Ctrl-C) after a complete summary."""
        return self.code == 0 or (self.interrupted and self.summary["status"] == "complete")


def listen_boards(cfg: Config, *, display: ListenDisplay | None = None) -> ListenOutcome:
    """``sea-tf device listen``: ``device.listen`` on the board ``cfg["host"]``, its JSON lines streamed to ``cfg["out"]``.

    Parameters
    ----------
    cfg : dict
        The resolved ``device/listen`` config (``configs/device/defaults.yaml``;
        ``sea_tf.config.load("device/listen", host="pi@raspberrypi.local", artifacts=["OUT/export"])``).
    display : ListenDisplay, optional
        What to show while the board listens; None: :class:`PlainDisplay` (only the board's stderr).

    Returns
    -------
    ListenOutcome
        The board's summary (the last line of ``cfg["out"]``), its exit code and whether Ctrl-C here
        stopped it; the resolved config is written beside ``cfg["out"]``.

    Raises
    ------
    RemoteError
        No host given, no model among the artifacts, an SSH failure, or a board that ended without a summary.
    """
    if not cfg["host"]:
        raise RemoteError("no --host given; e.g. --host pi@raspberrypi.local --artifacts OUT/export")
    display = display or PlainDisplay()
    host = resolve_host(cfg["host"], port=cfg["port"], ssh_config=cfg["ssh_config"])
    model, classifier = listen_plan(cfg["artifacts"], model=cfg["model"])
    source = cfg["source"] or "default"
    listen_args = ["--hop-size", cfg["hop_s"], "--threads", cfg["threads"]]
    if cfg["duration_s"]:
        listen_args += ["--duration", cfg["duration_s"]]
    if cfg["realtime"]:
        listen_args.append("--realtime")
    for trigger in cfg["triggers"]:
        listen_args += ["--trigger", trigger]
    out = Path(cfg["out"])
    write_resolved(cfg, out.parent, out.stem)
    display.start(host, model, classifier, source, out)
    summary, code, interrupted = listen_on_host(
        host, model, classifier, out, source=source, listen_args=listen_args, key_path=cfg["key"],
        known_hosts=cfg["known_hosts"], remote_dir=cfg["remote_dir"], remote_python=cfg["remote_python"],
        connect_timeout=cfg["timeouts"]["connect_s"], stop_timeout=cfg["timeouts"]["stop_s"],
        keepalive_s=cfg["timeouts"]["keepalive_s"], on_line=display.line,
        err=display.error)
    display.end()
    if summary is None:
        raise RemoteError(f"{host.label}: device.listen ended (exit {code}) without a summary; see the remote "
                          "stderr above")
    return ListenOutcome(host, out, summary, code, interrupted)


def listen_on_host(host: Host, model: Path, classifier: Path | None, out_path: Path | str, *, source: str = "default",
                   listen_args: Sequence[object] = (), key_path: Path | str | None = None,
                   known_hosts: Path | str, remote_dir: str,
                   remote_python: str, connect_timeout: float, stop_timeout: float, keepalive_s: float,
                   on_line: Callable[[dict[str, Any]], object] | None = None,
                   err: Callable[[str], object] = print) -> tuple[dict[str, Any] | None, int | None, bool]:
    """Copy device/ and the models to ``host``, run ``python -m device.listen`` there, stream its JSON lines.

    Every line the board prints is appended to ``out_path`` as it arrives (and passed to
    ``on_line(dict)``). Ctrl-C here (KeyboardInterrupt) closes the board's stdin: ``device.listen
    --until-stdin-closes`` then stops like a local Ctrl-C and sends its summary, which is awaited
    for ``stop_timeout`` seconds. Returns ``(summary dict or None, remote exit code, interrupted)``.

    Parameters
    ----------
    source : str
        ``default`` / a device name or index (the board's microphone), or a local audio file (copied).
    listen_args : sequence of str
        More ``device.listen`` arguments (``--hop-size``, ``--duration``, ``--trigger``...).
    """
    remote_dir = remote_dir_for(remote_dir, host)
    rdir = shlex.quote(remote_dir)
    local_source = Path(source) if source not in ("-",) and Path(source).is_file() else None
    import paramiko

    if source == "-":
        raise RemoteError("--source -: stdin of the board is how sea-tf stops it; pass a file or a microphone")
    client = connect(host, key_path=key_path, known_hosts=known_hosts, timeout=connect_timeout, keepalive_s=keepalive_s)
    try:
        code, _, stderr = execute(client, f"mkdir -p {rdir}/device {rdir}/artifacts {rdir}/audio", 60, host=host)
        if code:
            raise RemoteError(f"{host.label}: cannot create {remote_dir} ({stderr.strip()}); pass a writable --remote-dir")
        device_dir = _device_dir()
        uploads = [(p, f"{remote_dir}/device/{p.name}") for pattern in DEVICE_FILES for p in sorted(device_dir.glob(pattern))]
        uploads += _artifact_uploads([model] + ([classifier] if classifier else []), remote_dir)
        if local_source:
            uploads.append((local_source, f"{remote_dir}/audio/{local_source.name}"))
        sftp = client.open_sftp()
        try:
            _upload(sftp, uploads, host, remote_dir)
        finally:
            sftp.close()
        args = ["--model", f"artifacts/{model.name}", "--source", f"audio/{local_source.name}" if local_source else source,
                "--jsonl", "-", "--until-stdin-closes", *map(str, listen_args)]
        if classifier:
            args += ["--classifier", f"artifacts/{classifier.name}"]
        command = f"cd {rdir} && exec {shlex.quote(remote_python)} -m device.listen " + " ".join(shlex.quote(a) for a in args)
        return _stream_lines(client, command, Path(out_path), host, stop_timeout=stop_timeout, on_line=on_line, err=err)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise RemoteError(f"{host.label}: the SSH connection failed ({type(exc).__name__}: {exc}); check the board's "
                          "sshd (its SFTP subsystem too) and network, then run again") from None
    finally:
        client.close()


def _stream_lines(client: Connection, command: str, out_path: Path, host: Host, *, stop_timeout: float,
                  on_line: Callable[[dict[str, Any]], object] | None,
                  err: Callable[[str], object]) -> tuple[dict[str, Any] | None, int | None, bool]:
    """Run ``command`` and write each line it prints to ``out_path`` until the channel closes; see
    :func:`listen_on_host`."""
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    summary, interrupted, pending, errors = None, False, bytearray(), bytearray()
    deadline, heard = None, time.monotonic()
    with open(out_path, "w") as out:
        while True:
            try:
                got = _drain(channel, pending, errors)
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    if not raw.strip():
                        continue
                    text = raw.decode(errors="replace")
                    out.write(text + "\n")
                    out.flush()
                    try:
                        record = json.loads(text)
                    except ValueError:
                        continue
                    if record.get("event") == "summary":
                        summary = record
                    if on_line is not None:
                        on_line(record)
                if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break  # closed, not just exited: the last output can come after the exit status
                if got:
                    heard = time.monotonic()
                elif time.monotonic() - heard > client.keepalive_s:  # silent: is the board still there?
                    if not client.alive():
                        channel.close()
                        err(f"{host.label}: the board stopped answering (no reply to an SSH keepalive within "
                            f"{2 * client.keepalive_s:g} s); the stream was closed")
                        break
                    heard = time.monotonic()
                if deadline is not None and time.monotonic() > deadline:
                    channel.close()
                    err(f"{host.label}: the board did not stop within {stop_timeout:g} s of Ctrl-C; the channel was closed")
                    break
                if not got:
                    time.sleep(0.02)
            except KeyboardInterrupt:
                if interrupted:            # a second Ctrl-C: stop waiting for the board's summary
                    channel.close()
                    break
                interrupted = True
                channel.shutdown_write()   # the board's stdin ends: device.listen stops and sends its summary
                deadline = time.monotonic() + stop_timeout
    code = channel.recv_exit_status() if channel.exit_status_ready() else None
    channel.close()
    text = errors.decode(errors="replace").strip()
    if text and (code not in (0, None) or summary is None):
        err(f"--- remote stderr ({host.label}) ---\n{_indent(text)}")
    return summary, code, interrupted
