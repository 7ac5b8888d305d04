"""``sea-tf device run`` (benchmark exported models on boards over SSH) and ``sea-tf device listen``
(a model on a board's microphone or a file, live); library: :mod:`sea_tf.remote`."""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, TextIO

from sea_tf.cli.common import Options, Subparsers, add_command
from sea_tf.config import Config
from sea_tf.errors import RemoteError

if TYPE_CHECKING:
    from sea_tf.ssh_hosts import Host


EPILOG = """\
Host keys are checked against --known-hosts; an unknown board is refused with its fingerprint and
the ssh-keyscan command that accepts it. Authentication uses --key or the ssh-agent, never a password.
--host may name a Host of the ssh_config file (--ssh-config, else ~/.ssh/config): its HostName,
User, Port, IdentityFile and ProxyJump are used as ssh would. Several --host run in parallel, with
one live line per board (on a terminal; elsewhere a line per finished stage on stdout).
Results: OUT/<user@host>/<run-id>/<model>.json, one per embedding model, in a fresh run directory
each time; `sea-tf report OUT` reads the latest run of each host (or name a run directory).
Exit code: 0 all complete, 1 some results partial, 2 a host failed (the others still ran).
"""


def _ssh_options(opts: Options, *, several: bool) -> None:
    """How to reach a board: --port, --ssh-config, --key, --known-hosts (after --host).

    ``several``: the command takes several --host (``device run``), which only changes the wording.
    """
    opts.add("--port", key="port", type=int,
             help="SSH port for hosts given without :PORT" if several else "SSH port when --host has no :PORT")
    opts.add("--ssh-config", key="ssh_config", metavar="PATH",
             help="OpenSSH client config whose Host entries --host may name (HostName, User, Port, IdentityFile, "
                  "ProxyJump); ~/.ssh/config when it exists" if several else
                  "OpenSSH client config whose Host entries --host may name; ~/.ssh/config when it exists")
    opts.add("--key", key="key", metavar="PATH", help="private key file (else ssh-agent / ~/.ssh keys)")
    opts.add("--known-hosts", key="known_hosts", metavar="PATH",
             help="known_hosts file with the boards' host keys" if several else
                  "known_hosts file with the board's host key")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("device", help="run the board-side benchmark on remote boards over SSH",
                                   description="Run device/ (numpy + LiteRT) on Raspberry-Pi-class boards.")
    actions = parser.add_subparsers(dest="device_action", metavar="ACTION")
    run_parser, opts = add_command(actions, "run", "copy device/ and the artifacts to each host, benchmark, fetch the JSON",
                                   "device/run", run)
    run_parser.epilog = EPILOG
    run_parser.set_defaults(_command="device run")
    opts.add("--host", key="hosts", action="append", metavar="USER@HOST[:PORT]|ALIAS",
             help="board to run on, or a Host of the ssh_config file (repeat for several: they run in parallel)")
    _ssh_options(opts, several=True)
    opts.add("--artifacts", key="artifacts", nargs="+", metavar="DIR|FILE",
             help="export directory or .tflite files (sidecars are taken along)")
    opts.add("--audio", key="audio", nargs="+", metavar="FILE", help="audio files to classify on the board")
    opts.add("--remote-dir", key="remote_dir", metavar="PATH",
             help="working directory on the board (relative to $HOME; {host} becomes user@host_port, for boards "
                  "sharing a home directory)")
    opts.add("--remote-python", key="remote_python", metavar="PY", help="Python on the board")
    opts.add("--setup", key="setup", action="store_true",
             help="create REMOTE_DIR/.venv from requirements-device.txt first (board needs internet)")
    opts.add("--out", key="out", metavar="DIR", help="local directory for the fetched JSONs")
    opts.add("--threads", key="bench.threads", type=int, metavar="N", help="interpreter threads on the board")
    opts.add("--no-xnnpack", key="bench.xnnpack", action="store_false",
             help="run LiteRT's builtin kernels without the XNNPACK delegate on the board")
    opts.add("--runs", key="bench.runs", type=int, metavar="R", help="timed passes")
    opts.add("--warmup", key="bench.warmup", type=int, metavar="W", help="untimed passes first")
    opts.add("--hop-size", key="bench.hop_s", type=float, metavar="S", help="seconds between audio windows")
    opts.alias("--hop", key="bench.hop_s", type=float)
    opts.add("--connect-timeout", key="timeouts.connect_s", type=float, metavar="S", help="seconds to connect and authenticate")
    opts.add("--command-timeout", key="timeouts.command_s", type=float, metavar="S",
             help="seconds any remote command may run (then its process group is killed on the board)")
    opts.add("--keepalive", key="timeouts.keepalive_s", type=float, metavar="S",
             help="seconds of silence before the board must answer a keepalive (within as long again)")
    register_listen(actions)


