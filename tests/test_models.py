"""Builders, presets, cards, save/load, seeding, BN calibration and the resolver."""
import numpy as np
import pytest

from sea_tf.errors import ModelError, SeaTFError
from sea_tf.models import (PRESETS, build_student, build_teacher, calibrate_batchnorm,
                           load_model)
from sea_tf.models.calibrate import UNTRAINED_TEACHER_NAME

CARD_KEYS = {"name", "kind", "architecture", "sample_rate", "frame_length_s", "frame_samples", "embedding_size",
             "frontend", "params", "macs", "weights", "sea_tf_version"}
FRONTEND_KEYS = {"type", "sr", "n_dft", "n_hop", "n_mels", "fmin", "fmax", "htk", "norm", "padding", "decibel",
                 "output_shape"}

# docs/PROTOCOL.md §2.1 (params incl. BN statistics; MACs per 1-s frame of the network) and §1.1.
EXPECTED = {
    "sea-64": (399_460, 122.4e6, 64),
    "sea-128": (584_420, 131.3e6, 128),
    "sea-256": (1_175_524, 159.6e6, 256),
    "sea-512": (4_691_908, 636.5e6, 512),
    "edgel3-sparse": (4_689_860, 10.2e9, 512),
    "l3-mel256-512": (4_689_860, 10.2e9, 512),
    "l3-mel256-6144": (4_689_860, 10.2e9, 6144),
    "l3-mel128-512": (4_689_860, 5.1e9, 512),
    "l3-mel128-6144": (4_689_860, 5.1e9, 6144),
    "l3-linear-512": (4_689_860, 10.2e9, 512),
    "l3-linear-6144": (4_689_860, 10.2e9, 6144),
}


def _windows(n, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(sr) / sr
    out = [0.2 * rng.standard_normal(sr) * (1 + np.sin(2 * np.pi * (k + 1) * t)) for k in range(n)]
    return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("preset", list(EXPECTED))
def test_preset_params_macs_card_and_save_load(preset, tmp_path):
    model = load_model(preset)
    params, macs, dim = EXPECTED[preset]
    assert set(model.card) >= CARD_KEYS and set(model.frontend) >= FRONTEND_KEYS
    assert model.card["params"] == params
    assert model.card["macs"]["network"] == pytest.approx(macs, rel=0.01)
    assert model.card["macs"]["total"] == model.card["macs"]["frontend"] + model.card["macs"]["network"]
    assert model.embedding_size == dim and model.keras.output_shape == (None, dim)
    assert model.frame_samples == model.sample_rate == (8000 if preset.startswith("sea") else 48000)
    assert model.card["weights"] == {"source": "untrained", "seed": 20180216}
    assert model.network().input_shape[1:] == tuple(model.frontend["output_shape"])
    assert model.card["kind"] == ("teacher" if preset.startswith("l3") else "student")
    assert model.card["name"] == preset
    # Save -> load gives identical outputs (few windows: the teacher costs ~10 GMAC per window).
    x = _windows(2 if preset.startswith("sea") else 1, model.sample_rate)
    emb = model.embed_frames(x)
    assert emb.shape == (len(x), dim) and emb.dtype == np.float32
    if preset.startswith("sea"):
        assert emb.min() >= 0                                 # BN + ReLU + max pool (docs/PROTOCOL.md §8.4)
    path = model.save(tmp_path / f"{preset}.keras")
    assert (tmp_path / f"{preset}.card.json").exists()
    again = load_model(str(path))
    assert again.card == model.card
    np.testing.assert_array_equal(again.embed_frames(x), emb)


def test_presets_are_all_tested():
    assert set(PRESETS) == set(EXPECTED)


def test_seed_determinism():
    a, b, c = build_student("sea-64", seed=1), build_student("sea-64", seed=1), build_student("sea-64", seed=2)
    for wa, wb, wc in zip(a.keras.get_weights(), b.keras.get_weights(), c.keras.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.keras.get_weights(), c.keras.get_weights()))


