"""``sea-tf tune --slurm`` on the real one-node SLURM cluster (scripts/slurm/, tests/slurm_support.py).

A grid of two students (PCA d = 8 and 16 of a 32-d synthetic teacher, shards given: no teacher runs),
each distilled for a few steps by the real ``configs/slurm/tune-distill-array.sbatch``, exported as
fp32, classified on a tone dataset and benchmarked on this machine:

* the two distillations run as ONE array of two tasks, on the interpreter that runs the tune (the
  venv is not on ``PATH``: a task that ran ``sea-tf`` from ``PATH`` would fail); ``sea-tf tune
  --status`` shows both running as tasks of that array, with their logs, while it runs;
* one task is cancelled while it runs (a pre-empted node): the tune still finishes the other
  student's cells and fails the cancelled one's, naming its log ``sea-tune-distill-<job>_<task>.out``;
* a re-run resubmits that student alone (an array of one task) and the grid completes; a third run
  submits no job and runs no step;
* refusals: no ``sbatch`` on ``PATH`` (before any work, nothing written); resources no node has (SLURM
  would leave the array pending forever: the tune cancels it and says why).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from classify_support import write_tone_us8k
from distill_fixtures import make_dataset
from sea_tf.cli import main as cli_main
from slurm_support import SlurmCluster

pytestmark = pytest.mark.cluster  # a real SLURM cluster: its own .ci/run step

KEYS = {8: "sea-64.published.s0.random.pca8", 16: "sea-64.published.s0.random.pca16"}
LOG = "sea-tune-distill-{job}_{task}.out"

TUNE = {
    "task": "us8k",
    "grid": {"sampling": ["random"], "reduction": ["pca"], "d": [8, 16], "students": ["sea-64"],
             "head": ["published"], "modes": ["fp32"], "placements": ["auto"], "threads": [1], "xnnpack": [True]},
    "stages": {
        "sampling": {"config": None, "set": ["m=64", "group_rows=32"]},
        "reduce": {"config": None, "set": ["quality.n_heldout=20"]},
        "distill": {"config": "distill/demo", "set": ["train.epochs=2", "train.steps_per_epoch=3",
                                                      "train.validation_steps=1", "train.batch_size=16",
                                                      "data.block_rows=32", "data.shuffle_buffer=64"]},
        "export": {"config": "export/demo", "set": ["calibration.windows=20", "held_out.windows=10", "latency.runs=3"]},
        "classify": {"config": "classify/demo", "set": ["protocol.test_folds=[1]", "classifier.mlp.epochs=3"]},
        "device": {"config": "device/demo", "set": ["bench.runs=3", "bench.warmup=1"]},
    },
    # The node has 2 CPUs: one per task runs both at once (the sbatch file's 8 never would: see below).
    "slurm_args": ["--cpus-per-task=1"],
    "progress": False,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Teacher shards (160 windows of a 32-d teacher), a UrbanSound8K-layout tone dataset and the tune's YAML."""
    root = tmp_path_factory.mktemp("slurm-tune")
    shards = make_dataset(root / "upstream", n_sources=20, windows=8, d=8, shard_rows=64)["shards"]

    def tone(rng: np.random.Generator, f0: float) -> np.ndarray:
        t = np.arange(9600) / 8000
        return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)

    data = write_tone_us8k(root / "us8k", 8000, 5, tone, end=1.2)
    config = root / "tune.yaml"
    config.write_text(yaml.safe_dump(TUNE, sort_keys=False))
    return {"shards": shards, "data": data, "config": config}


def _argv(inputs: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sea_tf", "tune", "--config", str(inputs["config"]), "--data", str(inputs["data"]),
            "--shards", str(inputs["shards"]), "--out", str(out), "--slurm", *extra]


def _env(cluster: SlurmCluster, path: str) -> dict[str, str]:
    """The cluster's environment with ``PATH`` replaced (the array tasks inherit it)."""
    return dict(cluster.env, PATH=path)


def _system_path() -> str:
    """``PATH`` without this venv's ``bin/``: sbatch and squeue, but no ``sea-tf``."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin)
    assert shutil.which("sbatch", path=path) and not shutil.which("sea-tf", path=path), path
    return path


def _status(out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stdout) of ``sea-tf tune --status OUT``."""
    code = cli_main.main(["tune", "--status", str(out)])
    return code, capsys.readouterr().out


def _cards(out: Path) -> dict[str, str]:
    """Every step card's text, by path (a step that ran again rewrites its card)."""
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("step.json"))}