LISTEN_EPILOG = """\
The board runs python -m device.listen (numpy + LiteRT, + sounddevice for a microphone) on --source:
one of its microphones or a local audio file copied there. Each window's
JSON line is written to --out-file as it arrives; the last line is the board's summary. Ctrl-C stops the
board too (its stdin is closed) and waits for that summary.
"""


def register_listen(actions: Subparsers) -> None:
    parser, opts = add_command(actions, "listen", "run device.listen on a board and stream its JSON lines back live",
                               "device/listen", listen)
    parser.epilog = LISTEN_EPILOG
    parser.set_defaults(_command="device listen")
    opts.add("--host", key="host", metavar="USER@HOST[:PORT]|ALIAS", help="board to listen on, or a Host of the ssh_config file")
    _ssh_options(opts, several=False)
    opts.add("--artifacts", key="artifacts", nargs="+", metavar="DIR|FILE",
             help="export directory or .tflite files: the embedding model and a classifier for it")
    opts.add("--model", key="model", metavar="NAME", help="embedding model to use when --artifacts holds several")
    opts.add("--source", key="source", metavar="SRC",
             help="a microphone on the board by PortAudio name or index (none: its system one), or a local WAV/FLAC file")
    opts.add("--realtime", key="realtime", action="store_true", help="pace a file source at real time")
    opts.add("--duration", key="duration_s", type=float, metavar="S", help="seconds of audio to listen to")
    opts.add("--hop-size", key="hop_s", type=float, metavar="S", help="seconds between window starts")
    opts.add("--threads", key="threads", type=int, metavar="N", help="interpreter threads on the board")
    opts.add("--trigger", key="triggers", action="append", metavar="CLASS:P[:N]",
             help="onset/offset events when CLASS stays >= P for N windows (repeatable)")
    opts.add("--remote-dir", key="remote_dir", metavar="PATH", help="working directory on the board (relative to $HOME)")
    opts.add("--remote-python", key="remote_python", metavar="PY", help="Python on the board")
    opts.add("--out-file", key="out", metavar="FILE.jsonl", help="local file for the streamed JSON lines")
    opts.alias("--out", key="out")
    opts.add("--connect-timeout", key="timeouts.connect_s", type=float, metavar="S", help="seconds to connect and authenticate")
    opts.add("--keepalive", key="timeouts.keepalive_s", type=float, metavar="S",
             help="seconds of silence before the board must answer a keepalive (within as long again)")


