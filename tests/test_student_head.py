"""``student.head``: the published head (BN + ReLU + max pool) cannot output a negative value; the
``linear`` head (neither BN nor ReLU) and ``projection`` (a final Dense layer) can, and so reach centred targets.

The R² comparison holds by construction: for any predictor ``p >= 0`` and every target value ``y``,
``(p - y)² >= min(y, 0)²``, so no non-negative predictor's variance-weighted R² exceeds
``cap = 1 - Σ min(y, 0)² / Σ (y - ȳ)²`` (the R² of the oracle ``max(y, 0)``). Targets drawn around a
negative centre make the cap far below what a constant prediction of the centre reaches.
"""
import numpy as np
import pytest

from sea_tf.errors import ConfigError, ModelError

SR = 8000
TINY = {"filters": [4, 4, 8, 8], "n_mels": 16}


def _audio(n, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(SR, dtype=np.float32) / SR
    freqs = rng.uniform(80, 3800, size=(n, 1))
    return (rng.uniform(0.05, 0.5, (n, 1)) * np.sin(2 * np.pi * freqs * t)
            + 0.01 * rng.standard_normal((n, SR))).astype(np.float32)


def _student(head, seed=3):
    from sea_tf.distill import student as student_mod
    return student_mod.build("sea-64", overrides=TINY, head=head, d=8, frame_samples=SR, seed=seed)


def test_published_head_is_non_negative_and_the_others_are_not():
    x = _audio(16, 0)
    outs = {head: _student(head).keras(x, training=True).numpy() for head in ("published", "linear", "projection")}
    assert outs["published"].min() >= 0
    assert outs["linear"].min() < 0 and outs["projection"].min() < 0
    assert {o.shape for o in outs.values()} == {(16, 8)}


def test_card_records_the_head_and_rebuilds_it():
    from sea_tf.models import build_student
    from sea_tf.models.builders import rebuild
    linear = _student("linear")
    assert linear.card["architecture"]["head"] == "linear" and linear.name == "sea-custom"
    again = rebuild(linear.card)
    assert [w.shape for w in again.network().get_weights()] == [w.shape for w in linear.network().get_weights()]
    assert again.card["architecture"]["head"] == "linear"
    # linear drops the embedding BN (γ, β, moving mean and variance); projection adds a Dense (kernel, bias)
    published = build_student("sea-64", **TINY)
    assert len(linear.network().get_weights()) == len(published.network().get_weights()) - 4
    assert len(_student("projection").network().get_weights()) == len(published.network().get_weights()) + 2
    assert build_student("sea-64").card["architecture"]["head"] == "published"
    with pytest.raises(ModelError, match="unknown student head"):
        build_student("sea-64", head="relu6", **TINY)


def test_unknown_head_is_one_config_error_before_work(tmp_path):
    from sea_tf.distill.defaults import DEFAULTS
    from sea_tf.distill.train import distill
    import copy
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(shards=[str(tmp_path / "missing")], targets=str(tmp_path / "missing-targets"), out=str(tmp_path / "run"))
    cfg["student"]["head"] = "relu"
    with pytest.raises(ConfigError, match="student.head must be one of published, linear, projection; got 'relu'"):
        distill(cfg, log=lambda _: None)
    assert not (tmp_path / "run").exists()


def _fit_r2(head, x, y, x_held, y_held, steps):
    from sea_tf.backend import keras
    from sea_tf.distill import student as student_mod
    from sea_tf.distill.evaluate import regression_metrics
    from sea_tf.models import calibrate_batchnorm
    keras.utils.set_random_seed(7)
    student = _student(head, seed=7)
    calibrate_batchnorm(student, x)     # as train.calibrate_bn: inference-mode BN statistics from the data
    model, _ = student_mod.training_model(student, mixed_precision=False)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    model.fit(x, y, batch_size=16, epochs=steps * 16 // len(x), shuffle=True, verbose=0)
    return regression_metrics(model.predict(x_held, verbose=0), y_held)["r2"]


def test_linear_head_passes_the_r2_cap_of_any_non_negative_student():
    rng = np.random.default_rng(0)
    centre, spread = -3.0, 1.0          # targets in standard units around a negative centre
    x, x_held = _audio(64, 1), _audio(32, 2)
    y = (centre + spread * rng.standard_normal((64, 8))).astype(np.float32)
    y_held = (centre + spread * rng.standard_normal((32, 8))).astype(np.float32)
    sst = np.sum((y_held - y_held.mean(axis=0)) ** 2)
    cap = 1 - np.sum(np.minimum(y_held, 0) ** 2) / sst        # about 1 - (centre² + spread²) / spread² = -9
    published = _fit_r2("published", x, y, x_held, y_held, steps=240)
    linear = _fit_r2("linear", x, y, x_held, y_held, steps=240)
    assert published <= cap + 1e-9
    # A prediction off the centre by e spreads scores about -e²; half the cap (≈ -4.9) needs e < 2.2, which
    # Adam's bounded steps (≈ lr = 0.02 per step on each weight, 240 steps: up to 4.8 on the last bias alone)
    # reach. The published head stays below the cap whatever it learns.
    assert linear > cap / 2, (linear, cap)


def test_linear_head_student_exports_to_int8_and_runs_on_the_board_runner(tmp_path):
    from device.runner import load_artifact
    from export import export_file
    from export.metadata import read_sidecar
    student = _student("linear")
    calibration, held_out = _audio(32, 4), _audio(8, 5)
    summary = export_file(student, tmp_path / "out", modes="fp32,int8", calibration=calibration, held_out=held_out,
                          progress=False, cfg={"latency": {"runs": 2, "warmup": 1, "threads": 1}})
    rows = {a["mode"]: a for a in summary["artifacts"]}
    art = load_artifact(rows["int8"]["path"])
    assert read_sidecar(rows["int8"]["path"])["model_card"]["architecture"]["head"] == "linear"
    emb = art.embed_frames(held_out)
    reference = student.keras.predict(held_out, verbose=0)
    assert emb.shape == (8, 8) and reference.min() < 0 and emb.min() < 0   # negative outputs survive int8
    assert rows["int8"]["cosine_mean"] > 0.9


def test_presets_keep_the_published_head_and_sea_64_plus_is_linear():
    from pathlib import Path
    from sea_tf import config
    from sea_tf.presets import load_defaults
    defaults = load_defaults("distill")
    assert defaults["student"]["head"] == "published"
    for path in sorted((Path(__file__).resolve().parents[1] / "configs" / "distill").glob("*.yaml")):
        if path.stem == "defaults":
            continue
        head = config.resolve(defaults, f"distill/{path.stem}")["student"]["head"]
        assert head == ("linear" if path.stem == "sea-64-plus" else "published"), path.name
