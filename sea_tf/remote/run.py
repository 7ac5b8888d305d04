"""``sea-tf device run``: on each board, copy device/ and the models, (set up,) bench each model, fetch its JSON.

:func:`run_boards` (the command's entry point: the resolved config) runs :func:`run_on_host` on every
board at once, each in a thread. :func:`run_on_host` connects (:mod:`~sea_tf.remote.ssh`), copies ``device/`` and what the
:class:`~sea_tf.remote.plan.RunPlan` needs into a remote directory with SFTP, optionally creates a
venv there from ``requirements-device.txt``, runs ``python -m device.bench`` once per embedding
model and fetches its JSON into a fresh ``OUT/<user@host>/<run-id>/`` (:mod:`sea_tf.runs`).
Every SSH/SFTP failure is a :class:`~sea_tf.errors.RemoteError` of that host alone, so the other
boards of a run go on.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import re
import shlex
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence, TextIO

from sea_tf import atomic
from sea_tf.config import Config, write_resolved
from sea_tf.errors import RemoteError
from sea_tf.remote.plan import DEVICE_FILES, REQUIREMENTS, RunPlan, plan
from sea_tf.remote.ssh import PROGRESS_RE, Connection, connect, execute
from sea_tf.runs import new_run_id
from sea_tf.ssh_hosts import Host, resolve_host

if TYPE_CHECKING:  # paramiko is imported when a board is contacted, not with the package
    import paramiko


class Progress(Protocol):
    """``progress(stage, done=None, total=None)``: told what happens on a board as it happens (see
    :func:`run_on_host`); ``total`` is None while unknown."""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> object: ...


def _no_progress(stage: str, done: int | None = None, total: int | None = None) -> None:
    """A :class:`Progress` that shows nothing."""


def _device_dir() -> Path:
    """The local ``device/`` package, the files copied to the board."""
    spec = importlib.util.find_spec("device")  # located, never imported: device/ is the board's world
    if spec is None or not spec.submodule_search_locations:
        raise RemoteError("the device/ package cannot be found; reinstall sea-tf (make install)")
    return Path(list(spec.submodule_search_locations)[0])


@dataclasses.dataclass
class HostResult:
    """What one host produced: local JSON paths, and whether every run was complete."""
    host: Host
    results: list[Path]
    partial: bool = False


#: ``python -m device.bench`` exit codes (device/bench.py): complete, partial, an error it reported
#: (DeviceError: one line on stderr), and 1, what Python exits with on an uncaught exception
BENCH_COMPLETE, BENCH_CRASH, BENCH_ERROR, BENCH_PARTIAL = 0, 1, 2, 3


class BoardLines(Protocol):
    """Where :func:`run_boards` tells what each board does (``sea-tf device run`` draws one live line per
    board: :class:`sea_tf.cli.device.LiveLines`). Called from the boards' threads."""

    def update(self, label: str, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Board ``label`` is at ``stage`` (``done`` of ``total`` items; ``total`` None: unknown yet)."""

    def print(self, text: str, *, file: TextIO | None = None) -> None:
        """Print one line (a fetched result, a board's stderr) on ``file`` (None: stdout)."""


class PlainLines:
    """:class:`BoardLines` for a library caller: lines are printed as they come, stages are not shown."""

    def __init__(self, labels: Iterable[str]) -> None:
        self.labels = list(labels)

    def update(self, label: str, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Stages are not shown."""

    def print(self, text: str, *, file: TextIO | None = None) -> None:
        print(text, file=file or sys.stdout, flush=True)


def run_boards(cfg: Config, *, lines: Callable[[list[str]], BoardLines] = PlainLines) -> dict[str, HostResult | RemoteError]:
    """``sea-tf device run``: bench the exported models on every board of ``cfg["hosts"]``, in parallel.

    Parameters
    ----------
    cfg : dict
        The resolved ``device/run`` config (``configs/device/defaults.yaml``;
        ``sea_tf.config.load("device/run", hosts=["pi@raspberrypi.local"], artifacts=["OUT/export"])``).
    lines : callable
        Builds the display from the boards' labels (``user@host[:port]``, in ``cfg["hosts"]`` order).

    Returns
    -------
    dict
        Board label -> its :class:`HostResult`, or the :class:`RemoteError` that stopped it when several
        boards ran (the others still ran), in ``cfg["hosts"]`` order. All boards of one call share one
        run id; the resolved config is written as ``OUT/device_run.config.yaml``.

    Raises
    ------
    RemoteError
        No host given, a board named twice, nothing to run (:func:`~sea_tf.remote.plan.plan`), or the
        failure of the only board.
    """
    if not cfg["hosts"]:
        raise RemoteError("no --host given; e.g. --host pi@raspberrypi.local --artifacts OUT/export")
    hosts = [resolve_host(h, port=cfg["port"], ssh_config=cfg["ssh_config"]) for h in cfg["hosts"]]
    labels = [host.label for host in hosts]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:  # one result folder and one remote directory per board: two runs on one would overwrite each other
        raise RemoteError(f"--host: {', '.join(twice)} is named more than once ({', '.join(cfg['hosts'])}); "
                          "give each board once")
    run_plan = plan(cfg["artifacts"], audio=cfg["audio"])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out, "device_run")
    b = cfg["bench"]
    bench_args = ["--threads", b["threads"], "--runs", b["runs"], "--warmup", b["warmup"], "--hop-size", b["hop_s"],
                  *([] if b["xnnpack"] else ["--no-xnnpack"])]
    run_id = new_run_id()  # one per invocation: the results of all hosts of this run share it
    live = lines(labels)
    outcome: dict[str, HostResult | BaseException] = {}

    def on_host(host: Host) -> None:
        try:
            outcome[host.label] = run_on_host(
                host, run_plan, out, key_path=cfg["key"], known_hosts=cfg["known_hosts"],
                remote_dir=cfg["remote_dir"], remote_python=cfg["remote_python"], setup=cfg["setup"],
                bench_args=bench_args, connect_timeout=cfg["timeouts"]["connect_s"],
                command_timeout=cfg["timeouts"]["command_s"], keepalive_s=cfg["timeouts"]["keepalive_s"],
                run_id=run_id, log=live.print, err=lambda text: live.print(text, file=sys.stderr),
                progress=functools.partial(live.update, host.label))
            live.update(host.label, "done")
        except RemoteError as exc:
            outcome[host.label] = exc
            live.update(host.label, "FAILED")
        except BaseException as exc:  # noqa: BLE001 - a bug in one board's thread is re-raised in the main thread
            outcome[host.label] = exc

    # Boards in parallel: a run on several boards takes as long as the slowest, not the sum. Daemon
    # threads, joined with a timeout, so that Ctrl-C reaches this thread at once.
    threads = [threading.Thread(target=on_host, args=(host,), name=f"device run {host.label}", daemon=True)
               for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    results: dict[str, HostResult | RemoteError] = {}
    for host in hosts:
        result = outcome[host.label]  # every thread records its board's outcome, whatever happened
        if isinstance(result, RemoteError) and len(hosts) == 1:
            raise result
        if isinstance(result, BaseException) and not isinstance(result, RemoteError):
            raise result
        results[host.label] = result
    return results


def run_on_host(host: Host, run_plan: RunPlan, out_dir: Path | str, *, key_path: Path | str | None = None,
                known_hosts: Path | str, remote_dir: str,
                remote_python: str, setup: bool, bench_args: Sequence[object] = (),
                connect_timeout: float = 10.0, command_timeout: float = 900.0, keepalive_s: float,
                run_id: str | None = None, log: Callable[[str], object] = print, err: Callable[[str], object] = print,
                progress: Progress | None = None) -> HostResult:
    """Copy, (set up,) run and fetch on one host; returns a :class:`HostResult`.

    ``remote_dir`` may hold ``{host}``, replaced by the board's ``user@host[:port]`` (boards that
    share a home directory, over NFS say, then do not overwrite each other's files).
    ``progress(stage, done=None, total=None)``, when given, is told what happens as it happens:
    ``connect``, ``copy`` (files), each model's start, ``timing`` passes and ``file K/N windows``
    from the board's ``device.bench --progress`` lines (``total`` None while unknown); threads
    may call it for several hosts at once.

    Results go to ``out_dir/<user@host>/<run_id>/<model>.json`` (a fresh directory per run, so a
    report never mixes in an earlier run's files). The remote stdout (the bench table) goes to
    ``log``; on a remote failure the remote stderr goes to ``err`` and a :class:`RemoteError` is
    raised. Every SSH or SFTP failure (paramiko's exceptions, socket errors) is a
    :class:`RemoteError` naming the host and what was being done, so the other hosts go on.
    """
    import paramiko

    remote_dir = remote_dir_for(remote_dir, host)
    run_dir = Path(out_dir) / _safe(host.label) / (run_id or new_run_id())
    progress = progress or _no_progress
    progress("connect")
    client = connect(host, key_path=key_path, known_hosts=known_hosts, timeout=connect_timeout, keepalive_s=keepalive_s)
    try:
        return _run_on_host(client, host, run_plan, run_dir, remote_dir=remote_dir, remote_python=remote_python,
                            setup=setup, bench_args=bench_args, command_timeout=command_timeout, log=log, err=err,
                            progress=progress)
    except RemoteError:
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            raise RemoteError(f"{host.label}: the board stopped answering ({type(exc).__name__}; nothing for "
                              f"{2 * keepalive_s:g} s); check its power and network") from None
        raise RemoteError(f"{host.label}: the SSH connection failed ({type(exc).__name__}: {exc}); check the board's "
                          "sshd (its SFTP subsystem too) and network, then run again") from None
    finally:
        client.close()


def remote_dir_for(remote_dir: str, host: Host) -> str:
    """The board's working directory: ``~/`` dropped (SFTP and the shell start in $HOME), ``{host}``
    replaced by ``user@host[:port]`` made safe for a path."""
    remote_dir = remote_dir[2:] if remote_dir.startswith("~/") else remote_dir
    return remote_dir.replace("{host}", _safe(host.label))


def _run_on_host(client: Connection, host: Host, run_plan: RunPlan, run_dir: Path, *, remote_dir: str,
                 remote_python: str, setup: bool, bench_args: Sequence[object], command_timeout: float,
                 log: Callable[[str], object], err: Callable[[str], object], progress: Progress) -> HostResult:
    """:func:`run_on_host` once connected: create the directories, copy, set up, run each model, fetch."""
    rdir = shlex.quote(remote_dir)
    audio = {a: remote_audio_name(a) for a in run_plan.audio}
    folders = ["device", "artifacts", "results", *sorted({str(Path(name).parent) for name in audio.values()})]
    code, _, stderr = execute(client, "mkdir -p " + " ".join(f"{rdir}/{shlex.quote(f)}" for f in folders),
                              command_timeout, host=host)
    if code:
        raise RemoteError(f"{host.label}: cannot create {remote_dir} ({stderr.strip()}); pass a writable --remote-dir")
    device_dir = _device_dir()
    uploads = [(p, f"{remote_dir}/device/{p.name}") for pattern in DEVICE_FILES
               for p in sorted(device_dir.glob(pattern))]
    requirements = device_dir.parent / REQUIREMENTS
    if requirements.exists():
        uploads.append((requirements, f"{remote_dir}/{REQUIREMENTS}"))
    needed = run_plan.embeddings + sorted({c for m in run_plan.embeddings if (c := run_plan.classifier_for(m)) is not None})
    uploads += _artifact_uploads(needed, remote_dir)
    uploads += [(a, f"{remote_dir}/{name}") for a, name in audio.items()]
    sftp = client.open_sftp()
    _upload(sftp, uploads, host, remote_dir, progress=progress)

    python = remote_python
    if setup:
        if not requirements.exists():
            raise RemoteError(f"{requirements}: not found, so --setup cannot create the board's venv")
        log(f"{host.label}: creating {remote_dir}/.venv from {REQUIREMENTS} (needs the board's internet access)")
        code, _, stderr = execute(
            client, f"cd {rdir} && {shlex.quote(remote_python)} -m venv .venv && "
                    f".venv/bin/python -m pip install -q -r {REQUIREMENTS}", command_timeout, host=host)
        if code:
            err(_indent(stderr))
            raise RemoteError(f"{host.label}: --setup failed (exit {code}, remote stderr above); install "
                              f"python3-venv on the board or check its internet access")
        python = ".venv/bin/python"
    code, stdout, stderr = execute(client, f"cd {rdir} && {shlex.quote(python)} -c 'import sys; print(sys.version)'",
                                   command_timeout, host=host)
    if code:
        raise RemoteError(f"{host.label}: {python} is not runnable on the board (exit {code}: {stderr.strip()[-200:]}); "
                          "install Python 3, pass --remote-python, or use --setup")

    result = HostResult(host, [])
    for number, model in enumerate(run_plan.embeddings, 1):
        name = f"{model.name} ({number}/{len(run_plan.embeddings)})"

        def on_line(line: str, name: str = name) -> None:
            match = PROGRESS_RE.fullmatch(line.strip())
            if match:
                what, done, total = match.groups()
                progress(f"{name} {what}", int(done), None if total == "?" else int(total))

        remote_json = f"results/{model.stem}.json"
        args = ["--model", f"artifacts/{model.name}"]
        classifier = run_plan.classifier_for(model)
        if classifier:
            args += ["--classifier", f"artifacts/{classifier.name}"]
        if audio:
            args += ["--audio", *audio.values()]
        args += [*map(str, bench_args), "--progress", "--label", host.host, "--out-file", remote_json]
        command = f"cd {rdir} && rm -f {shlex.quote(remote_json)} && {shlex.quote(python)} -m device.bench " + \
                  " ".join(shlex.quote(a) for a in args)
        log(f"{host.label}: {model.name}")
        progress(f"{name} start")
        code, stdout, stderr = execute(client, command, command_timeout, host=host, on_stderr_line=on_line)
        log(stdout.rstrip())
        if code not in (BENCH_COMPLETE, BENCH_PARTIAL):
            err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
            if code == BENCH_CRASH:
                raise RemoteError(f"{host.label}: device.bench crashed on {model.name} (exit 1, an uncaught exception; "
                                  "its traceback is in the remote stderr above: please report it)")
            raise RemoteError(f"{host.label}: device.bench failed on {model.name} (exit {code}; remote stderr above)")
        try:
            with sftp.open(f"{remote_dir}/{remote_json}") as remote_file:
                data = remote_file.read()
        except OSError as exc:
            raise RemoteError(f"{host.label}: the result {remote_dir}/{remote_json} could not be fetched ({exc})") from None
        local = run_dir / f"{model.stem}.json"
        atomic.write_bytes(local, data)
        result.results.append(local)
        if code == BENCH_PARTIAL:
            err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
            result.partial = True
    return result


def remote_audio_name(path: Path | str) -> str:
    """Where a local audio file goes on the board: ``audio/<hash>/<name>``, the hash (sha256 of the
    absolute local path, 10 hex digits) keeping ``a/x.wav`` and ``b/x.wav`` apart."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:10]
    return f"audio/{digest}/{Path(path).name}"


def _indent(text: str) -> str:
    """``text`` (remote output) with each line behind ``  | `` (``  | (empty)`` for none), to set it apart."""
    return "\n".join("  | " + line for line in text.rstrip().splitlines()) or "  | (empty)"


def _safe(text: str) -> str:
    """``text`` (a host label) as a file name: runs of other characters become one ``_``."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text)


def _artifact_uploads(models: Iterable[Path], remote_dir: str) -> list[tuple[Path, str]]:
    """``(local, remote)`` pairs of each exported model and its JSON sidecar, into ``REMOTE_DIR/artifacts``."""
    pairs: list[tuple[Path, str]] = []
    for model in models:
        pairs.append((model, f"{remote_dir}/artifacts/{model.name}"))
        sidecar = model.with_suffix(".json")
        if sidecar.exists():
            pairs.append((sidecar, f"{remote_dir}/artifacts/{sidecar.name}"))
    return pairs


def _upload(sftp: paramiko.SFTPClient, uploads: Sequence[tuple[Path, str]], host: Host, remote_dir: str, *,
            progress: Progress | None = None) -> None:
    """Copy every ``(local, remote)`` pair over ``sftp``; a failed copy is a RemoteError naming the file.
    ``progress("copy", done, total)`` when given, else a tqdm bar."""
    from tqdm import tqdm

    if progress is None:
        uploads = tqdm(uploads, desc=f"copy to {host.label}", unit="file", leave=False)
    for done, (local, remote) in enumerate(uploads, 1):
        if progress is not None:
            progress("copy", done, len(uploads))
        try:
            sftp.put(str(local), remote)
        except (OSError, EOFError) as exc:
            raise RemoteError(f"{host.label}: copying {local} to {remote} failed ({exc}); check free space on "
                              f"the board (df -h {remote_dir}) and that the directory is writable") from None