def listen(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf import remote

    outcome = remote.listen_boards(cfg, display=_ListenLines())
    summary = outcome.summary
    lat = summary["latency_ms"]["compute"]
    print(f"{outcome.host.label}: {summary['windows']} windows, {summary['audio_s']:.1f} s of audio, stopped by "
          f"{summary['stopped_by']}; real-time factor {summary['real_time_factor'] or 0:.3f}; compute p50 "
          f"{lat.get('p50', float('nan')):.2f} ms; overruns {summary['overruns']}; {outcome.out}")
    if summary["error"]:
        print(f"sea-tf device listen: the board reported: {summary['error']}", file=sys.stderr)
    return 0 if outcome.ok else 1


class _ListenLines:
    """``sea-tf device listen``'s display (a :class:`sea_tf.remote.ListenDisplay`): the route on stderr, then
    on a terminal one line redrawn per window (time, top class, latency), and each onset/offset event."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.label = ""

    def start(self, host: Host, model: Path, classifier: Path | None, source: str, out: Path) -> None:
        self.label = host.label
        print(f"{host.route}: device.listen {model.name}" + (f" + {classifier.name}" if classifier else "")
              + f" on {source} -> {out}", file=sys.stderr)

    def line(self, record: dict[str, Any]) -> None:
        if self.live and "top" in record:
            top = record["top"][0] if record["top"] else ["-", 0.0]
            print(f"\r{record['t']:8.1f} s  {top[0]:<24} {top[1]:.2f}  {record['latency_ms']:7.1f} ms   ",
                  end="", file=sys.stderr, flush=True)
        elif record.get("event") in ("onset", "offset"):
            print(f"{'' if not self.live else chr(10)}{self.label}: {record['event']} {record['class']} at "
                  f"{record['t']} s", file=sys.stderr)

    def end(self) -> None:
        if self.live:
            print(file=sys.stderr)

    def error(self, text: str) -> None:
        print(text, file=sys.stderr)


class LiveLines:
    """One status line per board while ``sea-tf device run`` works on all of them at once.

    On a terminal the lines are redrawn in place on stderr; elsewhere (a log file, CI) each stage
    a board finishes is printed once on stdout (``copy 9/9``, ``... timing 100/100``, ``... file
    1/2 windows 31/31``), so a log says what each board did without every window count.
    ``update`` and ``print`` may be called from several threads.
    """

    def __init__(self, labels: Iterable[str], *, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.labels = list(labels)
        self.text = dict.fromkeys(self.labels, "waiting")
        self.lock = threading.Lock()
        self.drawn = 0

    def update(self, label: str, stage: str, done: int | None = None, total: int | None = None) -> None:
        """Board ``label`` is at ``stage`` (``done`` of ``total`` items; ``total`` None: unknown yet)."""
        text = stage if done is None else f"{stage} {done}/{'?' if total is None else total}"
        with self.lock:
            self.text[label] = text
            if self.tty:
                self._redraw()
            elif done is None or done == total:
                print(f"{label}: {text}", flush=True)

    def print(self, text: str, *, file: TextIO | None = None) -> None:
        """Print ``text`` above the live lines (which are drawn again below it)."""
        with self.lock:
            if self.tty and self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # up to the first live line, clear to the end
                self.drawn = 0
            print(text, file=file or sys.stdout, flush=True)
            if self.tty:
                self._redraw()

    def _redraw(self) -> None:
        """Draw every board's line again, over the ones drawn before."""
        width = max(20, shutil.get_terminal_size().columns - 1)
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")
        for label in self.labels:
            self.stream.write("\x1b[2K" + f"{label}: {self.text[label]}"[:width] + "\n")
        self.stream.flush()
        self.drawn = len(self.labels)


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf import remote

    results = remote.run_boards(cfg, lines=LiveLines)
    failures: list[str] = []
    partial: list[str] = []
    for label, result in results.items():
        if isinstance(result, RemoteError):
            print(f"sea-tf device run: error: {result}", file=sys.stderr)
            failures.append(label)
            continue
        for path in result.results:
            print(f"{label}: {path}" + (" (PARTIAL)" if result.partial else ""))
        if result.partial:
            partial.append(label)
    if failures:
        print(f"sea-tf device run: {len(failures)} of {len(results)} host(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 2
    if partial:
        print(f"sea-tf device run: partial results (some audio failed) from {', '.join(partial)}", file=sys.stderr)
        return 1
    return 0
