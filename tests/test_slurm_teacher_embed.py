"""The real ``configs/slurm/teacher-embed-array.sbatch`` on the test SLURM cluster.

A 4-task array over generated audio with the published SEA-64 as the teacher (cheap, 8 kHz):
one task is cancelled while it runs and one before it starts, so the directory is incomplete;
``--status`` and :class:`~sea_tf.shards.ShardSet` say so; each task is then resubmitted alone
(``sbatch --array=K``, where SLURM reports ``TASK_COUNT=1``), resumes job K of 4, and the finished
directory reads as exactly the rows of one unsplit run: every window once, each file in one job.
"""
import sys

import numpy as np
import pytest
import soundfile as sf

from sea_tf.audio import frame_audio
from sea_tf.cli import main as cli_main
from sea_tf.errors import DataError
from sea_tf.shards import ShardSet
from slurm_support import ROOT

pytestmark = pytest.mark.cluster  # a real SLURM cluster: its own .ci/run step

SBATCH = ROOT / "configs" / "slurm" / "teacher-embed-array.sbatch"
N_JOBS = 4


@pytest.fixture
def run_inputs(tmp_path):
    """10 noise files at 8 kHz, 1.2–10.2 s (so job 1's three files take a few seconds), and a config."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(14)
    for i in range(10):
        sf.write(audio / f"rec{i:02d}.wav", (0.1 * rng.normal(size=int(8000 * (1.2 + i))).astype(np.float32)), 8000)
    config = tmp_path / "teacher.yaml"
    config.write_text("teacher: edgel3/sea-64\nshard_rows: 8\nbatch_size: 8\ndecode_workers: 1\n")
    return audio, config


def _status(out, capsys):
    """(exit status, stdout) of ``sea-tf teacher-embed --status OUT``."""
    code = cli_main.main(["teacher-embed", "--status", str(out)])
    return code, capsys.readouterr().out


def _rows(shards):
    index = np.arange(shards.n_rows)
    return list(zip(shards.read("source", index), shards.read("timestamp", index)))


def test_array_with_cancelled_tasks_resubmitted_alone(slurm_cluster, sea64_home, run_inputs, tmp_path, capsys):
    audio, config = run_inputs
    out = tmp_path / "shards"
    env = {"INPUT": str(audio), "OUT": str(out), "CONFIG": str(config), "VENV": sys.prefix,
           "SHARD_COUNT": str(N_JOBS), "SEA_TF_HOME": str(sea64_home)}
    # The test node has 2 CPUs: one per task lets two run while two wait.
    # No --output and no logs/ folder made here: the script's own log path must work from any
    # submit folder (slurmd opens it before the script runs).
    options = ("--cpus-per-task=1", "--mem=1G")

    job = slurm_cluster.submit(SBATCH, f"--array=0-{N_JOBS - 1}", *options, env=env, cwd=tmp_path)
    slurm_cluster.cancel(f"{job}_3")           # never starts
    slurm_cluster.wait_running(f"{job}_1")
    slurm_cluster.cancel(f"{job}_1")           # killed while it runs
    states = slurm_cluster.wait(job, timeout=300)
    # scontrol drops a task cancelled while pending from the array's records: 3 is absent.
    assert states == {0: "COMPLETED", 1: "CANCELLED", 2: "COMPLETED"}, f"{states}\n{_logs(tmp_path)}"
    for k in (0, 2):  # the log of each task that ran, in the submit folder, with the job's output
        assert "teacher-embed" in (tmp_path / f"sea-teacher-{job}_{k}.out").read_text(errors="replace"), _logs(tmp_path)

    code, status = _status(out, capsys)
    assert code == 1 and "3of4  missing" in status and "--array=1,3" in status, status
    with pytest.raises(DataError, match=r"3of4"):
        ShardSet(out, allow_incomplete=True)

    # The usual rerun: each task alone, which SLURM reports as an array of one (TASK_COUNT=1).
    reruns = {k: slurm_cluster.submit(SBATCH, f"--array={k}", *options, env=env, cwd=tmp_path) for k in (1, 3)}
    for k, rerun in reruns.items():
        assert slurm_cluster.wait(rerun, timeout=300) == {k: "COMPLETED"}, _logs(tmp_path)

    assert sorted(p.name for p in out.glob("manifest-*.json")) == [f"manifest-{k}of4.json" for k in range(N_JOBS)]
    code, status = _status(out, capsys)
    assert code == 0 and "4 of 4 jobs done" in status, status

    # Each window of each file exactly once (the rows an unsplit run has: 8 kHz files, the
    # teacher's rate, are framed as they are), and file i only in job i mod 4.
    shards = ShardSet(out)
    rows = _rows(shards)
    expected = [(path.name, t) for path in sorted(audio.glob("*.wav"))
                for t in frame_audio(sf.read(path, dtype="float32")[0], 8000, hop_size=0.5)[1]]
    assert len(rows) == len(set(rows)) == len(expected) and sorted(rows) == sorted(expected)
    for i, info in enumerate(shards.shards):
        job = int(info.manifest.name.removeprefix("manifest-").split("of")[0])
        assert {int(source[3:5]) % N_JOBS for source in shards.read_shard(i, "source")} == {job}, info.path.name


def _logs(tmp_path):
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted(tmp_path.glob("*.out")))
