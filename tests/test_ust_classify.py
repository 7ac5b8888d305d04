"""``sea-tf classify ust`` end to end on a tiny demo-layout UST set: Keras and .tflite models, outputs, bad input."""
import copy
import csv
import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from sea_tf.classify import ust as ust_mod
from sea_tf.classify.ust_metrics import ust_metrics
from sea_tf.cli import main as cli_main
from sea_tf.data import UST, ust_demo
from sea_tf.data.demo_dataset import DEFAULTS
from sea_tf.errors import SeaTFWarning

# 2-s clips at hop 0.5 s: 3 windows each at the L3E framing; 30 epochs of the MIL take a second.
FAST = ["--set", "features.clip_seconds=2.0", "--hop-size", "0.5", "--set", "classifier.epochs=30",
        "--set", "classifier.patience=30", "--set", "classifier.learning_rate=0.001", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_ust(tmp_path_factory):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["seed"] = 11
    cfg["ust"].update(sensors=6, validate_sensors=2, clips_per_sensor=2, clip_seconds=2.0)
    root = tmp_path_factory.mktemp("ust") / "ust"
    ust_demo.write_ust(root, cfg)
    return root


@pytest.fixture(scope="module")
def sea64_tflite(sea64_net_artifacts):
    """The sea-64 preset's network as an fp32 .tflite with its sidecar (numpy front end on the device side)."""
    return sea64_net_artifacts["net.fp32"]  # conftest: built once per run, read only


def test_classify_ust_published_sea64_and_a_tflite(tiny_ust, sea64_tflite, sea64_home, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main.main(["classify", "ust", "--data", str(tiny_ust), "--model", "edgel3/sea-64",
                          "--model", str(sea64_tflite), "--out", str(out), *FAST])
    printed = capsys.readouterr().out
    assert code == 0, printed
    table = json.loads((out / "comparison.json").read_text())
    names = list(table["models"])
    assert names == ["edgel3_sea-64", "sea-64-net.fp32"] and not table["failed"]
    assert "| edgel3_sea-64 | 64 |" in printed and "micro / edgel3_sea-64" in printed
    ds = UST(tiny_ust)
    val = [c.audio_filename for c in ds.clips_in_split("validate")]
    for name in names:
        res = json.loads((out / name / "results.json").read_text())
        assert set(res["class_auprc"]) == set(ds.classes)
        assert 0 <= res["micro_auprc"] <= 1 and 0 <= res["macro_auprc"] <= 1 and 0 <= res["micro_f1"] <= 1
        assert res["framing"] == {"framing": "l3e", "hop_size": 0.5, "clip_seconds": 2.0, "frames_per_file": 3,
                                  "sample_rate": 8000}
        assert res["settings"]["classifier"]["type"] == "mil" and res["n_validate_scored"] == len(val)
        assert (out / name / "pr_curves.png").stat().st_size > 5000
        # output.csv is the DCASE submission format; re-scoring it from the file gives the same numbers.
        with open(out / name / "output.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        header = list(rows[0])
        assert header == ["audio_filename", *ds.fine_columns, *ds.coarse_columns]
        assert sorted(r["audio_filename"] for r in rows) == sorted(val)
        assert all(float(r[c]) == 0 for r in rows for c in ds.fine_columns)
        by_name = {c.audio_filename: c for c in ds.clips}
        truth = np.array([by_name[r["audio_filename"]].verified for r in rows])
        probs = np.array([[float(r[c]) for c in ds.coarse_columns] for r in rows])
        # the metrics are computed on the values as written, so re-scoring the file gives the same floats
        rescored = ust_metrics(truth, probs, ds.classes)
        assert all(rescored[k] == res[k] for k in ("micro_auprc", "macro_auprc", "micro_f1", "class_auprc"))
    assert json.loads((out / "edgel3_sea-64" / "results.json").read_text())["weights"] != "untrained"


def test_framewise_and_cache_reuse(tiny_ust, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["classify", "ust", "--data", str(tiny_ust), "--model", "sea-64", "--out", str(out), *FAST,
            "--classifier-type", "framewise", "--aggregation", "max"]
    assert cli_main.main(args) == 0
    first = json.loads((out / "sea-64" / "results.json").read_text())
    assert first["settings"]["classifier"]["type"] == "framewise" and first["cache"]["computed"] == 12
    assert cli_main.main(args) == 0
    again = json.loads((out / "sea-64" / "results.json").read_text())
    assert again["cache"]["cached"] == 12 and again["micro_auprc"] == pytest.approx(first["micro_auprc"], abs=1e-9)
    capsys.readouterr()


def test_no_verified_rows_is_an_error_not_a_zero_score(tiny_ust, tmp_path, capsys):
    root = tmp_path / "ust"
    root.mkdir()
    (root / "dcase-ust-taxonomy.yaml").write_text((tiny_ust / "dcase-ust-taxonomy.yaml").read_text())
    (root / "audio").symlink_to(tiny_ust / "audio")
    lines = (tiny_ust / "annotations.csv").read_text().splitlines()
    col = lines[0].split(",").index("annotator_id")
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[col] != "0"]
    (root / "annotations.csv").write_text("\n".join(kept) + "\n")
    code = cli_main.main(["classify", "ust", "--data", str(root), "--model", "sea-64", "--out", str(tmp_path / "o"),
                          *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "validate split has no annotator_id 0 (verified) rows" in err
    assert not (tmp_path / "o" / "sea-64" / "results.json").exists()


def test_short_and_long_clips_are_padded_or_cut_with_a_warning(tmp_path):
    frames = ust_mod.fixed_length_frames(2.0)
    for seconds, word in [(1.5, "zero-padded"), (2.7, "cut")]:
        path = tmp_path / f"{seconds}.wav"
        sf.write(path, np.full(int(44100 * seconds), 0.1, np.float32), 44100)
        with pytest.warns(SeaTFWarning, match=f"lasts {seconds:.2f} s, not 2 s; {word} to 2 s"):
            x, ts = frames(path, 8000, 0.5, "l3e")
        assert x.shape == (3, 8000)
    exact = tmp_path / "exact.wav"
    sf.write(exact, np.full(88200, 0.1, np.float32), 44100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frames(exact, 8000, 0.5, "l3e")[0].shape == (3, 8000)


def test_demo_step_ust_part_reports_both_models_and_their_ratio(tiny_ust, tmp_path, monkeypatch):
    from sea_tf.demo import DemoContext
    from sea_tf.demo_steps import classify as step

    settings = step.ust_settings()
    assert settings["classifier"]["type"] == "mil" and settings["features"]["hop_size"] == 1.0   # the demo preset
    settings["features"].update(clip_seconds=2.0, hop_size=0.5)
    settings["classifier"].update(epochs=20, patience=20)
    monkeypatch.setattr(step, "ust_settings", lambda ctx=None: copy.deepcopy(settings))
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path, seed=3)
    ctx.report_dir.mkdir()
    figures, markdown, images = step.run_ust(ctx, tiny_ust, "sea-64", "sea-128", tmp_path / "ust")
    assert set(figures["models"]) == {"teacher", "student"} and figures["teacher_windows"] == 12 * 3
    m = figures["models"]
    assert figures["student_teacher_ratio"]["micro_auprc"] == pytest.approx(
        m["student"]["micro_auprc"] / m["teacher"]["micro_auprc"])
    assert "### SONYC-UST" in markdown and "| teacher |" in markdown and "Student / teacher: micro AUPRC" in markdown
    assert sorted(images) == ["classify-ust-pr-student.png", "classify-ust-pr-teacher.png"]
    assert all((ctx.report_dir / i).is_file() for i in images)
    # The demo's pareto report (sea-tf report) picks the UST figures out of the step's results.
    from sea_tf.report import write_report
    report = write_report([], tmp_path / "rep", objects=[{"classify": {"ust": figures}}], title="sea-tf: accuracy vs cost",
                          latency_stat="p50", html=False)
    text = report["markdown"].read_text()
    assert "## SONYC-UST" in text and f"| teacher | {m['teacher']['micro_auprc']:.3f} |" in text
    assert step.run_ust(ctx, tmp_path / "no-ust", "sea-64", "sea-128", tmp_path / "x") is None
