"""Journey (b) of issue #20: `distill --qat` → `export` of the QAT student → QAT beside PTQ in one report.

A user distils a tiny student with quantization-aware fine-tuning, then exports what it wrote,
naming the QAT file as MODEL, in int8 and dynamic. One export report must hold four rows measured
on the same held-out windows against the same float Keras student: post-training quantization
of ``student.keras`` and the QAT student converted with the ranges it learnt (its int8 file's
activation scales are the learnt FakeQuant ranges, not calibration min/max), every row carrying
its file's and its source model's sha256.

The distillation is conftest's ``qat_distill_run`` (the same CLI command, run once per session: test_export's
QAT demo-step test exports the same run); this test exports it and changes nothing in it.
"""
import json

import numpy as np

from distill_fixtures import tree_files
from sea_tf import cards
from sea_tf.cli import main as cli_main
from tolerance_support import ulp32

MODES = ("int8", "dynamic")


def _learnt_activation_scales(qat_h5):
    """int8 scale ``(max - min) / 255`` of every learnt activation range of the QAT body."""
    from sea_tf.distill import qat

    model, _ = qat.load(qat_h5)
    ranges = {}
    for w in model.get_layer("network").weights:
        layer, _, what = w.name.partition("/")
        if what.startswith(("output_min", "output_max", "post_activation_min", "post_activation_max")):
            ranges.setdefault(layer, {})[what.split(":")[0].rsplit("_", 1)[1]] = float(w.numpy())
    return {layer: (r["max"] - r["min"]) / 255.0 for layer, r in ranges.items()}


def _int8_scales(tflite):
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(tflite)).get_tensor_details()
    return [d["quantization"][0] for d in details if d["dtype"] == np.int8 and d["quantization"][0] > 0]


def test_distill_qat_then_export_qat_beside_ptq(qat_distill_run, tmp_path, capsys):
    data, run = qat_distill_run["data"], qat_distill_run["run"]
    assert qat_distill_run["code"] == 0, qat_distill_run["stderr"]   # distill --config --qat --set qat.epochs=1
    qat_h5, student = run / "student-qat.h5", run / "student.keras"
    assert cards.read_card(qat_h5)["qat"]["student"]["sha256"] == cards.sha256_file(student)

    out = tmp_path / "export"
    code = cli_main.main(["export", str(qat_h5), "--modes", ",".join(MODES), "--calibration", str(data["shards"]),
                          "--calibration-windows", "32", "--held-out-windows", "24", "--latency-windows", "2",
                          "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "student.report.json").read_text())
    rows = {(a["model"], a["mode"]): a for a in report["artifacts"]}
    assert set(rows) == {(name, mode) for name in ("student", "student-qat") for mode in MODES}

    held = report["held_out"]["n_windows"]
    for (name, mode), row in rows.items():
        assert row["n_windows"] == held                      # the same held-out windows for every row
        assert row["sha256"] == cards.sha256_file(row["path"])
        assert row["source_sha256"] == cards.sha256_file(qat_h5 if name == "student-qat" else student)
        assert json.loads((out / f"{name}.{mode}.json").read_text())["source"]["sha256"] == row["source_sha256"]
    for mode in MODES:
        qat_row = rows[("student-qat", mode)]
        assert qat_row["qat"] is True and qat_row["reference"] == "student"
        # Converted, the QAT graph still computes what its Keras model computes, to int8 rounding.
        assert qat_row["qat_keras_cosine_mean"] > 0.95
        assert -1 <= qat_row["cosine_worst"] <= qat_row["cosine_p5"] <= qat_row["cosine_mean"] <= 1
    assert report["qat"]["float_student"] == "student" and report["qat"]["modes"] == list(MODES)
    assert "student-qat" in (out / "student.report.md").read_text()

    # The QAT int8 file uses the learnt ranges: each learnt activation scale is one of its tensors' scales.
    qat_scales = _int8_scales(rows[("student-qat", "int8")]["path"])
    learnt = _learnt_activation_scales(qat_h5)
    assert learnt
    for layer, scale in learnt.items():
        assert any(abs(s - scale) <= 4 * ulp32(scale) for s in qat_scales), layer
    assert tree_files(qat_distill_run["root"]) == qat_distill_run["files"]   # the shared run is read only
