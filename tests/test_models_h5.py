"""Published weight files: REF parity (SEA-64), edgel3 layout checks, openl3 teacher files in both layouts."""
import h5py
import numpy as np
import pytest

from sea_tf.embed import get_embedding
from sea_tf.errors import ModelError
from sea_tf.models.frontends import dft_kernels, mel_filterbank, teacher_frontend_spec
from sea_tf.models import load_model
from sea_tf.models.h5_weights import check_layout, inspect_weight_file, network_weight_shapes
from tolerance_support import ulp32

TEACHER_NAMES = ["batch_normalization_1"] + [
    name for i in range(1, 8) for name in (f"conv2d_{i}", f"batch_normalization_{i + 1}")] + ["audio_embedding_layer"]
KERAS_WEIGHT_NAMES = {1: ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"], 2: ["kernel:0", "bias:0"]}


def _rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------- the published SEA-64 student

@pytest.fixture(scope="module")
def sea64(sea64_h5):
    return load_model(sea64_h5)


@pytest.mark.parametrize("center", [True, False])
def test_ref_parity_through_api(sea64, sea64_h5, chirp_wav, center):
    import soundfile as sf
    wav, ref_path = chirp_wav
    ref = np.load(ref_path)
    audio, sr = sf.read(wav)
    emb, ts = get_embedding(audio, sr, model=sea64, center=center)
    assert emb.shape == ref[f"emb_center_{center}"].shape and emb.dtype == np.float32
    assert _rel_err(emb, ref[f"emb_center_{center}"]) < 1e-4
    np.testing.assert_allclose(ts, ref[f"ts_center_{center}"])
    # Through the resolver by path (cached) as well.
    emb_path, _ = get_embedding(audio, sr, model=str(sea64_h5), center=center)
    assert _rel_err(emb_path, ref[f"emb_center_{center}"]) < 1e-4


def test_published_card(sea64):
    card = sea64.card
    assert card["name"] == "edgel3/sea-64" and card["params"] == 399_460
    assert card["architecture"]["filters"] == [32, 64, 128, 64]
    weights = card["weights"]
    assert weights["source"] == "published" and weights["keras_version"] == "2.0.9"
    assert weights["sha256"].startswith("e8cd0eaac5d4")
    constants = weights["frontend_constants"]
    # The stored float32 constants against ours: a float32 rounding or two at |kernel| <= 1, and
    # 1 ulp at the filterbank's largest weight (0.042: Slaney-normalised 8 kHz bands).
    assert constants["checked"] and constants["dft_kernels_max_abs_diff"] <= ulp32(1.0)
    assert constants["filterbank_max_abs_diff"] <= ulp32(0.042)
    assert card["frontend"]["type"] == "kapre-0.1.4-mel" and card["frontend"]["fmax"] == 4000.0


def test_inspect_and_check_layout_ref(sea64_h5):
    info = inspect_weight_file(sea64_h5)
    assert info["layout"] == "keras-full-model" and info["keras_version"] == "2.0.9"
    assert len(info["weighted_layers"]) == 18                    # melspectrogram + 9 BN + 8 conv
    assert info["weighted_layers"][0] == ("melspectrogram_1", [(1024, 1, 1, 513), (1024, 1, 1, 513), (513, 64)])
    assert info["weighted_layers"][-2][0] == "audio_embedding_layer"
    assert check_layout(sea64_h5, "edgel3-sea")["embedding_size"] == 64
    with pytest.raises(ModelError, match="edgel3-sea"):
        check_layout(sea64_h5, "edgel3-sea", embedding_size=128)
    with pytest.raises(ModelError, match="spectrogram layer"):
        check_layout(sea64_h5, "openl3-v0_4_0")
    with pytest.raises(ModelError, match="edgel3-sparse"):
        check_layout(sea64_h5, "edgel3-sparse")
    with pytest.raises(ModelError, match="unknown weight-file kind"):
        check_layout(sea64_h5, "openl3")


# ---------------------------------------------------------------- synthetic openl3 teacher files

def _teacher_arrays(seed):
    rng = np.random.default_rng(seed)
    arrays = []
    for shapes in network_weight_shapes([64, 128, 256, 512], embedding_bn_relu=False):
        if len(shapes) == 4:   # BN: gamma, beta, mean, positive variance
            c = shapes[0][0]
            arrays.append([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(-20 if c == 1 else 0, 1, c),
                           rng.uniform(0.5, 2.0, c) * (100 if c == 1 else 1)])
        else:
            kernel = rng.normal(0, np.sqrt(2 / np.prod(shapes[0][:3])), shapes[0])
            arrays.append([kernel, rng.normal(0, 0.01, shapes[1])])
    return [[a.astype(np.float32) for a in layer] for layer in arrays]


def write_openl3_file(path, arrays, version="v0_4_0", input_repr="mel128", nested_names=False,
                      under_model_weights=False, corrupt=None):
    """Write a Keras-2 weights-only file in openl3's layout (v0_2_0 adds a leading spectrogram layer)."""
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if under_model_weights else handle
        names = ["input_1"]
        if version == "v0_2_0":
            spec = teacher_frontend_spec(input_repr)
            group_name = "melspectrogram_1" if spec["n_mels"] else "spectrogram_1"
            real, imag = dft_kernels(spec["n_dft"])
            values = {"real_kernels:0": real[:, None, None, :], "imag_kernels:0": imag[:, None, None, :]}
            if spec["n_mels"]:
                values["Variable:0"] = mel_filterbank(spec)
            group = root.create_group(group_name)
            for key, value in values.items():
                group.create_dataset(key, data=value.astype(np.float32))
            group.attrs["weight_names"] = [k.encode() for k in values]
            names.append(group_name)
        for name, layer in zip(TEACHER_NAMES, arrays):
            group = root.create_group(name)
            weight_names = KERAS_WEIGHT_NAMES[1 if len(layer) == 4 else 2]
            if nested_names:
                weight_names = [f"{name}/{w}" for w in weight_names]
            for w, value in zip(weight_names, layer):
                if corrupt == name and w.endswith("kernel:0"):
                    value = value[..., :-1]
                group.create_dataset(w, data=value)
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
            names.append(name)
            if name.startswith("conv2d_") and name[-1] in "246":
                root.create_group(f"max_pooling2d_{int(name[-1]) // 2}").attrs["weight_names"] = np.array([], "S1")
                names.append(f"max_pooling2d_{int(name[-1]) // 2}")
        root.create_group("input_1").attrs["weight_names"] = np.array([], "S1")
        root.attrs["layer_names"] = [n.encode() for n in names]
        handle.attrs["keras_version"] = b"2.2.4"
    return path


@pytest.fixture(scope="module")
def teacher_arrays():
    return _teacher_arrays(3)


def test_openl3_both_layouts_load_identically(tmp_path, teacher_arrays):
    v4 = write_openl3_file(tmp_path / "openl3_audio_mel128_env-v0_4_0.h5", teacher_arrays)
    v2 = write_openl3_file(tmp_path / "weights_v2.h5", teacher_arrays, version="v0_2_0", nested_names=True,
                           under_model_weights=True)
    assert inspect_weight_file(v4)["layout"] == "weights-only"
    assert check_layout(v4, "openl3-v0_4_0")["kind"] == "openl3-v0_4_0"
    assert check_layout(v2, "openl3-v0_2_0")["input_repr"] == "mel128"
    with pytest.raises(ModelError, match="mel256"):
        check_layout(v2, "openl3-v0_2_0", input_repr="mel256")
    m4 = load_model(v4)                                          # input_repr from the file name
    m2 = load_model(v2, embedding_size=6144)                     # from the spectrogram layer
    assert m4.card["weights"]["format"] == "openl3-v0_4_0" and m2.card["weights"]["format"] == "openl3-v0_2_0"
    assert m2.card["weights"]["frontend_constants"]["checked"]
    assert m4.card["name"] == "openl3/mel128-512" and m2.embedding_size == 6144
    net = m4.network()
    np.testing.assert_array_equal(net.get_layer("conv2d_1").get_weights()[0], teacher_arrays[1][0])
    np.testing.assert_array_equal(net.get_layer("audio_embedding_layer").get_weights()[1], teacher_arrays[-1][1])
    np.testing.assert_array_equal(net.get_layer("batch_normalization_8").get_weights()[3], teacher_arrays[-2][3])
    x = (np.random.default_rng(0).standard_normal((1, 48000)) * 0.1).astype(np.float32)
    e4, e2 = m4.embed_frames(x), m2.embed_frames(x)
    # Same weights: the 6144-d grid's max is the 512-d global max.
    np.testing.assert_allclose(e2.reshape(4, 3, 512).max(axis=(0, 1)), e4[0], rtol=1e-5, atol=1e-5)
    assert e4.min() < 0                                         # linear embedding layer, no ReLU


def test_openl3_bad_files(tmp_path, teacher_arrays):
    bad = write_openl3_file(tmp_path / "openl3_audio_mel256_music.h5", teacher_arrays, corrupt="conv2d_3")
    with pytest.raises(ModelError) as err:
        load_model(bad)
    message = str(err.value)
    assert "openl3_audio_mel256_music.h5" in message and "conv2d_3" in message
    assert "(3, 3, 64, 127)" in message and "(3, 3, 64, 128)" in message
    short = write_openl3_file(tmp_path / "openl3_audio_linear_env.h5", teacher_arrays[:-1])
    with pytest.raises(ModelError, match="15 weighted layers"):
        load_model(short)
    noname = write_openl3_file(tmp_path / "teacher.h5", teacher_arrays)
    with pytest.raises(ModelError, match="pass input_repr"):
        load_model(noname)
    assert load_model(noname, input_repr="linear").frontend["type"] == "kapre-0.1.4-linear"
    truncated = tmp_path / "openl3_audio_mel128_env.h5"
    truncated.write_bytes(noname.read_bytes()[:2000])
    with pytest.raises(ModelError, match="not a readable HDF5"):
        load_model(truncated)
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    with pytest.raises(ModelError, match="layer_names"):
        inspect_weight_file(empty)


# ---------------------------------------------------------------- synthetic edgel3 sparse full model

def _sparse_model_config():
    layers = [{"class_name": "InputLayer", "config": {"name": "input_1"}},
              {"class_name": "Melspectrogram", "config": {
                  "name": "melspectrogram_1", "n_dft": 2048, "n_hop": 242, "padding": "same", "sr": 48000,
                  "n_mels": 256, "fmin": 0.0, "fmax": 24000.0, "power_melgram": 1.0, "htk": True, "norm": 1,
                  "return_decibel_melgram": True}},
              {"class_name": "BatchNormalization", "config": {"name": "batch_normalization_1"}}]
    for i, width in enumerate([64, 64, 128, 128, 256, 256, 512, 512], start=1):
        name = "audio_embedding_layer" if i == 8 else f"conv2d_{i}"
        layers.append({"class_name": "Conv2D", "config": {"name": name, "filters": width}})
        if i < 8:
            layers += [{"class_name": "BatchNormalization", "config": {"name": f"batch_normalization_{i + 1}"}},
                       {"class_name": "Activation", "config": {"name": f"activation_{i}"}}]
    layers += [{"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d_4"}},
               {"class_name": "Flatten", "config": {"name": "flatten_1"}}]
    return {"class_name": "Model", "config": {"name": "audio_model", "layers": layers}}


