"""Full-int8 body preparation (export/int8_body.py): exact input-norm fold, adaptive rounding of the
first convolution, percentile activation ranges; every file stays int8 and runs on LiteRT."""
import numpy as np
import pytest

from sea_tf.backend import keras


def db_images(n, seed, shape=(16, 12)):
    """dB-like images in [-80, 0]: a per-window level (quiet/flat vs peaky) plus smooth structure."""
    rng = np.random.default_rng(seed)
    f, t = shape
    out = np.empty((n, f, t, 1), np.float32)
    for i in range(n):
        level = rng.uniform(-60, -10)
        bumps = np.cumsum(np.cumsum(rng.standard_normal((f, t)), 0), 1)
        x = level + rng.uniform(2, 15) * bumps / (np.abs(bumps).max() + 1e-9) + rng.standard_normal((f, t))
        x = np.clip(x - x.max(), -80, 0)
        out[i, ..., 0] = x
    return out


def tiny_body(seed=0, shape=(16, 12)):
    """Input BN (dB statistics) → conv-BN-ReLU ×2 → global max pool: the SEA body's layout in small."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((*shape, 1), name="frontend_features")
    x = keras.layers.BatchNormalization(name="input_bn")(x)
    for k, filters in enumerate((8, 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{k}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{k}")(x)
        x = keras.layers.Activation("relu", name=f"relu{k}")(x)
    x = keras.layers.MaxPooling2D(shape)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, x, name="network")
    rng = np.random.default_rng(seed)
    # Zero-sum (edge-detecting) first kernels, like the trained SEA conv1: the output carries the
    # image's local structure while rounding errors multiply its mean level.
    kernel, bias = model.get_layer("conv0").get_weights()
    kernel = rng.normal(0, 1, kernel.shape)
    model.get_layer("conv0").set_weights([kernel - kernel.mean(axis=(0, 1, 2)), bias])
    model.get_layer("input_bn").set_weights([np.array([0.9]), np.array([-0.2]), np.array([-30.0]), np.array([150.0])])
    for k in range(2):
        bn = model.get_layer(f"bn{k}")
        c = bn.get_weights()[0].shape[0]
        bn.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.2, 0.3, c), rng.normal(0, 0.3, c),
                        rng.uniform(0.5, 2.0, c)])
    return model


@pytest.fixture(scope="module")
def body():
    return tiny_body()


@pytest.fixture(scope="module")
def images():
    return db_images(160, 0), db_images(60, 1)


def _tflite_outputs(data, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (s, z), (so, zo) = i["quantization"], o["quantization"]
    out = []
    for k in range(len(x)):
        it.set_tensor(i["index"], np.clip(np.round(x[k:k + 1] / s) + z, -128, 127).astype(np.int8))
        it.invoke()
        out.append((it.get_tensor(o["index"])[0].astype(np.float32) - zo) * so)
    return np.array(out), it


def _int8(model, cal):
    from export.calibration import representative_dataset
    from export.convert import convert
    return convert(model, "int8", representative=representative_dataset(cal), io="int8", name="tiny")


def test_fold_input_norm_is_exact_borders_included(body, images):
    from export.int8_body import ConstantPad2D, fold_input_norm

    folded, pad_value = fold_input_norm(body)
    a = 0.9 / np.sqrt(150.0 + 1e-3)
    assert pad_value == pytest.approx(-30.0 + 0.2 / a, rel=1e-5)   # where the normalized image is 0
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.name == "input_bn"
                   for layer in folded.layers)
    assert isinstance(folded.layers[1], ConstantPad2D)
    x = images[1]
    # conv0's own output (pre-BN) everywhere, borders included, not just the pooled embedding
    ref = keras.Model(body.input, body.get_layer("conv0").output).predict(x, verbose=0)
    got = keras.Model(folded.input, folded.layers[2].output).predict(x, verbose=0)
    np.testing.assert_allclose(got, ref, atol=2e-4 * np.abs(ref).max())
    np.testing.assert_allclose(folded.predict(x, verbose=0), body.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_adaptive_rounding_beats_nearest_and_keeps_scale():
    from export.int8_body import adaptive_rounding, patch_moments

    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 0.2, (3, 3, 1, 6))
    moments = patch_moments(db_images(40, 2), 3, pad_value=-25.0)
    codes, scales, correction = adaptive_rounding(kernel, moments)
    flat, cf = kernel.reshape(9, 6), codes.reshape(9, 6)
    np.testing.assert_allclose(scales, np.abs(flat).max(0) / 127)
    assert np.all(np.abs(cf).max(0) == 127)                          # the converter derives the same scale
    assert np.all(np.abs(cf - flat / scales).max(0) < 1.0)           # floor or ceil of every weight
    n = 9
    resid = moments[:n, :n] - np.outer(moments[:n, n], moments[:n, n]) / moments[n, n]
    for c in range(6):
        e_ada = cf[:, c] * scales[c] - flat[:, c]
        e_near = np.round(flat[:, c] / scales[c]) * scales[c] - flat[:, c]
        assert e_ada @ resid @ e_ada <= e_near @ resid @ e_near + 1e-12
    assert np.all(np.isfinite(correction))


def test_converter_keeps_the_chosen_codes(body, images):
    """The int8 kernel in the .tflite is exactly the adaptive codes (BN folded by the converter)."""
    from export.int8_body import adaptive_rounding, fold_input_norm, patch_moments, prepare_body

    cal = images[0]
    prepared, info = prepare_body(body, cal, {"fold_input_norm": True, "first_conv_rounding": "adaptive"})
    assert info["fold_input_norm"] and info["first_conv_rounding"] == "adaptive"
    folded, pad = fold_input_norm(body)
    bn = body.get_layer("bn0")
    g, _, _, var = bn.get_weights()
    effective = folded.layers[2].get_weights()[0] * (g / np.sqrt(var + bn.epsilon))
    codes, _, _ = adaptive_rounding(effective, patch_moments(cal, 3, pad_value=pad))
    _, it = _tflite_outputs(_int8(prepared, cal), images[1][:2])
    kernels = [t for t in it.get_tensor_details() if t["dtype"] == np.int8 and list(t["shape"]) == [8, 3, 3, 1]]
    assert len(kernels) == 1
    stored = it.get_tensor(kernels[0]["index"])                       # [O, H, W, I]
    np.testing.assert_array_equal(stored, np.transpose(codes, (3, 0, 1, 2)))
    assert info["first_conv"]["max_code_change"] == int(
        np.abs(codes - np.round(effective / (np.abs(effective).max(axis=(0, 1, 2)) / 127))).max())


def test_prepared_int8_is_closer_to_float_and_fully_int8(body, images):
    from export.convert import check_builtin_ops
    from export.fidelity import compare
    from export.int8_body import prepare_body

    cal, held = images
    ref = body.predict(held, verbose=0)
    plain, _ = _tflite_outputs(_int8(body, cal), held)
    prepared, info = prepare_body(body, cal, {})
    out, _ = _tflite_outputs(_int8(prepared, cal), held)
    before, after = compare(plain, ref), compare(out, ref)
    # measured: 1 - mean cosine 3.2e-5 plain, 1.2e-5 prepared
    assert 1 - after["cosine_mean"] < 0.5 * (1 - before["cosine_mean"])
    assert after["max_abs_error"] < 0.7 * before["max_abs_error"]

    clipped, info = prepare_body(body, cal, {"activation_percentile": 99.99})
    assert info["activation_percentile"] == 99.99
    data = _int8(clipped, cal)
    out, it = _tflite_outputs(data, held)
    assert compare(out, ref)["cosine_mean"] > 0.999
    ops = check_builtin_ops(data)
    assert "PADV2" in ops and "DEQUANTIZE" not in ops and "QUANTIZE" not in ops
    conv_out = [t["dtype"] for t in it.get_tensor_details() if "Relu" in t["name"] and len(t["shape"]) == 4]
    assert conv_out and all(d == np.int8 for d in conv_out)          # no layer left in float


def test_other_layouts_are_left_alone(images):
    from export.int8_body import prepare_body

    keras.utils.set_random_seed(1)
    x = inputs = keras.Input((16, 12, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", strides=2)(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inputs, x)
    same, info = prepare_body(model, images[0][:8], {"fold_input_norm": True, "first_conv_rounding": "adaptive"})
    assert same is model
    assert info == {"fold_input_norm": False, "first_conv_rounding": "nearest", "activation_percentile": None}


def test_export_records_the_preparation_in_the_sidecar(tmp_path):
    """Through export_file on a tiny student: the int8 sidecar says what was done to the body."""
    from export import export_file, read_sidecar
    from sea_tf.models import build_student

    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    windows = np.stack([(np.sin(2 * np.pi * rng.uniform(100, 2000) * t) * np.exp(-rng.uniform(0, 8) * t)
                         + rng.standard_normal(8000) * rng.uniform(0.001, 0.3)) * 0.1 for _ in range(40)])
    cfg = {"latency": {"runs": 2, "warmup": 1, "threads": 1}}
    student = build_student(filters=[4, 8, 8, 16], n_mels=16, seed=3)
    summary = export_file(student, tmp_path, modes="int8", calibration=windows[:30].astype(np.float32),
                          held_out=windows[30:].astype(np.float32), cfg=cfg, progress=False)
    art = summary["artifacts"][0]
    prepared = read_sidecar(art["path"])["calibration"]["int8_body"]
    assert prepared["fold_input_norm"] is True and prepared["first_conv_rounding"] == "adaptive"
    assert prepared["first_conv"]["channels"] == 4
    assert summary["settings"]["int8_body"]["first_conv_rounding"] == "adaptive"
    assert art["cosine_mean"] > 0.99


def test_bad_settings_are_refused(body, images):
    from export.int8_body import prepare_body
    from sea_tf.errors import ExportError

    with pytest.raises(ExportError, match="first_conv_rounding"):
        prepare_body(body, images[0], {"first_conv_rounding": "stochastic"})
    with pytest.raises(ExportError, match="activation_percentile"):
        prepare_body(body, images[0], {"activation_percentile": 0})
