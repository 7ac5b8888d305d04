"""`sea-tf classify us8k|esc50|final` on tiny generated datasets, configs, and the saved classifier."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.presets import load_defaults, preset_names, schema_of_preset

from classify_support import TONES, band_embedder, write_tone_us8k

ROOT = Path(__file__).resolve().parent.parent


def _tone(rng, f0, sr, dur):
    t = np.arange(int(dur * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * f0 * rng.uniform(0.97, 1.03) * t) + 0.01 * rng.normal(size=len(t))
    return tone.astype(np.float32)


@pytest.fixture(scope="module")
def us8k_root(tmp_path_factory):
    """UrbanSound8K layout: 10 folds x 3 tone classes x 1 clip of 0.6-1.2 s at 16 kHz."""
    return write_tone_us8k(tmp_path_factory.mktemp("us8k"), 16000, 3,
                           lambda rng, f0: _tone(rng, f0, 16000, rng.uniform(0.6, 1.2)), end=1)


TINY = ["--set", "classifier.mlp.hidden=[32]", "--set", "classifier.mlp.epochs=30",
        "--set", "classifier.mlp.learning_rate=0.01", "--set", "classifier.mlp.patience=5"]


def test_us8k_cli_then_final_classifier(us8k_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main.main(["classify", "us8k", "--data", str(us8k_root), "--model", "sea-64", "--out", str(out),
                          "--hop-size", "0.5", "--framing", "centered", "--no-progress", *TINY])
    # centred: these 0.6-1.2 s clips get 2-3 windows each (the default L3E framing gives 1, too few frames
    # for 30 epochs to learn the tones); the default framing is checked in tests/journeys (journey d)
    assert code == 0, capsys.readouterr().err
    table = json.loads((out / "comparison.json").read_text())
    summary = table["models"]["sea-64"]
    assert table["n_folds"] == 10 and len(summary["per_fold"]) == 10
    assert summary["n_clips"] == 30 and np.sum(summary["confusion"]) == 30
    assert summary["accuracy_mean"] >= 0.8                 # three tones: easy even for an untrained student
    assert (out / "sea-64" / "confusion.png").is_file() and (out / "classify-us8k.config.yaml").is_file()
    fold1 = json.loads((out / "sea-64" / "fold-1.json").read_text())
    assert fold1["validation_fold"] == 10 and fold1["train_folds"] == list(range(2, 10))
    assert sorted(fold1["predictions"]) == sorted(f"101-{c}-0-0.wav" for c in TONES)
    md = (out / "comparison.md").read_text()
    assert "| sea-64 | 64 |" in md and "| 10 | " in md                    # summary row, fold 10 row
    assert "| car_horn | – |" in md                                         # a class the data lacks

    clf = tmp_path / "clf" / "tones.keras"
    code = cli_main.main(["classify", "final", "--data", str(us8k_root), "--model", "sea-64", "--out-file", str(clf),
                          "--hop-size", "0.5", "--cache-dir", str(out / "cache"), "--no-progress",
                          "--set", "mlp.hidden=[32]", "--set", "mlp.epochs=5"])
    assert code == 0, capsys.readouterr().err
    card = json.loads((tmp_path / "clf" / "tones.card.json").read_text())
    assert card["kind"] == "classifier" and len(card["classes"]) == 10 and card["classes"][3] == "dog_bark"
    assert card["embedding_model"]["name"] and card["embedding_size"] == 64
    assert card["input_standardization"]["in_model"] and len(card["input_standardization"]["mean"]) == 64
    assert card["training"]["train_clips"] + card["training"]["validation_clips"] == 30

    # The exported TFLite takes raw embeddings: the scaler is inside the model.
    from ai_edge_litert.interpreter import Interpreter

    from sea_tf.backend import tf
    from sea_tf.classify.final import load_classifier
    model, _ = load_classifier(clf)
    raw = np.random.default_rng(0).gamma(2.0, 1.0, size=(4, 64)).astype(np.float32)
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interp = Interpreter(model_content=tflite)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [4, 64])
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], raw)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]),
                               model(raw).numpy(), atol=1e-5)


def test_esc50_folds_from_file_names(tmp_path):
    """ESC-50 goes through the same code path: 5 folds from the names, validation = previous fold."""
    from sea_tf.classify.crossval import cross_validate
    from sea_tf.classify.features import extract_features, load_clipset

    rng = np.random.default_rng(5)
    (tmp_path / "audio").mkdir()
    for fold in range(1, 6):
        for target, f0 in TONES.items():
            for take in "AB":
                sf.write(tmp_path / "audio" / f"{fold}-{1000 + fold}-{take}-{target}.wav",
                         _tone(rng, f0, 44100, 1.5), 44100)
    clips = load_clipset(tmp_path, "esc50")
    assert clips.fold_ids == [1, 2, 3, 4, 5] and len(clips.classes) == 50
    feats = extract_features(clips, band_embedder(), tmp_path / "cache", hop_size=0.5, framing="centered",
                             progress=False, max_failed_fraction=0.05)
    summary = cross_validate(feats, tmp_path / "out", clf_cfg={"mlp": {"hidden": [16], "epochs": 25, "patience": 5,
                                                               "learning_rate": 1e-2}}, seed=0, workers=1,
                             progress=False)
    assert [f["validation_fold"] for f in summary["folds"]] == [5, 1, 2, 3, 4]
    assert summary["accuracy_mean"] >= 0.9


def test_missing_model_is_one_line_error(us8k_root, capsys):
    assert cli_main.main(["classify", "us8k", "--data", str(us8k_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0]


@pytest.mark.parametrize("name", preset_names("classify"))
def test_config_files_resolve(name):
    defaults = load_defaults(schema_of_preset(name))
    cfg = config.resolve(defaults, name)
    assert set(cfg) == set(defaults)
    if schema_of_preset(name) in ("classify/us8k", "classify/esc50", "classify/final"):
        mlp = cfg["mlp"] if "mlp" in cfg else cfg["classifier"]["mlp"]
        assert mlp["hidden"] == [512, 128] and mlp["l2"] == 1e-5   # the published MLP in every US8K/ESC-50 preset


def test_demo_step_runs_the_demo_preset():
    from sea_tf.demo_steps.classify import demo_settings
    cfg = demo_settings()
    assert cfg == config.resolve(load_defaults("classify/us8k"), "classify/demo")
    assert cfg["classifier"]["mlp"]["learning_rate"] == 1e-3 and cfg["classifier"]["mlp"]["patience"] == 10


def test_audio_not_in_metadata_warns_with_its_name(us8k_root, tmp_path):
    import shutil

    from sea_tf.classify.features import load_clipset
    from sea_tf.errors import SeaTFWarning
    root = tmp_path / "copy"
    shutil.copytree(us8k_root, root)
    shutil.copyfile(root / "audio" / "fold1" / "101-0-0-0.wav", root / "audio" / "fold2" / "999-0-0-0.wav")
    with pytest.warns(SeaTFWarning, match=r"1 audio file\(s\) are not in the metadata.*fold2/999-0-0-0.wav"):
        clips = load_clipset(root, "us8k")
    assert len(clips) == 30


def test_demo_step_reports_both_models_and_saves_the_classifier(us8k_root, tmp_path, monkeypatch):
    from sea_tf.demo import DemoContext
    from sea_tf.demo_steps import classify as step

    settings = step.demo_settings()
    settings["classifier"]["mlp"] = {"hidden": [32], "l2": 1e-5, "learning_rate": 1e-2, "batch_size": 32,
                                     "epochs": 20, "patience": 5}
    settings["protocol"]["test_folds"] = [1, 2]
    monkeypatch.setattr(step, "demo_settings", lambda ctx=None: copy.deepcopy(settings))
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=us8k_root)
    ctx.report_dir.mkdir()
    ctx.artifacts.update(data_dir=us8k_root, teacher_model="sea-64", embed_model="sea-128")
    report = step.run(ctx)
    fig = report.figures
    assert fig["hop_size_s"] == 0.1 and fig["n_clips"] == 30          # small data: the published hop
    assert set(fig["accuracy"]) == {"teacher", "student"} and fig["student"]["spec"] == "sea-128"
    assert sorted(fig["accuracy"]["teacher"]["per_fold"]) == ["1", "2"]
    ratio = fig["accuracy"]["student"]["mean"] / fig["accuracy"]["teacher"]["mean"]
    assert fig["student_teacher_ratio"] == pytest.approx(ratio)
    assert Path(ctx.artifacts["classifier"]).is_file() and fig["classifier"]["classes"][0] == "air_conditioner"
    assert all((ctx.report_dir / image).is_file() for image in report.images) and len(report.images) == 2
    assert "Student / teacher mean accuracy" in report.markdown