def test_edgel3_sparse_full_model(tmp_path, teacher_arrays):
    import json
    path = tmp_path / "edgel3_ft_audio_sparsity_95.45.h5"
    write_openl3_file(path, teacher_arrays, version="v0_2_0", input_repr="mel256", nested_names=True,
                      under_model_weights=True)
    with h5py.File(path, "a") as handle:
        handle.attrs["model_config"] = json.dumps(_sparse_model_config()).encode()
        handle.attrs["keras_version"] = b"2.3.1"
    assert check_layout(path, "edgel3-sparse")["kind"] == "edgel3-sparse"
    with pytest.raises(ModelError):
        check_layout(path, "edgel3-sea")
    model = load_model(path)
    assert model.card["name"] == "edgel3/edgel3_ft_audio_sparsity_95.45"
    assert model.card["architecture"]["preset"] == "edgel3-sparse" and model.embedding_size == 512
    assert model.card["weights"]["frontend_constants"]["checked"]
    assert model.frontend["n_mels"] == 256 and model.sample_rate == 48000
    np.testing.assert_array_equal(model.network().get_layer("conv2d_7").get_weights()[0], teacher_arrays[13][0])


def test_openl3_with_openl3_04_frontend(tmp_path, teacher_arrays):
    path = write_openl3_file(tmp_path / "openl3_audio_mel256_music-v0_4_0.h5", teacher_arrays)
    model = load_model(path, frontend="openl3-0.4-kapre", embedding_size=6144)
    assert model.frontend["type"] == "openl3-0.4-kapre-mel" and model.frontend["padding"] == "end"
    assert model.frontend["htk"] is False and model.embedding_size == 6144
