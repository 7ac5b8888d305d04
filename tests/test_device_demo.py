"""The device demo step: local bench of the exported artifacts through device.bench, then the report."""
import json

import pytest

import device_support
from sea_tf.demo import DemoContext
from sea_tf.demo_steps import device as device_step


@pytest.fixture(scope="session")
def export_dir(device_export_dir):
    return device_export_dir  # conftest: built once per run, read only


@pytest.fixture
def ctx(tmp_path, export_dir):
    c = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path / "data")
    c.report_dir.mkdir()
    (c.data_dir / "audio" / "fold1").mkdir(parents=True)
    for i, freq in enumerate((300, 900, 2000, 50)):
        device_support.write_tone_wav(c.data_dir / "audio" / "fold1" / f"clip{i}.wav", sr=22050, seconds=1.2, freq=freq)
    comparison = tmp_path / "classify" / "comparison.json"
    comparison.parent.mkdir()
    comparison.write_text(json.dumps({"dataset": "us8k", "n_folds": 10, "models": {
        "student": {"accuracy_mean": 0.61, "accuracy_std": 0.05, "spec": "tiny-emb"},
        "teacher": {"accuracy_mean": 0.72, "accuracy_std": 0.04, "spec": "l3-mel256-512"}}}))
    c.artifacts.update(export_dir=str(export_dir), data_dir=str(c.data_dir), classify_results=str(comparison),
                       student_model="tiny-emb")
    return c


def test_demo_step_benchmarks_and_reports(ctx):
    step = device_step.run(ctx)
    f = step.figures
    assert f["failed"] == {} and set(f["models"]) == {"tiny-emb.fp32", "tiny-emb.int8"}
    assert len(f["audio_files"]) == device_step.N_AUDIO
    for name, m in f["models"].items():
        assert m["status"] == "complete" and m["interpreter"]["package"] == "ai-edge-litert"
        assert m["latency_p50_ms"]["total"] >= m["latency_p50_ms"]["network"] > 0
        assert len(m["predictions"]) == 2 and all(p[0] in device_support.CLASSES for p in m["predictions"].values())
        assert json.loads((ctx.out_dir / "device" / f"{name}.json").read_text())["settings"]["runs"] == 20
    assert step.images == ["device-pareto_accuracy_latency.png", "device-pareto_accuracy_size.png"]
    for image in step.images:
        assert (ctx.report_dir / image).read_bytes()[:4] == b"\x89PNG"
    md = (ctx.report_dir / "pareto_report.md").read_text()
    # the classify step's "student" accuracy is joined to the tiny-emb artifacts (float accuracy, marked †)
    assert "| tiny-emb | int8 | local | 61.0 ± 5.0 † |" in md and "| teacher | keras | — | 72.0 ± 4.0 |" in md
    assert "per-window latency" in step.markdown


def test_demo_step_without_export_is_skipped(ctx):
    ctx.artifacts.pop("export_dir")
    step = device_step.run(ctx)
    assert "skipped" in step.figures and "export" in step.markdown
