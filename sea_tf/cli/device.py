"""``sea-tf device run``: benchmark exported models on boards over SSH (library: :mod:`sea_tf.remote`)."""
import sys
from pathlib import Path

from sea_tf.cli.common import add_command
from sea_tf.config import write_resolved
from sea_tf.errors import RemoteError


EPILOG = """\
Host keys are checked against --known-hosts; an unknown board is refused with its fingerprint and
the ssh-keyscan command that accepts it. Authentication uses --key or the ssh-agent, never a password.
Results: OUT/<user@host>/<model>.json, one per embedding model; `sea-tf report OUT/*/*.json` merges them.
"""


def register(subparsers):
    parser = subparsers.add_parser("device", help="run the board-side benchmark on remote boards over SSH",
                                   description="Run device/ (numpy + LiteRT) on Raspberry-Pi-class boards.")
    actions = parser.add_subparsers(dest="device_action", metavar="ACTION")
    run_parser, opts = add_command(actions, "run", "copy device/ and the artifacts to each host, benchmark, fetch the JSON",
                                   "device/run", run)
    run_parser.epilog = EPILOG
    run_parser.set_defaults(_command="device run")
    opts.add("--host", key="hosts", action="append", metavar="USER@HOST[:PORT]",
             help="board to run on (repeat for several)")
    opts.add("--port", key="port", type=int, help="SSH port for hosts given without :PORT")
    opts.add("--key", key="key", metavar="PATH", help="private key file (else ssh-agent / ~/.ssh keys)")
    opts.add("--known-hosts", key="known_hosts", metavar="PATH", help="known_hosts file with the boards' host keys")
    opts.add("--artifacts", key="artifacts", nargs="+", metavar="DIR|FILE",
             help="export directory or .tflite files (sidecars are taken along)")
    opts.add("--audio", key="audio", nargs="+", metavar="FILE", help="audio files to classify on the board")
    opts.add("--remote-dir", key="remote_dir", metavar="PATH", help="working directory on the board (relative to $HOME)")
    opts.add("--remote-python", key="remote_python", metavar="PY", help="Python on the board")
    opts.add("--setup", key="setup", action="store_true",
             help="create REMOTE_DIR/.venv from requirements-device.txt first (board needs internet)")
    opts.add("--out", key="out", metavar="DIR", help="local directory for the fetched JSONs")
    opts.add("--threads", key="bench.threads", type=int, metavar="N", help="interpreter threads on the board")
    opts.add("--runs", key="bench.runs", type=int, metavar="R", help="timed passes")
    opts.add("--warmup", key="bench.warmup", type=int, metavar="W", help="untimed passes first")
    opts.add("--hop-size", key="bench.hop_s", type=float, metavar="S", help="seconds between audio windows")
    opts.alias("--hop", key="bench.hop_s", type=float)
    opts.add("--connect-timeout", key="timeouts.connect_s", type=float, metavar="S", help="seconds to connect and authenticate")
    opts.add("--command-timeout", key="timeouts.command_s", type=float, metavar="S", help="seconds any remote command may run")


def run(cfg, args):
    from sea_tf import remote

    if not cfg["hosts"]:
        raise RemoteError("no --host given; e.g. --host pi@raspberrypi.local --artifacts OUT/export")
    hosts = [remote.parse_host(h, cfg["port"]) for h in cfg["hosts"]]
    run_plan = remote.plan(cfg["artifacts"], cfg["audio"])
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out, "device_run")
    b = cfg["bench"]
    bench_args = ["--threads", b["threads"], "--runs", b["runs"], "--warmup", b["warmup"], "--hop-size", b["hop_s"]]
    failures, partial = [], []
    for host in hosts:
        try:
            result = remote.run_on_host(
                host, run_plan, out, key_path=cfg["key"], known_hosts=cfg["known_hosts"],
                remote_dir=cfg["remote_dir"], remote_python=cfg["remote_python"], setup=cfg["setup"],
                bench_args=bench_args, connect_timeout=cfg["timeouts"]["connect_s"],
                command_timeout=cfg["timeouts"]["command_s"],
                log=print, err=lambda text: print(text, file=sys.stderr))
        except RemoteError as exc:
            if len(hosts) == 1:
                raise
            print(f"sea-tf device run: error: {exc}", file=sys.stderr)
            failures.append(host.label)
            continue
        for path in result.results:
            print(f"{host.label}: {path}" + (" (PARTIAL)" if result.partial else ""))
        if result.partial:
            partial.append(host.label)
    if failures:
        print(f"sea-tf device run: {len(failures)} of {len(hosts)} host(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 2
    if partial:
        print(f"sea-tf device run: partial results (some audio failed) from {', '.join(partial)}", file=sys.stderr)
        return 1
    return 0
