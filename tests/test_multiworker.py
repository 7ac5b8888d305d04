"""MultiWorkerMirroredStrategy for real: two ``sea-tf distill`` processes on 127.0.0.1 (TF_CONFIG).

The workers talk over gRPC on free local ports, on the CPU. Each test starts real processes; a
worker's output goes to ``worker-<i>.log`` beside its run so that a failure shows what it said.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from distill_fixtures import make_dataset, tiny_config
from tolerance_support import accumulation_length, gamma

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
HISTORY = ("loss", "mae", "val_loss", "val_mae")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("multiworker") / "data", n_sources=20)


def free_ports(n):
    """``n`` distinct ports that were free a moment ago (all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_workers(cfg_path, logs, n=2, attempt=0):
    """``n`` ``sea-tf distill --distribution multiworker`` processes forming one cluster.

    Each has its own TMPDIR (``logs/tmp-<attempt>-<i>``) so that a test can see what a worker left behind.
    """
    ports = free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(n):
        tmp = logs / f"tmp-{attempt}-{i}"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**ENV, "TMPDIR": str(tmp),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        log = open(logs / f"worker-{i}.log", "a")
        procs.append(subprocess.Popen([sys.executable, "-m", "sea_tf", "distill", "--config", str(cfg_path),
                                       "--distribution", "multiworker", "--no-progress"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def wait_all(procs, logs, timeout=300):
    """Exit codes of ``procs``; a worker still running after ``timeout`` s is killed and fails the test."""
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"multi-worker run still running after {timeout} s\n{log_tails(logs)}")
    return codes


def log_tails(logs, chars=1500):
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in sorted(logs.glob("worker-*.log")))


def history(run_dir):
    import csv
    with open(run_dir / "history.csv") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def loss_curve_rtol(cfg, data):
    """Relative tolerance between the loss curves of two runs that differ only in who adds what.

    Two workers with one replica each and one worker with two replicas compute the same graph on
    the same half batches (the data are sharded by rows, docs/CLUSTER.md), and each step's
    gradient is the sum of the same two half-batch gradients: one IEEE addition, exact in either
    order. What may differ is how a kernel splits a reduction between threads (one process's pool
    for two replicas, or one pool each), which moves a forward output by at most ``γ_n`` of its
    scale, ``n`` the dot-product lengths along the network (Higham eq. 3.5, see
    :func:`tolerance_support.accumulation_length`), and a gradient by at most as much relative to
    itself. A logged loss is a mean of squared errors, so it carries ``2 γ_n`` relative; Adam's
    step ``m̂ / √v̂`` is scale-free, so a gradient off by ``γ_n`` moves every update by at most
    ``2 γ_n`` of itself, and to first order (a few small steps, no amplification) each step's
    weight error adds ``2 γ_n`` to every later loss. Over ``S`` steps: ``2 γ_n (1 + S)``.
    """
    from sea_tf.distill import student as student_mod

    seamodel = student_mod.build("sea-64", overrides=cfg["student"]["overrides"], head="published", d=data["d"],
                                 frame_samples=8000, seed=cfg["seed"])
    model, _ = student_mod.training_model(seamodel, mixed_precision=False)
    steps = cfg["train"]["epochs"] * cfg["train"]["steps_per_epoch"]
    return 2 * gamma(accumulation_length(model)) * (1 + steps)


def leftovers(logs, attempt=0):
    """Files or folders the workers of ``attempt`` left in their temporary directories."""
    return sorted(str(p.relative_to(logs)) for p in logs.glob(f"tmp-{attempt}-*/*"))


@pytest.mark.cluster
def test_two_workers_train_like_one_worker_with_two_replicas(data, tmp_path):
    from sea_tf.distill import distill
    from sea_tf.models import load_model

    cfg = tiny_config(data, tmp_path / "mw", epochs=3, steps_per_epoch=6, batch_size=8)
    cfg_path = write_config(tmp_path / "mw.yaml", cfg)
    mirrored = dict(cfg, out=str(tmp_path / "mirrored"))
    mirrored_path = write_config(tmp_path / "mirrored.yaml", mirrored)
    logs = tmp_path / "logs"
    workers = start_workers(cfg_path, logs)
    one = subprocess.run([sys.executable, "-m", "sea_tf", "distill", "--config", str(mirrored_path),
                          "--cpu-devices", "2", "--no-progress"], env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    assert wait_all(workers, logs) == [0, 0], log_tails(logs)

    run = Path(cfg["out"])
    report = json.loads((run / "report.json").read_text())
    assert report["replicas"] == 2 and report["global_batch"] == 8 and report["per_replica_batch"] == [4, 4]
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 3 and state["iterations"] == 3 * 6
    # Only the chief keeps files; the other worker's checkpoints and saved student are gone.
    assert leftovers(logs) == []
    assert load_model(run / "student.keras").embedding_size == data["d"]

    rtol = loss_curve_rtol(cfg, data)
    two_workers, two_replicas = history(run), history(tmp_path / "mirrored")
    assert len(two_workers) == len(two_replicas) == 3
    for a, b in zip(two_workers, two_replicas):
        for key in HISTORY:
            assert abs(a[key] - b[key]) <= rtol * abs(b[key]), (key, a, b, rtol)

    # Negative control: one device normalises each batch over all 8 rows, not 4 + 4, so its curve
    # is another one; the tolerance above is tight enough to tell them apart.
    single = distill(dict(cfg, out=str(tmp_path / "single")), log=lambda *_: None)
    assert single["replicas"] == 1
    worst = max(abs(a[key] - b[key]) / abs(b[key])
                for a, b in zip(history(tmp_path / "single"), two_replicas) for key in HISTORY)
    assert worst > 10 * rtol, (worst, rtol)


@pytest.mark.cluster
def test_a_killed_worker_resumes_from_the_chief_checkpoint(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "run", epochs=3, steps_per_epoch=4, batch_size=8)
    cfg_path = write_config(tmp_path / "cfg.yaml", cfg)
    run, logs = Path(cfg["out"]), tmp_path / "logs"
    workers = start_workers(cfg_path, logs)
    deadline = time.monotonic() + 240
    state = None
    while time.monotonic() < deadline and all(p.poll() is None for p in workers):
        try:
            state = json.loads((run / "state.json").read_text())
        except (OSError, ValueError):  # not written yet (it is replaced atomically)
            state = None
        if state and state["epoch"] >= 1:
            break
        time.sleep(0.2)
    assert state and state["epoch"] >= 1 and all(p.poll() is None for p in workers), log_tails(logs)
    workers[1].send_signal(signal.SIGKILL)
    # The chief notices its peer is gone (no more heartbeats) and fails; SLURM's --kill-on-bad-exit
    # would end it anyway, as this does when it has not given up after a while.
    try:
        chief_code = workers[0].wait(timeout=90)
    except subprocess.TimeoutExpired:
        workers[0].kill()
        chief_code = workers[0].wait()
    workers[1].wait()
    assert chief_code != 0
    killed = json.loads((run / "state.json").read_text())
    assert 1 <= killed["epoch"] < 3, killed["epoch"]

    # The job restarted unchanged: both workers resume from the chief's last checkpoint and finish.
    assert wait_all(start_workers(cfg_path, logs, attempt=1), logs) == [0, 0], log_tails(logs)
    chief_log = (logs / "worker-0.log").read_text()
    assert f"resuming {run} at epoch {killed['epoch'] + 1}" in chief_log, chief_log[-2000:]
    final = json.loads((run / "state.json").read_text())
    assert final["epoch"] == 3 and final["iterations"] == 3 * 4 and final["stopped"] == "epochs"
    assert [h["epoch"] for h in final["history"]] == [1, 2, 3]
    # The epochs trained before the kill are kept as they were, not retrained.
    assert final["history"][:killed["epoch"]] == killed["history"]
    assert (run / "student.keras").is_file() and json.loads((run / "report.json").read_text())["replicas"] == 2
    assert np.isfinite(json.loads((run / "report.json").read_text())["held_out"]["mse"])
    # (The killed worker's scratch stays in its TMPDIR, as anything a SIGKILLed process held.)
    assert leftovers(logs, attempt=1) == []


def test_slurm_step_gives_each_task_of_a_node_its_own_port(monkeypatch):
    from sea_tf.distill import strategy
    from sea_tf.errors import TrainError

    assert strategy.tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    for name in strategy.SLURM_STEP_VARIABLES + ("TF_CONFIG", "SEA_TF_PORT_BASE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    assert strategy.slurm_resolver() is None   # not inside an srun step
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "localhost")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2")
    ports = {}
    for rank in (0, 1):
        monkeypatch.setenv("SLURM_PROCID", str(rank))
        resolver = strategy.slurm_resolver()
        spec = resolver.cluster_spec().as_dict()
        ports[rank] = (resolver.task_type, resolver.task_id, spec)
    base = strategy.FIRST_PORT + 234 * strategy.PORTS_PER_JOB   # job 1234's slot
    assert ports[0] == ("worker", 0, {"worker": [f"localhost:{base}", f"localhost:{base + 1}"]})
    assert ports[1][:2] == ("worker", 1) and ports[1][2] == ports[0][2]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ   # GPU binding is left to SLURM
    monkeypatch.setenv("SEA_TF_PORT_BASE", "65535")   # task 1 would get port 65536
    with pytest.raises(TrainError, match="outside 1024..65535"):
        strategy.slurm_resolver()


@pytest.mark.cluster
def test_srun_two_tasks_train_one_student_on_the_test_cluster(data, slurm_cluster, tmp_path):
    cfg = tiny_config(data, tmp_path / "run", epochs=2, steps_per_epoch=4, batch_size=8)
    cfg["strategy"]["kind"] = "multiworker"
    cfg_path = write_config(tmp_path / "cfg.yaml", cfg)
    (tmp_path / "tmp").mkdir()
    env = {"SHARDS": str(data["shards"]), "TARGETS": str(data["targets"]), "OUT": cfg["out"],
           "CONFIG": str(cfg_path), "VENV": str(Path(sys.executable).parent.parent),
           "TMPDIR": str(tmp_path / "tmp"), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = tmp_path / "job.out"
    job = slurm_cluster.submit(ROOT / "configs" / "slurm" / "distill-multiworker.sbatch", "--cpus-per-task=1",
                               f"--output={log}", env=env, cwd=tmp_path)
    states = slurm_cluster.wait(job, timeout=400)
    output = log.read_text(errors="replace") if log.exists() else "(no job output)"
    assert states == {None: "COMPLETED"}, output[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # Two tasks formed one cluster (each alone would report one replica and both write the run).
    assert report["replicas"] == 2 and report["per_replica_batch"] == [4, 4], output[-3000:]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 2 and state["iterations"] == 2 * 4
    assert list((tmp_path / "tmp").iterdir()) == []
