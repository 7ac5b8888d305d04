"""A real one-node SLURM cluster for the tests: the session fixture :func:`slurm_cluster`.

The cluster is started once per test session with ``scripts/slurm/start.sh`` (munged, slurmctld
and slurmd with a private config and free ports, in a fresh directory) and stopped by
``scripts/slurm/stop.sh`` at the end. Tests submit the real ``configs/slurm/*.sbatch`` files with
``sbatch`` and follow them with ``scontrol show job`` (there is no accounting database, so no
``sacct``; the cluster keeps finished jobs visible for an hour). Jobs run as root with the
submitter's environment, so :attr:`SlurmCluster.env` puts this venv's ``bin/`` (``sea-tf``,
``python``) first on ``PATH``.

Usage::

    def test_array(slurm_cluster, tmp_path):
        job = slurm_cluster.submit(ROOT / "configs/slurm/x.sbatch", "--array=0-3",
                                   env={"OUT": str(tmp_path)})
        states = slurm_cluster.wait(job, timeout=120)   # {0: "COMPLETED", 1: ..., 3: ...}
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts" / "slurm"

#: JobState values after which a job or array task never runs again (slurm.conf has no requeue).
FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                      "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"})


def _fields(record: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``scontrol show job -o`` line (values without spaces suffice here)."""
    out = {}
    for token in record.split():
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


class SlurmCluster:
    """A started private cluster.

    Attributes
    ----------
    dir : Path
        The cluster's directory (``slurm.conf``, ``log/slurmctld.log``, ``log/slurmd.log``).
    conf : Path
        Its ``slurm.conf``: every SLURM command needs ``SLURM_CONF`` pointing here.
    env : dict[str, str]
        ``os.environ`` plus ``SLURM_CONF`` and this venv's ``bin/`` first on ``PATH``: pass it to any
        ``subprocess`` that calls ``sbatch``/``squeue``/``srun``/``scancel``.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.conf = self.dir / "slurm.conf"
        venv_bin = str(Path(sys.executable).parent)
        self.env = dict(os.environ, SLURM_CONF=str(self.conf),
                        PATH=os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]))

    def run(self, *argv: str, env: dict | None = None, check: bool = True, timeout: float = 60,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run a command (``squeue``, ``srun ...``) against this cluster; text output captured."""
        proc = subprocess.run([str(a) for a in argv], env=dict(self.env, **(env or {})), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def submit(self, script: str | os.PathLike, *sbatch_options: str, script_args: tuple = (),
               env: dict | None = None, cwd: str | os.PathLike | None = None) -> str:
        """``sbatch --parsable [options] script [script_args]``; returns the job id (e.g. ``"7"``).

        Parameters
        ----------
        script : path
            The batch script (e.g. the real ``configs/slurm/teacher-embed-array.sbatch``).
        *sbatch_options : str
            Options for sbatch itself, e.g. ``"--array=0-3"``, ``"--output=/tmp/x-%a.log"``.
        script_args : tuple
            Arguments given to the script after its path.
        env : dict, optional
            Extra environment variables for the job (sbatch exports the submit environment).
        cwd : path, optional
            Submission directory (the job's working directory and default output location).
        """
        proc = self.run("sbatch", "--parsable", *sbatch_options, script, *script_args, env=env, cwd=cwd)
        return proc.stdout.strip().split(";")[0]

    def tasks(self, job_id: str) -> dict:
        """States of a job or of every task of an array job, from ``scontrol show job -o``.

        Returns
        -------
        dict
            ``{array task id (int): JobState}`` for an array job (a still-pending range such as
            ``"2-3"`` is one string key), ``{None: JobState}`` for a plain job.
        """
        proc = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"scontrol show job {job_id}: {proc.stderr.strip() or proc.stdout.strip()}")
        states = {}
        for line in proc.stdout.splitlines():
            f = _fields(line)
            if "JobState" not in f:
                continue
            task = f.get("ArrayTaskId")
            key = None if task is None else (int(task) if task.isdigit() else task)
            states[key] = f["JobState"]
        return states

    def state(self, job_id: str) -> str:
        """JobState of one plain job or one array task (``"7_2"``), e.g. ``"RUNNING"``."""
        states = self.tasks(job_id)
        if len(states) != 1:
            raise AssertionError(f"job {job_id} has {len(states)} records {states}; ask tasks() for an array")
        return next(iter(states.values()))

    def wait(self, job_id: str, timeout: float = 300, poll_s: float = 0.5) -> dict:
        """Poll until the job (every task of an array) has finished; returns :meth:`tasks`.

        Raises ``AssertionError`` after ``timeout`` seconds with the last states and the end of
        slurmctld's log, so a hung job fails the test with something to read.
        """
        deadline = time.monotonic() + timeout
        while True:
            states = self.tasks(job_id)
            if states and all(s in FINISHED for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} not finished after {timeout} s: {states}\n"
                                     f"{self.log_tail()}")
            time.sleep(poll_s)

    def wait_running(self, job_id: str, timeout: float = 120, poll_s: float = 0.2) -> None:
        """Poll until the plain job or array task ``job_id`` is RUNNING (fails if it finished first)."""
        deadline = time.monotonic() + timeout
        while (state := self.state(job_id)) != "RUNNING":
            if state in FINISHED or time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {state}, never seen RUNNING\n{self.log_tail()}")
            time.sleep(poll_s)

    def cancel(self, job_id: str, signal: str | None = None) -> None:
        """``scancel [--signal=SIG] job_id`` (``"7_2"`` cancels one array task)."""
        self.run("scancel", *([f"--signal={signal}"] if signal else []), job_id)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of slurmctld's and slurmd's logs (for failure messages)."""
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.dir / "log" / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
            out.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(out)


def start_cluster(directory: Path) -> SlurmCluster:
    """Start a cluster in ``directory`` with ``scripts/slurm/start.sh``; ``RuntimeError`` with the
    script's reason when it cannot start."""
    proc = subprocess.run(["bash", str(SCRIPTS / "start.sh"), str(directory)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()[-1])
    return SlurmCluster(directory)


def stop_cluster(directory: Path) -> None:
    """Stop the cluster in ``directory`` (daemons killed by their pid files)."""
    subprocess.run(["bash", str(SCRIPTS / "stop.sh"), str(directory)], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running private one-node SLURM cluster for the whole session (:class:`SlurmCluster`).

    Skips with the reason only when the cluster cannot start (not root, packages absent and not
    installable; ``make test`` installs slurm-wlm + munge like sshd).
    """
    if os.geteuid() != 0:
        pytest.skip("the private SLURM cluster runs its daemons as root (SlurmUser=root); run the tests as root")
    # Not under pytest's tmp_path: munged runs as the munge user and cannot enter pytest's 0700
    # directories, so the cluster gets a world-traversable directory of its own under the temp dir.
    directory = Path(tempfile.mkdtemp(prefix="sea-tf-slurm-"))
    directory.chmod(0o755)
    try:
        cluster = start_cluster(directory)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        stop_cluster(directory)
        pytest.skip(f"the SLURM test cluster could not start (scripts/slurm/start.sh): {exc}")
    yield cluster
    stop_cluster(directory)
    shutil.rmtree(directory, ignore_errors=True)
