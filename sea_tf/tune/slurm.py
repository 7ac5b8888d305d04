"""``sea-tf tune --slurm``: the grid's distillations as one SLURM array, then back to the tune.

Each pending distillation's resolved config is written into its step folder
(``OUT/distill/<key>/distill.config.yaml``, run folder ``OUT/distill/<key>/run``), their paths into
``OUT/slurm/distill.list``, and ``configs/slurm/tune-distill-array.sbatch`` is submitted with
``sbatch --array=0-(N-1)`` (task K: line K+1), its logs ``OUT/slurm/sea-tune-distill-<job>_<K>.out``.
The job id and each student's task and log go into ``OUT/slurm/array.json`` as soon as SLURM queues
the array, and each student's step card says ``running`` with them (``sea-tf tune --status OUT``).
The tune then follows the array in the queue (``squeue``; not ``sbatch --wait``, which looks only 2,
10, 42, 74 ... s after submission). When every task has ended, the tune reads each run's
``report.json`` like a local distillation's; a task that did not finish (failed, cancelled, timed
out) fails its own cells, naming its log, and a re-run of the tune resubmits only those students. An array that can never start (more CPUs per task
than any node has, a time limit above the partition's) is cancelled and refused in one line.
"""
from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from sea_tf import atomic
from sea_tf.config import Config
from sea_tf.errors import ConfigError, SlurmError
from sea_tf.tune.steps import CARD, read_step, step_folder

SBATCH = "slurm/tune-distill-array.sbatch"
LIST = "distill.list"
#: The last array submitted: ``{"job", "submitted", "sbatch", "list", "tasks": {key: {"task", "log"}}}``
ARRAY = "array.json"
#: The sbatch file's ``--job-name``; the logs are ``<JOB_NAME>-<array job id>_<task>.out``
JOB_NAME = "sea-tune-distill"
#: Pending reasons after which SLURM never starts a job by itself (squeue(1) "JOB REASON CODES";
#: PartitionConfig: more CPUs or memory per task than any node of the partition has)
NEVER_STARTS = frozenset({"PartitionConfig", "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit",
                          "InvalidAccount", "InvalidQOS"})
#: States after which an array task never runs again (squeue(1) "JOB STATE CODES"; no requeue asked)
ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                   "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"})
#: Seconds between two looks at the queue while the array runs: the first, and the most
POLL_S = (1.0, 15.0)


def run_folder(out: Path | str, key: str) -> Path:
    """Where the distillation of student ``key`` runs (the same folder here and on the cluster)."""
    return step_folder(out, "distill", key) / "run"


def config_path(out: Path | str, key: str) -> Path:
    return step_folder(out, "distill", key) / "distill.config.yaml"


def log_path(slurm_dir: Path, job: str, task: int) -> Path:
    """The log of array task ``task`` of job ``job`` (the ``--output`` pattern the tune gives sbatch)."""
    return slurm_dir / f"{JOB_NAME}-{job}_{task}.out"


def require_client() -> None:
    """Refuse ``--slurm`` before any work where this machine cannot submit a job.

    Raises
    ------
    SlurmError
        ``sbatch`` or ``squeue`` is not on ``PATH``, or this interpreter's path holds a space (the
        array's tasks run it as ``$SEA_TF``, which the sbatch file splits into words).
    """
    missing = [tool for tool in ("sbatch", "squeue") if shutil.which(tool) is None]
    if missing:
        raise SlurmError(f"--slurm: {' and '.join(missing)} not on PATH; run the tune where the SLURM client is installed (the "
                         "cluster's login node), or drop --slurm to distil on this machine")
    if any(ch.isspace() for ch in sys.executable):
        raise SlurmError(f"--slurm: the array's tasks run this Python as $SEA_TF, split into words, and its path "
                         f"{sys.executable!r} holds a space; use a virtual environment at a path without spaces")