def test_student_overrides_and_errors():
    model = build_student("sea-64", embedding_size=32, n_mels=40, fmax=3000.0)
    assert model.embedding_size == 32 and model.frontend["output_shape"] == [40, 50, 1]
    assert model.card["architecture"]["filters"] == [32, 64, 128, 32] and model.card["name"] == "sea-custom"
    matmul = build_student("sea-64", dft="matmul")
    x = _windows(2, 8000)
    np.testing.assert_allclose(matmul.embed_frames(x), build_student("sea-64").embed_frames(x), rtol=1e-4, atol=1e-4)
    assert matmul.card["macs"]["frontend"] > 50e6 > build_student("sea-64").card["macs"]["frontend"]
    with pytest.raises(ModelError, match="unknown student setting"):
        build_student("sea-64", n_filters=3)
    with pytest.raises(ModelError, match="contradicts"):
        build_student("sea-64", filters=[8, 8, 8, 8], embedding_size=16)
    with pytest.raises(ModelError, match="4 positive integers"):
        build_student("sea-64", filters=[8, 8, 8])
    with pytest.raises(ModelError, match="unknown student preset"):
        build_student("sea-65")
    with pytest.raises(ModelError, match="512 or 6144"):
        build_teacher("mel256", 128)
    with pytest.raises(ModelError, match="input_repr"):
        build_teacher("mel64", 512)
    with pytest.raises(ModelError, match=r"\[N, 8000\]"):
        build_student("sea-64").embed_frames(np.zeros((2, 16000), np.float32))


def test_teacher_head_and_calibration():
    teacher = build_teacher("mel128", 6144)
    pool = teacher.network().get_layer("max_pooling2d_4")
    assert pool.padding == "same" and pool.output_shape[1:] == (4, 3, 512)
    names = [layer.name for layer in teacher.network().layers]
    assert names.index("audio_embedding_layer") == names.index("max_pooling2d_4") - 1   # no BN/ReLU after it
    x = _windows(8, 48000)
    before = teacher.embed_frames(x[:4])
    calibrate_batchnorm(teacher, x)
    after = teacher.embed_frames(x[:4])
    bn = teacher.network().get_layer("batch_normalization_1")
    assert bn.moving_mean.numpy()[0] < -5                  # dB-domain mean, not the default 0
    assert teacher.card["name"] == UNTRAINED_TEACHER_NAME
    assert teacher.card["weights"]["calibrated_batchnorm"] == {"n_frames": 8, "n_layers": 8}
    assert after.min() < 0 and not np.allclose(before, after)
    # Calibrated: windows are told apart relative to the embedding scale.
    spread = np.std(after, axis=0).mean() / (np.abs(after).mean() + 1e-9)
    assert spread > 0.05


def test_resolver_errors(tmp_path, monkeypatch):
    model = build_student("sea-64")
    assert load_model(model) is model
    with pytest.raises(ModelError, match="unknown model 'sea64'"):
        load_model("sea64")
    with pytest.raises(ModelError, match="no such model file"):
        load_model(str(tmp_path / "m.keras"))
    other = tmp_path / "m.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model format"):
        load_model(other)
    with pytest.raises(ModelError, match="must be a preset name"):
        load_model(3)
    monkeypatch.setenv("SEA_TF_HOME", str(tmp_path / "home"))
    with pytest.raises(SeaTFError):
        load_model("edgel3/sea-64")          # not cached: the weights cache says how to fetch it
    lonely = tmp_path / "lonely.keras"
    model.keras.save(lonely)
    with pytest.raises(ModelError, match="no card"):
        load_model(lonely)


def test_rebuild_from_card_and_corrupt_keras(tmp_path):
    from sea_tf.models.builders import rebuild
    model = build_student("sea-128", seed=3)
    again = rebuild(model.card, seed=3)
    assert again.card == model.card
    for a, b in zip(model.keras.get_weights(), again.keras.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert rebuild(build_teacher("mel128", 6144).card).card["architecture"]["pool_size"] == [4, 8]
    path = model.save(tmp_path / "m.keras")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelError, match="named .keras but not a zip archive; a .keras model must be a Keras zip"):
        load_model(path)
