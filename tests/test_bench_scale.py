"""benchmarks/bench_scale.py end to end at a tiny scale, on the real SLURM test cluster.

The rehearsal's own figures are benchmarks, not assertions; what this test checks is that every
stage ran (the array with a task cancelled mid-run and resubmitted alone, ``--status`` all done,
distill under ``ulimit -n``) and that the JSON holds numbers measured in this run: positive wall
times and peaks, row counts that agree between stages, and each target's ``pass`` following from
its ``measured`` and ``limit``.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("teacher_embed", "sample", "reduce_fit", "reduce_apply", "distill", "export", "device_bench",
          "embed_long", "embed_short")


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


pytestmark = pytest.mark.cluster  # a real SLURM cluster: its own .ci/run step


# About 20 processes start TensorFlow (each stage, SLURM task and probe): ~3 min on 2 idle cores,
# several times that when other work shares them.
@pytest.mark.timeout(1500)
def test_bench_scale_tiny_run(slurm_cluster, sea64_h5, tmp_path):
    out = tmp_path / "out"
    # 0.004 of 6 h (86 s of audio, two 14-s "long" recordings, 168 windows); one row per shard
    # keeps the time small while distill has more shard + target files (2 × 168) than its
    # `ulimit -n 128` allows descriptors.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_scale.py"), "--scale", "0.004", "--min-shards", "120",
         "--nofile", "128", "--no-quarter", "--sample-m", "64", "--strategy", "random", "--train-steps", "12",
         "--teacher-h5", str(sea64_h5), "--slurm-conf", str(slurm_cluster.conf), "--out", str(out),
         "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=1400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "bench_scale.json").read_text())
    assert (out / "bench_scale.png").stat().st_size > 10_000
    full = result["full"]
    for stage in STAGES:
        figures = full[stage]
        for key in ("wall_s", "peak_rss_mb", "peak_open_files"):
            assert _number(figures[key]) and figures[key] > 0, (stage, key, figures[key])
    te = full["teacher_embed"]
    assert te["kill"]["killed_mid_run"] is True, te["kill"]
    assert te["first_states"][str(1)] == "CANCELLED" and te["rerun_states"] == {"1": "COMPLETED"}
    assert te["status_after_first"]["returncode"] != 0 and te["status"]["returncode"] == 0
    assert te["shards"] >= 120 and te["rows"] == full["audio"]["expected_windows"]
    assert full["reduce_apply"]["target_files"] == te["shards"]
    # Distill ran with fewer descriptors than it has shard + target files.
    assert full["distill"]["ulimit_n"] == 128 < 2 * te["shards"]
    assert 0 < full["distill"]["input_pipeline_peak_open_files"] <= 128
    assert full["embed_long"]["rows"] > full["embed_short"]["rows"] == 20  # 1 + floor((10 - 0.5) / 0.5)
    assert full["device_bench"]["windows"] == full["embed_long"]["rows"]  # the same recording, same hop
    for name, target in result["targets"].items():
        assert _number(target["measured"]) and _number(target["limit"]), name
        higher_is_better = name != "long_file_added_rss_mb"
        expected = target["measured"] >= target["limit"] if higher_is_better else target["measured"] <= target["limit"]
        assert target["pass"] is expected, (name, target)