def submit_distillations(out: Path, configs: Mapping[str, Config], cfg: Config, *, log: Callable[[str], object]) -> None:
    """Submit the distillations not finished yet as one array and wait until its every task has ended.

    A task that fails does not raise here: :func:`require_report` fails that student's step, naming
    the task's log, and the rest of the grid goes on.

    Parameters
    ----------
    out : Path
        The tune's output folder (on a file system the nodes share).
    configs : dict
        Student key → its resolved ``distill`` config (``out`` is set here).
    cfg : dict
        The tune config (``slurm_args``: extra sbatch arguments).
    log : callable
        Receives one line when the array is submitted, queued and ended.

    Raises
    ------
    SlurmError
        sbatch missing or refusing the submission (one line, sbatch's own message), an array of an
        earlier run still in the queue, or an array SLURM can never start (cancelled first).
    """
    from sea_tf.presets import preset_text
    from sea_tf.tune.run import distill_done

    pending = {key: c for key, c in configs.items() if not distill_done(run_folder(out, key), c)}
    if not pending:
        return
    slurm_dir = (out / "slurm").resolve()
    slurm_dir.mkdir(parents=True, exist_ok=True)
    _refuse_if_queued(slurm_dir)
    lines = []
    for key, dcfg in pending.items():
        path = config_path(out, key).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, yaml.safe_dump({**dcfg, "out": str(run_folder(out, key).resolve())}, sort_keys=False))
        lines.append(str(path))
    listing = slurm_dir / LIST
    atomic.write_text(listing, "\n".join(lines) + "\n")
    script = slurm_dir / Path(SBATCH).name
    atomic.write_text(script, preset_text(SBATCH))
    # The tasks run this very interpreter (the venv need not be on the nodes' PATH); the job gets the
    # submitter's environment (--export=ALL), so LIST and SEA_TF travel as variables, not in --export's
    # comma-separated list, where a comma in a path would split it.
    env = dict(os.environ, LIST=str(listing), SEA_TF=f"{sys.executable} -m sea_tf")
    cmd = ["sbatch", "--parsable", f"--array=0-{len(lines) - 1}", "--export=ALL",
           f"--output={slurm_dir}/{JOB_NAME}-%A_%a.out", *map(str, cfg["slurm_args"]), str(script)]
    log(f"slurm: {len(lines)} distillation(s) as one array: {' '.join(map(shlex.quote, cmd))}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=slurm_dir, env=env, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"sbatch could not be run ({getattr(exc, 'strerror', None) or exc}); --slurm needs a SLURM "
                         "client on this machine, or drop --slurm to distil here") from None
    # --parsable prints "<job id>[;<cluster>]"
    job = proc.stdout.strip().split(";")[0]
    if proc.returncode != 0 or not job:
        raise SlurmError(f"sbatch refused the array (exit {proc.returncode}): "
                         f"{(proc.stderr.strip().splitlines() or ['no message'])[-1]}; its arguments come from the "
                         "tune's slurm_args and configs/slurm/tune-distill-array.sbatch")
    tasks = {key: {"task": k, "log": str(log_path(slurm_dir, job, k))} for k, key in enumerate(pending)}
    atomic.write_json(slurm_dir / ARRAY, {"job": job, "submitted": _now(), "sbatch": cmd, "list": str(listing),
                                          "tasks": tasks})
    for key, task in tasks.items():
        _mark(out, key, "running", slurm={"job": job, **task})
    log(f"slurm: array {job} queued; logs {slurm_dir}/{JOB_NAME}-{job}_<task>.out; `sea-tf tune --status {out}` "
        "follows it")
    try:
        states = _wait(job, [str(a) for a in cfg["slurm_args"]])
    except SlurmError as exc:
        for key in tasks:
            _mark(out, key, "failed", error=str(exc))
        raise
    except KeyboardInterrupt:
        log(f"slurm: stopped waiting; array {job} goes on (`scancel {job}` stops it); re-run the tune when it has ended")
        raise
    counts = {state: states.count(state) for state in sorted(set(states))}
    log(f"slurm: array {job} ended: " + (", ".join(f"{n} {state.lower()}" for state, n in counts.items())
                                         or "gone from the queue"))


