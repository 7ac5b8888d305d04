"""``sea-tf report``: rows per (model, mode, device), accuracy joins, Pareto fronts, PNGs."""
import json

import numpy as np
import pytest

from sea_tf import pareto_report
from sea_tf.cli import main as cli_main
from sea_tf.errors import DataError


def device_result(stem, name, mode, device, p50, size, peak=60.0, status="complete"):
    stats = {"n": 10, "mean": p50 * 1.05, "p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5}
    return {"schema": pareto_report.DEVICE_SCHEMA, "status": status, "device": device,
            "model": {"path": f"artifacts/{stem}.tflite", "name": name, "mode": mode, "size_bytes": size},
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
    out = pareto_report.write_report([results], tmp_path / "report")
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
    # on pi4: sea-64.int8 (20 ms, 68 %) and sea-512.int8 (90 ms, 78 %) are the front; fp32 (35 ms, 70 %) is not dominated
    # by int8 on accuracy, so it is on the front too
    assert "Pareto front (accuracy vs latency): sea-64 [int8] on pi5, sea-64 [fp32] on pi4, sea-512 [int8] on pi4" in md
    for png in out["pngs"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert json.loads(out["rows_json"].read_text()) == json.loads(json.dumps(out["rows"]))


@pytest.mark.parametrize("points, expected", [
    ([(1, 0.5), (2, 0.6), (3, 0.55), (4, 0.9)], [0, 1, 3]),
    ([(5, 0.9), (1, 0.9), (1, 0.8)], [1]),          # equal accuracy: the cheaper one only
    ([(1, 0.1)], [0]), ([], [])])
def test_pareto_front(points, expected):
    assert sorted(pareto_report.pareto_front(points)) == expected


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    pts = [tuple(p) for p in rng.random((60, 2))]
    dominated = {i for i, (c, a) in enumerate(pts)
                 if any((c2 <= c and a2 >= a) and (c2, a2) != (c, a) for c2, a2 in pts)}
    assert sorted(pareto_report.pareto_front(pts)) == sorted(set(range(60)) - dominated)


def test_cli_report(results, tmp_path, capsys):
    code = cli_main.main(["report", str(results), "--out", str(tmp_path / "r"), "--latency-stat", "p90"])
    assert code == 0, capsys.readouterr().err
    assert "latency p90" in (tmp_path / "r" / "report.md").read_text()
    assert (tmp_path / "r" / "report.config.yaml").exists()
    assert (tmp_path / "r" / "pareto_accuracy_latency.png").exists()


def test_nothing_recognised_is_an_error(tmp_path, capsys):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="nothing to report"):
        pareto_report.write_report([tmp_path / "x.json"], tmp_path / "r")
    assert cli_main.main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2
    assert "no such results file" in capsys.readouterr().err
