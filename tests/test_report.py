"""``sea-tf report``: rows per (model, mode, device), accuracy joins, Pareto fronts, PNGs."""
import json

import numpy as np
import pytest

from sea_tf import config, report
from sea_tf.cli import main as cli_main
from sea_tf.errors import DataError

# write_report's settings as `sea-tf report` resolves them by default (configs/report.yaml)
SETTINGS = {key: value for key, value in config.load("report").items() if key != "out"}


def device_result(stem, name, mode, device, p50, size, peak=60.0, status="complete", folder="artifacts", **hashes):
    """A ``device.bench`` result as device/bench.py writes it; ``hashes``: the model section's
    ``sha256`` / ``source_sha256`` (the identity contract), absent in results written before it."""
    stats = {"n": 10, "mean": p50 * 1.05, "p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5}
    return {"schema": report.DEVICE_SCHEMA, "status": status, "device": device,
            "model": {"path": f"{folder}/{stem}.tflite", "name": name, "mode": mode, "size_bytes": size, "kind": "embedding",
                      "has_sidecar": True, **hashes},
            "latency_ms": {"total": stats, "network": {k: v * 0.9 if k != "n" else v for k, v in stats.items()},
                           "frontend": {k: v * 0.1 if k != "n" else v for k, v in stats.items()}},
            "real_time_factor": p50 / 100, "memory_mb": {"peak": peak},
            "environment": {"hostname": device, "architecture": "aarch64",
                            "interpreter": {"package": "ai-edge-litert", "version": "2.3.0"}}}


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    runs = [("sea-64.int8", "sea-64", "int8", "pi4", 20.0, 450_000), ("sea-64.fp32", "sea-64", "fp32", "pi4", 35.0, 1_700_000),
            ("sea-512.int8", "sea-512", "int8", "pi4", 90.0, 4_800_000), ("sea-64.int8", "sea-64", "int8", "pi5", 8.0, 450_000)]
    for i, (stem, name, mode, dev, p50, size) in enumerate(runs):
        (d / f"dev{i}.json").write_text(json.dumps(device_result(stem, name, mode, dev, p50, size)))
    # classification: sea-64.int8 measured on its own artifact; sea-64 and sea-512 as float (Keras) models
    (d / "comparison.json").write_text(json.dumps({"dataset": "us8k", "n_folds": 10, "models": {
        "sea-64": {"accuracy_mean": 0.70, "accuracy_std": 0.05, "spec": "sea-64"},
        "sea-64.int8": {"accuracy_mean": 0.68, "accuracy_std": 0.04, "spec": "/x/export/sea-64.int8.tflite"},
        "sea-512": {"accuracy_mean": 0.78, "accuracy_std": 0.03, "spec": "sea-512"},
        "l3-teacher": {"accuracy_mean": 0.80, "accuracy_std": 0.02, "spec": "l3-mel256-512"}}}))
    # an export sidecar never benchmarked, and a classifier sidecar (not a row)
    (d / "sea-128.int8.json").write_text(json.dumps({"model_card": {"name": "sea-128"}, "mode": "int8", "sha256": "0" * 64,
                                                      "frontend_in_model": True, "size_bytes": 600_000}))
    (d / "mlp.fp32.json").write_text(json.dumps({"model_card": {"name": "mlp", "kind": "classifier"}, "mode": "fp32",
                                                  "sha256": "1" * 64, "frontend_in_model": True, "classes": ["a"]}))
    (d / "notes.json").write_text(json.dumps({"something": "else"}))
    return d


def test_rows_and_joins(results, tmp_path):
    out = report.write_report([results], tmp_path / "report", **SETTINGS)
    rows = {(r["model"], r["mode"], r["device"]): r for r in out["rows"]}
    assert set(rows) == {("sea-64", "int8", "pi4"), ("sea-64", "fp32", "pi4"), ("sea-512", "int8", "pi4"),
                         ("sea-64", "int8", "pi5"), ("sea-128", "int8", None), ("l3-teacher", "keras", None)}
    assert rows[("sea-64", "int8", "pi4")]["accuracy"] == 0.68 and not rows[("sea-64", "int8", "pi4")]["accuracy_inherited"]
    assert rows[("sea-64", "fp32", "pi4")]["accuracy"] == 0.70 and rows[("sea-64", "fp32", "pi4")]["accuracy_inherited"]
    assert rows[("sea-512", "int8", "pi4")]["accuracy"] == 0.78
    assert rows[("sea-64", "int8", "pi5")]["latency_ms"] == 8.0 and rows[("sea-64", "int8", "pi5")]["network_ms"] == pytest.approx(7.2)
    assert rows[("sea-128", "int8", None)]["size_bytes"] == 600_000 and rows[("sea-128", "int8", None)]["accuracy"] is None
    assert out["ignored"] == [str(results / "notes.json")]
    md = out["markdown"].read_text()
    assert "| sea-64 | fp32 | pi4 | 70.0 ± 5.0 † | 35.000 |" in md
    assert "| sea-64 | int8 | pi5 | 68.0 ± 4.0 | 8.000 |" in md
    # only sea-64.int8's accuracy was measured on the artifact: fp32 (35 ms, 70 % †) and sea-512.int8 (90 ms, 78 % †)
    # carry their float model's accuracy and are no Pareto points, however good it looks
    assert "Pareto front (accuracy vs latency on pi4): sea-64 [int8]\n" in md
    assert "Pareto front (accuracy vs latency on pi5): sea-64 [int8]\n" in md
    assert "Pareto front (accuracy vs size): sea-64 [int8]\n" in md
    assert "Not on the Pareto plots: 2 row(s) with † accuracy" in md
    for png in out["pngs"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert json.loads(out["rows_json"].read_text()) == json.loads(json.dumps(out["rows"]))


@pytest.mark.parametrize("points, expected", [
    ([(1, 0.5), (2, 0.6), (3, 0.55), (4, 0.9)], [0, 1, 3]),
    ([(5, 0.9), (1, 0.9), (1, 0.8)], [1]),          # equal accuracy: the cheaper one only
    ([(1, 0.1)], [0]), ([], [])])
def test_pareto_front(points, expected):
    assert sorted(report.pareto_front(points)) == expected


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = [tuple(p) for p in rng.random((60, 2))]
    dominated = {i for i, (c, a) in enumerate(pts)
                 if any((c2 <= c and a2 >= a) and (c2, a2) != (c, a) for c2, a2 in pts)}
    assert sorted(report.pareto_front(pts)) == sorted(set(range(60)) - dominated)


def test_cli_report(results, tmp_path, capsys):
    code = cli_main.main(["report", str(results), "--out", str(tmp_path / "r"), "--latency-stat", "p90"])
    assert code == 0, capsys.readouterr().err
    assert "latency p90" in (tmp_path / "r" / "report.md").read_text()
    assert (tmp_path / "r" / "report.config.yaml").exists()
    assert (tmp_path / "r" / "pareto_accuracy_latency.png").exists()


def test_nothing_recognised_is_an_error(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="nothing to report"):
        report.write_report([tmp_path / "x.json"], tmp_path / "r", **SETTINGS)
    assert cli_main.main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2
    assert "no such results file" in capsys.readouterr().err


# --- joins by the identity contract (docs/ARCHITECTURE.md): hashes, never display names ---------------------------

H_STUDENT, H_OTHER = "a" * 64, "b" * 64                       # sha256 of two student.keras files
H_INT8, H_FP32, H_INT8_B = "c" * 64, "d" * 64, "e" * 64       # sha256 of .tflite files


def sidecar(card, mode, sha256, size, source=None):
    """An export sidecar as export/metadata.py:build_sidecar writes it (``source``: the identity contract)."""
    meta = {"format": "sea-tf-export/1", "model_card": {"name": card, "kind": "embedding"}, "mode": mode,
            "frontend_in_model": False, "frontend": {"type": "mel"},
            "input": {"kind": "frontend_features", "name": "x", "shape": [1, 128, 199, 1], "dtype": "float32",
                      "quantization": {"scale": None, "zero_point": None}},
            "output": {"kind": "embedding", "name": "y", "shape": [1, 64], "dtype": "float32",
                       "quantization": {"scale": None, "zero_point": None}},
            "sha256": sha256, "size_bytes": size, "operators": ["CONV_2D"]}
    if source is not None:
        meta["source"] = source
    return meta


def classify_summary(accuracy, spec, model_sha256, **extra):
    return {"accuracy_mean": accuracy, "accuracy_std": 0.01, "spec": spec, "model": spec, "model_sha256": model_sha256,
            **extra}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_readme_flow_joins_by_hash_without_alias(tmp_path):
    # README: classify calls the model "student" (its file), export and device call it "sea-64" (its card); the
    # int8 artifact was also classified under another name (a renamed copy): joined by sha256, no --alias
    src = {"path": "runs/sea-64/student.keras", "name": "student", "sha256": H_STUDENT}
    write(tmp_path / "OUT" / "sea-64.int8.json", sidecar("sea-64", "int8", H_INT8, 400_000, src))
    write(tmp_path / "OUT" / "sea-64.fp32.json", sidecar("sea-64", "fp32", H_FP32, 1_600_000, src))
    write(tmp_path / "device" / "sea-64.int8.json", device_result("sea-64.int8", "sea-64", "int8", "pi4", 20.0, 400_000,
                                                                  sha256=H_INT8, source_sha256=H_STUDENT))
    write(tmp_path / "device" / "sea-64.fp32.json", device_result("sea-64.fp32", "sea-64", "fp32", "pi4", 35.0, 1_600_000,
                                                                  sha256=H_FP32, source_sha256=H_STUDENT))
    write(tmp_path / "classify" / "comparison.json", {"dataset": "us8k", "n_folds": 10, "models": {
        "student": classify_summary(0.70, "runs/sea-64/student.keras", H_STUDENT),
        "renamed": classify_summary(0.66, "/copies/renamed.tflite", H_INT8, source_sha256=H_STUDENT)}})
    out = report.write_report([tmp_path / "device", tmp_path / "OUT", tmp_path / "classify" / "comparison.json"],
                                     tmp_path / "report", **SETTINGS)
    rows = {(r["model"], r["mode"]): r for r in out["rows"]}
    assert set(rows) == {("sea-64", "int8"), ("sea-64", "fp32")}          # no loose "accuracy only" rows left over
    int8, fp32 = rows[("sea-64", "int8")], rows[("sea-64", "fp32")]
    assert (int8["accuracy"], int8["accuracy_inherited"], int8["accuracy_from"]) == (0.66, False, "renamed")
    assert (fp32["accuracy"], fp32["accuracy_inherited"], fp32["accuracy_from"]) == (0.70, True, "student")
    assert (int8["sha256"], int8["source_sha256"], int8["device"]) == (H_INT8, H_STUDENT, "pi4")
    md = out["markdown"].read_text()
    assert "| sea-64 | fp32 | pi4 | 70.0 ± 1.0 † | 35.000 |" in md and "| sea-64 | int8 | pi4 | 66.0 ± 1.0 | 20.000 |" in md
    assert "Pareto front (accuracy vs latency on pi4): sea-64 [int8]\n" in md


def test_two_students_of_one_preset_are_two_rows(tmp_path):
    # same card, same stem, same device, two folders: only the hashes tell them apart
    for folder, sha, src, p50 in (("a", H_INT8, H_STUDENT, 20.0), ("b", H_INT8_B, H_OTHER, 25.0)):
        write(tmp_path / "device" / folder / "student.int8.json",
              device_result("student.int8", "sea-64", "int8", "pi4", p50, 400_000, folder=folder,
                            sha256=sha, source_sha256=src))
    write(tmp_path / "comparison.json", {"dataset": "us8k", "n_folds": 10, "models": {
        "student": classify_summary(0.61, "a/student.keras", H_STUDENT),
        "student-2": classify_summary(0.72, "b/student.keras", H_OTHER)}})
    out = report.write_report([tmp_path], tmp_path / "report", **SETTINGS)
    rows = {r["sha256"]: r for r in out["rows"]}
    assert set(rows) == {H_INT8, H_INT8_B} and len(out["rows"]) == 2
    assert (rows[H_INT8]["accuracy"], rows[H_INT8]["latency_ms"]) == (0.61, 20.0)
    assert (rows[H_INT8_B]["accuracy"], rows[H_INT8_B]["latency_ms"]) == (0.72, 25.0)
    md = out["markdown"].read_text()
    assert "| student @cccccccc | int8 | pi4 | 61.0 ± 1.0 † |" in md and "| student @eeeeeeee | int8 | pi4 | 72.0 ± 1.0 † |" in md


def test_a_name_never_joins_two_hashed_files(tmp_path):
    # "sea-64" evaluated from another file than the artifact's source: same name, not the same model
    write(tmp_path / "sea-64.int8.json", sidecar("sea-64", "int8", H_INT8, 400_000,
                                                  {"path": "x/student.keras", "name": "student", "sha256": H_STUDENT}))
    write(tmp_path / "comparison.json", {"dataset": "us8k", "n_folds": 10, "models": {
        "sea-64": classify_summary(0.80, "other/sea-64.keras", H_OTHER),
        "sea-64.int8": classify_summary(0.79, "other/sea-64.int8.tflite", H_INT8_B)}})
    rows = report.write_report([tmp_path], tmp_path / "report", **SETTINGS)["rows"]
    artifact = next(r for r in rows if r["sha256"] == H_INT8)
    assert artifact["accuracy"] is None
    assert sorted((r["model"], r["mode"], r["sha256"]) for r in rows if r is not artifact) == [
        ("sea-64", "int8", H_INT8_B), ("sea-64", "keras", H_OTHER)]   # each its own row, "accuracy only"


def test_device_result_without_hash_takes_its_sidecars(tmp_path):
    # a device.bench result written before the contract: joined to the one export of its stem, which has the hashes
    write(tmp_path / "OUT" / "student.int8.json", sidecar("sea-64", "int8", H_INT8, 400_000,
                                                           {"path": "r/student.keras", "name": "student", "sha256": H_STUDENT}))
    write(tmp_path / "dev" / "student.int8.json", device_result("student.int8", "sea-64", "int8", "pi4", 20.0, 400_000))
    write(tmp_path / "comparison.json", {"dataset": "us8k", "n_folds": 10, "models": {
        "student": classify_summary(0.70, "r/student.keras", H_STUDENT)}})
    rows = report.write_report([tmp_path], tmp_path / "report", **SETTINGS)["rows"]
    assert len(rows) == 1 and rows[0]["device"] == "pi4"
    assert (rows[0]["sha256"], rows[0]["accuracy"], rows[0]["accuracy_inherited"]) == (H_INT8, 0.70, True)


def test_export_report_rows_merge_with_sidecars(tmp_path):
    # the export report.json repeats each artifact (with "path"): one row, and its classifier row is not a model
    src = {"path": "r/student.keras", "name": "student", "sha256": H_STUDENT}
    write(tmp_path / "OUT" / "student.int8.json", sidecar("sea-64", "int8", H_INT8, 400_000, src))
    write(tmp_path / "OUT" / "report.json", {"format": "sea-tf-export-report/1", "model": "sea-64", "artifacts": [
        {"model": "student", "mode": "int8", "path": str(tmp_path / "OUT" / "student.int8.tflite"), "frontend_in_model": False,
         "input_kind": "frontend_features", "size_bytes": 400_000, "sha256": H_INT8, "source_sha256": H_STUDENT},
        {"model": "mlp", "mode": "int8", "path": str(tmp_path / "OUT" / "mlp.int8.tflite"), "frontend_in_model": False,
         "input_kind": "embedding", "size_bytes": 9_000, "sha256": "f" * 64, "source_sha256": None}]})
    rows = report.write_report([tmp_path / "OUT"], tmp_path / "report", **SETTINGS)["rows"]
    assert [(r["model"], r["mode"], r["sha256"], r["size_bytes"]) for r in rows] == [("student", "int8", H_INT8, 400_000)]


def test_alias_is_hidden_and_deprecated(results, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main.main(["report", "--help"])
    assert "--alias" not in capsys.readouterr().out
    code = cli_main.main(["report", str(results), "--out", str(tmp_path / "r"), "--alias", "l3-teacher=sea-512"])
    assert code == 0
    assert "--alias is deprecated" in capsys.readouterr().err
    rows = json.loads((tmp_path / "r" / "rows.json").read_text())
    # a legacy result (no hashes) still joins by the alias: l3-teacher's accuracy is now sea-512's float accuracy
    assert next(r for r in rows if r["stem"] == "sea-512.int8")["accuracy"] == 0.80


def test_one_models_results_on_two_datasets_never_share_the_column(tmp_path):
    """UrbanSound8K and ESC-50 results of the same files: the table shows one dataset's (the one with the
    most results) and names the other; before, the last file read won, whichever dataset it was."""
    src = {"path": "runs/sea-64/student.keras", "name": "student", "sha256": H_STUDENT}
    write(tmp_path / "OUT" / "sea-64.int8.json", sidecar("sea-64", "int8", H_INT8, 400_000, src))
    write(tmp_path / "a_us8k" / "comparison.json", {"dataset": "us8k", "n_folds": 10, "models": {
        "student": classify_summary(0.70, "runs/sea-64/student.keras", H_STUDENT),
        "int8": classify_summary(0.66, "OUT/sea-64.int8.tflite", H_INT8, source_sha256=H_STUDENT)}})
    write(tmp_path / "b_esc50" / "comparison.json", {"dataset": "esc50", "n_folds": 5, "models": {
        "int8": classify_summary(0.40, "OUT/sea-64.int8.tflite", H_INT8, source_sha256=H_STUDENT)}})
    for order in ([tmp_path / "a_us8k", tmp_path / "b_esc50"], [tmp_path / "b_esc50", tmp_path / "a_us8k"]):
        out = report.write_report([tmp_path / "OUT", *order], tmp_path / "report", **SETTINGS)
        (int8,) = [r for r in out["rows"] if r["mode"] == "int8"]
        assert int8["accuracy"] == 0.66
        assert "Accuracy is on us8k; also given, not shown: esc50 (1 result(s))" in out["markdown"].read_text()