def _wait(job: str, slurm_args: list[str]) -> list[str]:
    """Wait until every task of ``job`` has ended; their final states (``[]``: the controller forgot the job).

    The queue is read every few seconds (more seldom as the wait grows, as ``sbatch --wait`` does, but
    at most :data:`POLL_S` apart: ``sbatch --wait`` sleeps 2, 8, then 32 s, a test array's whole length).
    An array SLURM will never start is cancelled and refused.
    """
    pause = POLL_S[0]
    while True:
        time.sleep(pause)
        pause = min(2 * pause, POLL_S[1])
        queue = _queue(job)
        if queue is None:
            continue     # the controller did not answer this time: ask again
        if all(state in ENDED for state, _ in queue):
            return [state for state, _ in queue]
        reasons = {reason for state, reason in queue if state == "PENDING"}
        if reasons and reasons <= NEVER_STARTS and not any(state == "RUNNING" for state, _ in queue):
            subprocess.run(["scancel", job], capture_output=True, text=True, timeout=60)
            raise SlurmError(f"SLURM will never start array {job}: its tasks wait for {', '.join(sorted(reasons))} "
                             "(more than any node of the partition has or allows: the sbatch file asks "
                             f"--cpus-per-task=8 --time=72:00:00, then the tune's slurm_args {slurm_args}); cancelled "
                             "it; set slurm_args to fit the partition, e.g. [--cpus-per-task=2, --time=4:00:00]")


def _queue(job: str) -> list[tuple[str, str]] | None:
    """``(state, reason)`` of each task of ``job`` the controller knows, ended ones included (``[]``: it has
    forgotten the job, long ended); None when squeue could not ask it."""
    try:
        proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T %r"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return [] if "Invalid job id" in proc.stderr else None
    return [(parts[0], parts[1] if len(parts) > 1 else "") for parts in map(str.split, proc.stdout.splitlines()) if parts]


def _refuse_if_queued(slurm_dir: Path) -> None:
    """Refuse to submit while the array of an earlier run (say, one stopped with Ctrl-C) is queued or running:
    its tasks would write the same run folders as the new one's."""
    job = _last_array(slurm_dir).get("job")
    if not job:
        return
    states = sorted({state for state, _ in _queue(str(job)) or [] if state not in ENDED})
    if states:
        raise SlurmError(f"array {job} of an earlier run of this tune is still {'/'.join(states).lower()} "
                         f"(squeue -j {job}); wait for it to end or `scancel {job}`, then re-run the tune")


def _last_array(slurm_dir: Path) -> dict[str, Any]:
    """``OUT/slurm/array.json``, or {} when no array was submitted (or its record cannot be read)."""
    try:
        record = json.loads((slurm_dir / ARRAY).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _mark(out: Path, key: str, status: str, *, slurm: Mapping[str, Any] | None = None, error: str | None = None) -> None:
    """The card of student ``key``'s distill step while the array has it: ``running`` with its task and log,
    or ``failed``; :func:`sea_tf.tune.steps.run_step` writes the step's own card when the array has ended."""
    folder = step_folder(out, "distill", key)
    card = read_step(folder) or {}
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / CARD, {"kind": "distill", "key": key, "status": status, "started": _now(),
                                      "host": socket.gethostname(), "pid": os.getpid(),
                                      "attempt": card.get("attempt", 0), "error": error,
                                      **({"slurm": dict(slurm)} if slurm else {})})


def task_log(out: Path | str, key: str) -> str:
    """Where the array task of student ``key`` logged (for a failure's message), from ``OUT/slurm/array.json``."""
    slurm_dir = (Path(out) / "slurm").resolve()
    record = _last_array(slurm_dir)
    task = (record.get("tasks") or {}).get(key)
    if not task:
        return f"{slurm_dir}/ (the last array, {record.get('job', 'none')}, had no task for it)"
    return str(task["log"])


def require_report(out: Path | str, key: str, dcfg: Config) -> Path:
    """The finished run's ``report.json``, or a ConfigError naming the task's log and its last line."""
    from sea_tf.tune.run import distill_done

    report = run_folder(out, key) / "report.json"
    if not distill_done(run_folder(out, key), dcfg):
        log = task_log(out, key)
        try:
            last = next((line.strip() for line in reversed(Path(log).read_text(errors="replace").splitlines())
                         if line.strip()), "(empty)")
        except OSError:
            last = "(not written: the task never started)"
        raise ConfigError(f"the SLURM task of {key} did not finish its distillation; its log {log} ends: {last[:300]}")
    return report
