"""Tiny exported artifacts for the device-harness tests (and benchmarks/bench_device.py).

Until ``export/`` lands, these follow the artifact contract of docs/ARCHITECTURE.md themselves:
``X.tflite`` converted with ``tf.lite.TFLiteConverter`` (fp32, or full-int8 with int8 I/O) and a
``X.json`` sidecar. Building them takes a few seconds, so tests use session-scoped fixtures.
"""
import hashlib
import json
import os
import textwrap
from pathlib import Path

import numpy as np

SR = 8000
CLASSES = ["air_conditioner", "car_horn", "dog_bark"]
# What the board process must not import (blocked_env): device/ needs only numpy, soundfile and TFLite.
BLOCKED = "tensorflow,tf_keras,keras,sea_tf"


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tensor_meta(details, kind):
    scale, zero = details["quantization"]
    return {"kind": kind, "name": details["name"], "shape": [int(s) for s in details["shape"]],
            "dtype": np.dtype(details["dtype"]).name,
            "quantization": {"scale": float(scale), "zero_point": int(zero)}}


def convert(keras_model, out_path, mode, representative=None, card=None, classes=None,
            frontend_in_model=True, frontend=None, input_kind="raw_audio", extra=None, int8_io=True):
    """Convert ``keras_model`` to ``out_path`` (.tflite) in ``mode`` and write its sidecar.

    ``int8_io=False`` keeps float input/output on an int8 model (the (de)quantize ops run inside).
    """
    from sea_tf.backend import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(converter.convert())
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out_path))
    sidecar = {"model_card": card or {}, "mode": mode, "frontend_in_model": frontend_in_model,
               "frontend": frontend, "input": _tensor_meta(interp.get_input_details()[0], input_kind),
               "output": _tensor_meta(interp.get_output_details()[0], "embedding" if not classes else "probabilities"),
               "sha256": _sha256(out_path)}
    if classes:
        sidecar["classes"] = list(classes)
    sidecar.update(extra or {})
    out_path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2))
    return out_path


def tiny_embedding_model(seed=0, dim=16):
    """A small raw-audio → embedding network (8000 samples → ``dim``), seeded."""
    from sea_tf.backend import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((SR,), name="audio")
    x = keras.layers.Reshape((SR, 1))(inp)
    x = keras.layers.Conv1D(8, 64, strides=32, activation="relu")(x)
    x = keras.layers.Conv1D(16, 8, strides=4, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    out = keras.layers.Dense(dim, activation="relu")(x)
    return keras.Model(inp, out, name="tiny_emb")


def tiny_classifier(seed=1, dim=16, n_classes=len(CLASSES)):
    """Embedding → softmax over ``n_classes``, seeded."""
    from sea_tf.backend import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((dim,), name="embedding")
    x = keras.layers.Dense(32, activation="relu")(inp)
    out = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inp, out, name="tiny_cls")


