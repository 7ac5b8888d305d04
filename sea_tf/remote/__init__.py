"""Run the board-side benchmark on remote machines over SSH (``sea-tf device run`` / ``device listen``).

For each host: connect with paramiko (host key checked against known_hosts, key or agent
authentication only), copy ``device/`` and the artifacts into a remote directory with SFTP,
optionally create a venv there from ``requirements-device.txt``, run ``python -m device.bench``
once per embedding model, and fetch its JSON into a fresh ``OUT/<user@host>/<run-id>/``. Nothing
about the remote host is ever written to known_hosts by sea-tf: an unknown host is refused with its
fingerprint and the command to accept it.

Under faults it tells the truth: a command's output is read until the channel closes (not just
until its exit status), a board that stops answering keepalives is an error within
``2 * keepalive_s`` seconds, a command that overruns is killed on the board with its whole
process group, no prompt is ever shown (a second authentication factor is an error), and every
SSH/SFTP failure is a :class:`~sea_tf.errors.RemoteError` of that host alone (docs/DEVICE_SSH.md).

The entry points are :func:`run_boards` (``sea-tf device run``: the resolved config in, each board's
result out) and :func:`listen_boards` (``sea-tf device listen``). Read top to bottom: :mod:`hosts` (known_hosts: which host keys are accepted) → :mod:`ssh` (connect,
run one command to its end) → :mod:`plan` (which models and audio go to the boards; no network) →
:mod:`run` (``device run`` on one board) → :mod:`listen` (``device listen``: a live stream from one
board). Which machine ``--host`` names is :mod:`sea_tf.ssh_hosts`; run ids are :mod:`sea_tf.runs`.

    from sea_tf import config, remote
    results = remote.run_boards(config.load("device/run", hosts=["pi@raspberrypi.local"], artifacts=["OUT/export"]))
    results["pi@raspberrypi.local"].results     # the fetched JSON files of that board
"""
from sea_tf.remote.hosts import KnownKeys, fingerprint, read_known_hosts
from sea_tf.remote.listen import ListenDisplay, ListenOutcome, PlainDisplay, listen_boards, listen_on_host
from sea_tf.remote.plan import DEVICE_FILES, REQUIREMENTS, RunPlan, listen_plan, plan
from sea_tf.remote.run import (BENCH_COMPLETE, BENCH_CRASH, BENCH_ERROR, BENCH_PARTIAL, BoardLines, HostResult,
                               PlainLines, Progress, remote_audio_name, remote_dir_for, run_boards, run_on_host)
from sea_tf.remote.ssh import KILL_AFTER_S, PROGRESS_RE, Connection, connect, execute
from sea_tf.ssh_hosts import Host, parse_host, resolve_host  # --host's meaning, as the CLI and tests name it

__all__ = [
    "run_boards", "listen_boards",
    "Host", "parse_host", "resolve_host",
    "KnownKeys", "fingerprint", "read_known_hosts",
    "Connection", "connect", "KILL_AFTER_S", "PROGRESS_RE", "execute",
    "DEVICE_FILES", "REQUIREMENTS", "RunPlan", "plan", "listen_plan",
    "HostResult", "Progress", "BoardLines", "PlainLines", "BENCH_COMPLETE", "BENCH_CRASH", "BENCH_ERROR", "BENCH_PARTIAL", "run_on_host",
    "remote_dir_for", "remote_audio_name",
    "ListenDisplay", "PlainDisplay", "ListenOutcome", "listen_on_host",
]