def _jobs(cluster: SlurmCluster) -> set[str]:
    """Every job the controller knows (pending, running or ended within MinJobAge)."""
    return set(cluster.run("squeue", "-h", "-t", "all", "-o", "%F").stdout.split())


def _cells(out: Path) -> dict[int, dict[str, Any]]:
    """tune.json's cells by the student's d (one cell per student in this grid)."""
    cells = json.loads((out / "tune.json").read_text())["cells"]
    assert len(cells) == 2, cells
    return {cell["reduction"]["d"]: cell for cell in cells}


def _logs(out: Path, proc_log: Path | None = None) -> str:
    files = sorted((out / "slurm").glob("*.out")) + ([proc_log] if proc_log else [])
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in files if p.exists())


def test_no_sbatch_is_refused_before_any_work(slurm_cluster: SlurmCluster, inputs: dict[str, Path],
                                              tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    out = tmp_path / "tune"
    proc = subprocess.run(_argv(inputs, out), env=_env(slurm_cluster, str(tmp_path / "bin")), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("sea-tf tune: error: --slurm: sbatch and squeue not on PATH; run the tune where "
                                   "the SLURM client is installed (the cluster's login node), or drop --slurm to "
                                   "distil on this machine"), proc.stderr
    assert not out.exists()


def test_an_array_no_node_can_run_is_cancelled_and_refused(slurm_cluster: SlurmCluster, inputs: dict[str, Path],
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The sbatch file's own --cpus-per-task=8 on this 2-CPU node: SLURM accepts the array and leaves it
    # pending for ever (reason PartitionConfig).
    out = tmp_path / "tune"
    before = _jobs(slurm_cluster)
    proc = subprocess.run(_argv(inputs, out, "--set", "slurm_args=[]"), env=_env(slurm_cluster, _system_path()),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    job = json.loads((out / "slurm" / "array.json").read_text())["job"]
    assert _jobs(slurm_cluster) - before == {job}
    line = proc.stderr.strip()
    assert line.startswith(f"sea-tf tune: error: SLURM will never start array {job}: its tasks wait for "
                           "PartitionConfig") and "cancelled it; set slurm_args" in line and "\n" not in line, line
    assert set(slurm_cluster.tasks(job).values()) == {"CANCELLED"}
    code, status = _status(out, capsys)
    assert code == 1 and status.count(f"failed: SLURM will never start array {job}") == 2, status
    assert not (out / "tune.json").exists()


def test_array_task_cancelled_then_resubmitted_alone_then_nothing(slurm_cluster: SlurmCluster, inputs: dict[str, Path],
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tune"
    env = _env(slurm_cluster, _system_path())
    before = _jobs(slurm_cluster)

    # 1. The tune in the background; its two distillations as one array, followed by --status.
    first_log = tmp_path / "tune-1.log"
    with open(first_log, "w") as fh:
        proc = subprocess.Popen(_argv(inputs, out), env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            array = out / "slurm" / "array.json"
            code, status = _status(out, capsys) if array.exists() else (None, "")
            if status.count(" running as SLURM task ") == 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, f"{status}\n{_logs(out, first_log)}"
            time.sleep(0.2)
        record = json.loads(array.read_text())
        job, tasks = record["job"], record["tasks"]
        assert sorted(tasks) == sorted(KEYS.values()) and sorted(t["task"] for t in tasks.values()) == [0, 1]
        slurm = (out / "slurm").resolve()
        assert code == 1 and "distill        0       0        2        0" in status, status
        for key, task in tasks.items():
            assert task["log"] == str(slurm / LOG.format(job=job, task=task["task"]))
            assert f"  distill {key}: running as SLURM task {job}_{task['task']}, log {task['log']}" in status, status
        assert "results: not written yet" in status

        # A pre-empted node: the d=16 student's task is cancelled while it runs.
        cancelled = tasks[KEYS[16]]["task"]
        slurm_cluster.wait_running(f"{job}_{cancelled}")
        slurm_cluster.cancel(f"{job}_{cancelled}")
        assert proc.wait(timeout=300) == 1, _logs(out, first_log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _jobs(slurm_cluster) - before == {job}, "one array for both students"
    assert slurm_cluster.tasks(job) == {1 - cancelled: "COMPLETED", cancelled: "CANCELLED"}, _logs(out, first_log)
    for key in tasks:   # every task logs where the tune said (slurmd opens the log before the script runs)
        assert Path(tasks[key]["log"]).is_file(), _logs(out, first_log)
    run8 = out / "distill" / KEYS[8] / "run"
    assert (run8 / "report.json").is_file() and (run8 / "student.keras").is_file()
    assert "student: " in Path(tasks[KEYS[8]]["log"]).read_text()
    cancelled_log = tasks[KEYS[16]]["log"]
    assert "CANCELLED" in Path(cancelled_log).read_text()

    cells = _cells(out)
    assert cells[8]["status"] == "done" and cells[8]["accuracy"] is not None and cells[8]["latency_ms"]["p50"] > 0
    assert cells[16]["status"] == "failed", cells[16]
    assert cells[16]["error"].startswith(f"the SLURM task of {KEYS[16]} did not finish its distillation; its log "
                                         f"{cancelled_log} ends: "), cells[16]
    assert "CANCELLED" in cells[16]["error"]
    code, status = _status(out, capsys)
    assert code == 1 and f"  distill {KEYS[16]}: failed: the SLURM task of {KEYS[16]}" in status, status
    cards = _cards(out)

    # 2. The re-run resubmits the cancelled student alone: a new array of one task.
    second = subprocess.run(_argv(inputs, out), env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr + _logs(out)
    rerun = json.loads((out / "slurm" / "array.json").read_text())
    assert rerun["job"] != job and _jobs(slurm_cluster) - before == {job, rerun["job"]}
    assert {k: t["task"] for k, t in rerun["tasks"].items()} == {KEYS[16]: 0}
    assert slurm_cluster.tasks(rerun["job"]) == {0: "COMPLETED"}
    assert "slurm: 1 distillation(s) as one array" in second.stdout
    for kind in ("distill", "export", "accuracy"):   # the d=8 student's steps were not run again
        card = next(path for path in cards if path.startswith(f"{kind}/{KEYS[8]}"))
        assert _cards(out)[card] == cards[card], card
    cells = _cells(out)
    assert [cells[d]["status"] for d in (8, 16)] == ["done", "done"], cells
    run16 = out / "distill" / KEYS[16] / "run"
    assert (run16 / "report.json").is_file() and (run16 / "student.keras").is_file()
    code, status = _status(out, capsys)
    assert code == 0 and "distill        2       0        0        0" in status and f"results: {out / 'tune.json'}" in status

    # 3. A finished tune: no job submitted, no step run, nothing rewritten but the results.
    cards, jobs, array = _cards(out), _jobs(slurm_cluster), (out / "slurm" / "array.json").read_text()
    third = subprocess.run(_argv(inputs, out), env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "slurm:" not in third.stdout and ": done in" not in third.stdout, third.stdout
    assert _jobs(slurm_cluster) == jobs and (out / "slurm" / "array.json").read_text() == array
    assert _cards(out) == cards


def test_an_array_still_queued_is_not_submitted_twice(slurm_cluster: SlurmCluster, inputs: dict[str, Path],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C while the array waits (here: for its --begin time) leaves it queued; a re-run must not
    # submit a second array writing the same run folders.
    out = tmp_path / "tune"
    env = _env(slurm_cluster, _system_path())
    args = ("--set", "slurm_args=[--cpus-per-task=1, --begin=now+600]")
    proc = subprocess.Popen(_argv(inputs, out, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    job = None
    try:
        deadline = time.monotonic() + 120
        while not (out / "slurm" / "array.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.2)
        job = json.loads((out / "slurm" / "array.json").read_text())["job"]
        proc.send_signal(signal.SIGINT)
        printed = proc.communicate(timeout=60)[0]
        assert proc.returncode == 130, printed
        assert f"slurm: stopped waiting; array {job} goes on (`scancel {job}` stops it)" in printed, printed
        code, status = _status(out, capsys)
        assert code == 1 and status.count(f"stopped as SLURM task {job}_") == 2, status   # the tune is gone

        jobs = _jobs(slurm_cluster)
        again = subprocess.run(_argv(inputs, out, *args), env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2, again.stdout + again.stderr
        assert again.stderr.strip() == (f"sea-tf tune: error: array {job} of an earlier run of this tune is still "
                                        f"pending (squeue -j {job}); wait for it to end or `scancel {job}`, then "
                                        "re-run the tune"), again.stderr
        assert _jobs(slurm_cluster) == jobs
    finally:
        if proc.poll() is None:
            proc.kill()
        if job is not None:
            slurm_cluster.cancel(job)
