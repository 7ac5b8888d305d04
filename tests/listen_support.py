"""Tiny feature-input artifacts and a varied WAV for the ``device.listen`` tests.

The listen tests (test_listen, test_device_faults, test_listen_pulse, test_listen_remote) share one
build of these artifacts per run: conftest's ``listen_artifacts`` session fixture calls
:func:`build_listen_artifacts` once.
"""
from pathlib import Path

import numpy as np

import device_support

SPEC = {"type": "kapre-0.1.4-mel", "sr": 8000, "n_dft": 1024, "n_hop": 160, "n_mels": 64, "fmin": 0.0,
        "fmax": None, "htk": True, "norm": "slaney", "padding": "same", "output_shape": [64, 50, 1]}


def tiny_feature_model(seed=3, dim=16):
    """A small network on SEA-64-shaped front-end features [64, 50, 1] → ``dim``, seeded."""
    from sea_tf.backend import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 50, 1), name="features")
    x = keras.layers.Conv2D(8, 5, strides=2, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(dim)(x), name="tiny_feat")


def build_listen_artifacts(out_dir, dim=16):
    """Feature-input embedding models (fp32, int8 I/O) with the front end in the sidecar, and a classifier."""
    from device.frontends import compute_frontend

    out_dir = Path(out_dir)
    card = {"name": "tiny-feat", "kind": "student", "sample_rate": 8000, "frame_length_s": 1.0,
            "frame_samples": 8000, "embedding_size": dim, "frontend": SPEC}
    model = tiny_feature_model(dim=dim)
    feats = compute_frontend(device_support.noise_frames(16), SPEC)
    paths = {mode: device_support.convert(model, out_dir / f"tiny-feat.{mode}.tflite", mode, representative=feats,
                                          card=card, frontend_in_model=False, frontend=SPEC,
                                          input_kind="frontend_features")
             for mode in ("fp32", "int8")}
    cls_card = {"name": "tiny-cls", "kind": "classifier", "embedding_size": dim, "classes": device_support.CLASSES}
    paths["cls"] = device_support.convert(device_support.tiny_classifier(dim=dim), out_dir / "tiny-cls.fp32.tflite",
                                          "fp32", card=cls_card, classes=device_support.CLASSES, input_kind="embedding")
    return paths


def varied_wav(path, sr=8000, seconds=4.0, seed=0):
    """A 16-bit WAV whose content changes over time (sweep, noise bursts, a pause), seeded."""
    import soundfile

    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    audio = 0.3 * np.sin(2 * np.pi * (150 + 400 * t) * t) + 0.02 * rng.standard_normal(t.size)
    for start in rng.uniform(0, seconds - 0.3, 5):
        i = int(start * sr)
        audio[i:i + int(0.2 * sr)] += 0.4 * rng.standard_normal(int(0.2 * sr))
    audio[int(0.45 * t.size):int(0.55 * t.size)] = 0.0
    soundfile.write(str(path), np.clip(audio, -1, 1).astype(np.float32), sr, subtype="PCM_16")
    return Path(path)