def noise_frames(n, seed=0):
    """``n`` seeded 1-s windows of coloured noise + a tone, float32 [n, 8000]."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    frames = 0.1 * rng.standard_normal((n, SR))
    frames += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000, (n, 1)) * t)
    return frames.astype(np.float32)


def build_artifacts(out_dir, dim=16):
    """Write tiny fp32 and int8 embedding models and a fp32 classifier into ``out_dir``.

    Returns
    -------
    dict
        Paths (``emb_fp32``, ``emb_int8``, ``cls_fp32``), the Keras reference outputs on
        :func:`noise_frames` (``frames``, ``ref_emb``, ``ref_probs``) for correctness checks.
    """
    out_dir = Path(out_dir)
    emb_model, cls_model = tiny_embedding_model(dim=dim), tiny_classifier(dim=dim)
    frames = noise_frames(24)
    card = {"name": "tiny-emb", "kind": "student", "sample_rate": SR, "frame_length_s": 1.0,
            "frame_samples": SR, "embedding_size": dim, "frontend": None}
    paths = {
        "emb_fp32": convert(emb_model, out_dir / "tiny-emb.fp32.tflite", "fp32", card=card),
        "emb_int8": convert(emb_model, out_dir / "tiny-emb.int8.tflite", "int8", representative=frames, card=card),
    }
    ref_emb = emb_model.predict(frames, verbose=0)
    cls_card = {"name": "tiny-cls", "kind": "classifier", "embedding_size": dim, "classes": CLASSES}
    paths["cls_fp32"] = convert(cls_model, out_dir / "tiny-cls.fp32.tflite", "fp32", card=cls_card,
                                classes=CLASSES, input_kind="embedding")
    ref_probs = cls_model.predict(ref_emb, verbose=0)
    return {**paths, "frames": frames, "ref_emb": ref_emb, "ref_probs": ref_probs, "dim": dim}


def blocked_env(tmp_path, extra_blocked=""):
    """Environment whose Python raises on importing TensorFlow & co and logs every attempt."""
    block_dir = tmp_path / "blocker"
    block_dir.mkdir(exist_ok=True)
    (block_dir / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, sys
        _BLOCKED = set(os.environ["SEA_TF_TEST_BLOCK"].split(","))
        _LOG = os.environ["SEA_TF_TEST_BLOCK_LOG"]
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in _BLOCKED:
                    with open(_LOG, "a") as fh:
                        fh.write(name + "\\n")
                    raise ImportError(f"import of {name} is blocked in this test")
                return None
        sys.meta_path.insert(0, _Blocker())
    """))
    env = dict(os.environ)
    env.update(PYTHONPATH=str(block_dir), SEA_TF_TEST_BLOCK=BLOCKED + extra_blocked,
               SEA_TF_TEST_BLOCK_LOG=str(tmp_path / "blocked.log"))
    return env


def write_tone_wav(path, sr=SR, seconds=2.5, freq=440.0, channels=1):
    """A seeded tone + noise WAV (for bench audio inputs)."""
    import soundfile

    rng = np.random.default_rng(int(freq))
    t = np.arange(int(sr * seconds)) / sr
    audio = 0.4 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    if channels > 1:
        audio = np.stack([audio] * channels, axis=1)
    soundfile.write(str(path), audio.astype(np.float32), sr, subtype="PCM_16")
    return Path(path)


def student_artifacts(out_dir, preset="sea-64", modes=("fp32",), full_modes=(), n_frames=8, seed=0, int8_io=True):
    """Export a ``sea_tf.models.build_student`` model the way the device contract describes.

    ``modes``: the network alone (input = front-end features ``[1, F, T, 1]``, sidecar
    ``frontend_in_model: false``, so the device computes the numpy front end);
    ``full_modes``: the whole model on raw audio (front end inside).

    Returns
    -------
    dict
        ``{"net.<mode>": path, "full.<mode>": path, "frames", "ref_emb", "model"}``.
    """
    from device.frontends import compute_frontend
    from sea_tf.models import build_student

    model = build_student(preset)
    rng = np.random.default_rng(seed)
    t = np.arange(model.frame_samples) / model.sample_rate
    frames = (0.05 * rng.standard_normal((n_frames, model.frame_samples))
              + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 3500, (n_frames, 1)) * t)).astype(np.float32)
    feats = compute_frontend(frames, model.frontend)
    out = {"frames": frames, "ref_emb": model.embed_frames(frames), "model": model}
    suffix = "" if int8_io else "-floatio"
    for mode in modes:
        out[f"net.{mode}"] = convert(model.network(), Path(out_dir) / f"{model.name}-net{suffix}.{mode}.tflite", mode,
                                     representative=feats, card=model.card, frontend_in_model=False,
                                     frontend=model.frontend, input_kind="frontend_features", int8_io=int8_io)
    for mode in full_modes:
        out[f"full.{mode}"] = convert(model.keras, Path(out_dir) / f"{model.name}.{mode}.tflite", mode,
                                      representative=frames, card=model.card)
    return out
