"""``placement: measure``: both placements of an exact mode timed audio → embedding, the faster kept.

The choice is tested with an injected timer (no wall-clock asserts); one real export checks that the
sidecar records the choice, both timings and the CPU, and that the kept file matches its record.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from export.placement import PLACEMENTS, frontend_in_model, measure_placement


class FakeTimer:
    def __init__(self, seconds):
        self.seconds, self.calls = seconds, []

    def __call__(self, name):
        self.calls.append(name)
        return self.seconds[name]


@pytest.mark.parametrize("seconds, expected", [({"model": 2e-3, "device": 1e-3}, "device"),
                                               ({"model": 1e-3, "device": 2e-3}, "model"),
                                               ({"model": 1e-3, "device": 1e-3}, "model")])   # a tie keeps the model's
def test_the_faster_placement_is_kept(seconds, expected):
    timer = FakeTimer(seconds)
    record = measure_placement({"model": "m.tflite", "device": "d.tflite"}, np.zeros((2, 8000), np.float32),
                               threads=1, rounds=3, timer=timer)
    assert record["choice"] == expected
    assert record["ms_per_window"] == {k: 1e3 * v for k, v in seconds.items()}
    assert timer.calls == ["model", "device"] * 4            # one untimed round, then 3 interleaved
    assert record["threads"] == 1 and record["cpu"]


def test_measure_is_a_placement_and_only_exact_modes_measure():
    assert "measure" in PLACEMENTS
    assert frontend_in_model("fp32", placement="measure") and frontend_in_model("fp16", placement="measure")
    assert not frontend_in_model("int8", placement="measure") and not frontend_in_model("dynamic", placement="measure")


def test_export_records_the_measured_placement(tmp_path):
    from export import export_file
    from sea_tf.models import build_student

    tiny = build_student(filters=[4, 8, 8, 16], n_mels=16, seed=3)
    rng = np.random.default_rng(0)
    held = (0.1 * rng.standard_normal((8, 8000))).astype(np.float32)
    cfg = {"placement": "measure", "latency": {"runs": 2, "warmup": 1, "threads": 1},
           "held_out": {"windows": 8, "hop_size": 0.5, "seed": 1, "sources": []}}
    summary = export_file(tiny, tmp_path, modes="fp32", held_out=held, cfg=cfg, progress=False)
    (art,) = summary["artifacts"]
    meta = json.loads(Path(art["sidecar"]).read_text())
    placed = meta["placement"]
    assert placed["choice"] in ("model", "device") and set(placed["ms_per_window"]) == {"model", "device"}
    assert all(ms > 0 for ms in placed["ms_per_window"].values())
    assert meta["frontend_in_model"] == (placed["choice"] == "model")
    assert meta["input"]["kind"] == ("raw_audio" if placed["choice"] == "model" else "frontend_features")
    # whichever was kept, it is exact: the fp32 artifact matches Keras
    assert art["cosine_worst"] > 0.999999
