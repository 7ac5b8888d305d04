"""The private SLURM test cluster itself (scripts/slurm/, tests/slurm_support.py).

These pin the SLURM behaviour the array jobs are built on: an array's tasks see
``SLURM_ARRAY_TASK_ID`` 0..N-1 with ``TASK_COUNT=N`` and ``TASK_MIN=0``, while one task resubmitted
alone (``sbatch --array=2``) sees ``TASK_COUNT=1``, ``TASK_MIN=2`` — the original N is gone.
"""
import textwrap

import pytest

pytestmark = pytest.mark.cluster  # a real SLURM cluster: its own .ci/run step

SCRIPT = textwrap.dedent("""\
    #!/bin/bash
    #SBATCH --job-name=env-probe
    echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_MIN $(command -v sea-tf)" \\
      > "$OUT/task-$SLURM_ARRAY_TASK_ID.txt"
    """)


def _probe(slurm_cluster, tmp_path, array):
    script = tmp_path / "probe.sbatch"
    script.write_text(SCRIPT)
    job = slurm_cluster.submit(script, f"--array={array}", f"--output={tmp_path}/slurm-%A_%a.out",
                               env={"OUT": str(tmp_path)})
    states = slurm_cluster.wait(job, timeout=120)
    assert set(states.values()) == {"COMPLETED"}, states
    return {int(p.stem.split("-")[1]): p.read_text().split() for p in tmp_path.glob("task-*.txt")}


def test_array_tasks_see_their_index_and_the_venv(slurm_cluster, tmp_path):
    seen = _probe(slurm_cluster, tmp_path, "0-3")
    assert sorted(seen) == [0, 1, 2, 3]
    for k, (task_id, count, minimum, sea_tf) in seen.items():
        assert (int(task_id), int(count), int(minimum)) == (k, 4, 0)
        assert sea_tf.startswith(slurm_cluster.env["PATH"].split(":")[0])


def test_a_lone_resubmitted_task_loses_the_array_size(slurm_cluster, tmp_path):
    seen = _probe(slurm_cluster, tmp_path, "2")
    assert [int(v) for v in seen[2][:3]] == [2, 1, 2]


def test_cancel_one_running_task(slurm_cluster, tmp_path):
    script = tmp_path / "sleep.sbatch"
    script.write_text("#!/bin/bash\nsleep 120\n")
    job = slurm_cluster.submit(script, "--array=0-1", f"--output={tmp_path}/slurm-%A_%a.out")
    slurm_cluster.wait_running(f"{job}_0")
    slurm_cluster.cancel(f"{job}_0")
    slurm_cluster.cancel(f"{job}_1")
    states = slurm_cluster.wait(job, timeout=60)
    assert set(states.values()) == {"CANCELLED"}, states
