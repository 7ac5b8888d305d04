"""Quantization-aware fine-tuning of a distilled student (tfmot), front end left in float.

Post-training int8 quantization of the SEA body loses accuracy mostly in the first layers, where
the dB image has a wide range. A few epochs of QAT let the weights adapt to int8 rounding (fake
quantization of weights and activations in the body, ``quantize_model``) so that export's int8
model tracks the float one more closely. The front end (DFT, mel, dB) has no weights and stays
float32: only the body is annotated.

The QAT model is saved as ``student-qat.keras`` with the quantization wrappers (the TFLite
converter turns them into int8 ops); read it back with :func:`load`.
"""
from pathlib import Path

import tensorflow_model_optimization as tfmot

from sea_tf import atomic, cards
from sea_tf.backend import keras
from sea_tf.distill import evaluate
from sea_tf.errors import ModelError, TrainError
from sea_tf.frontends import AudioFrontend


def quantize_body(network):
    """``network`` with fake-quantization wrappers (tfmot default 8-bit scheme)."""
    try:
        return tfmot.quantization.keras.quantize_model(network)
    except (ValueError, RuntimeError) as exc:
        raise TrainError(f"quantization-aware training cannot wrap this student body ({exc}); disable qat") from exc


def qat_model(seamodel):
    """Raw audio → float front end → fake-quantized body; starts from the student's weights."""
    body = quantize_body(seamodel.network())
    audio = keras.Input(shape=(seamodel.frame_samples,), name="audio")
    image = seamodel.frontend_layer()(audio)
    return keras.Model(audio, body(image), name=f"{seamodel.keras.name}_qat")


def fine_tune(seamodel, train_ds, valid_ds, steps, valid_steps, cfg, run_dir, chief=True, pairs=None, log=print):
    """Fine-tune with fake quantization for ``qat.epochs`` epochs; save ``student-qat.keras``.

    Returns
    -------
    dict
        ``path``, ``epochs``, ``held_out`` (regression figures of the QAT model).
    """
    qcfg = cfg["qat"]
    model = qat_model(seamodel)
    model.compile(optimizer=keras.optimizers.Adam(float(qcfg["learning_rate"])), loss="mse", metrics=["mae"])
    history = model.fit(train_ds, epochs=int(qcfg["epochs"]), steps_per_epoch=steps, validation_data=valid_ds,
                        validation_steps=valid_steps if cfg["train"]["validation_steps"] else None, verbose=0)
    preds, targets = evaluate.predict(model, valid_ds)
    metrics = evaluate.regression_metrics(preds, targets)
    log(f"QAT fine-tune: held-out R² {metrics['r2']:.3f}, MSE {metrics['mse']:.4g}")
    path = Path(run_dir) / "student-qat.keras"
    if chief:
        with atomic.atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp)
        card = dict(seamodel.card)
        card["name"] = f"{seamodel.name}-qat"
        card["qat"] = {"epochs": int(qcfg["epochs"]), "learning_rate": float(qcfg["learning_rate"]),
                       "scheme": "tfmot default 8-bit", "frontend": "float32",
                       "val_loss": [float(v) for v in history.history.get("val_loss", [])],
                       "held_out": metrics, "load": "sea_tf.distill.qat.load"}
        card["weights"] = {**card.get("weights", {}), "path": str(path), "sha256": cards.sha256_file(path)}
        cards.write_card(path, card)
    return {"path": str(path), "epochs": int(qcfg["epochs"]), "held_out": metrics}


def load(path):
    """Read ``student-qat.keras`` back (needs tfmot's quantize scope); returns ``(keras.Model, card)``."""
    path = Path(path)
    try:
        with tfmot.quantization.keras.quantize_scope():
            model = keras.models.load_model(path, compile=False, custom_objects={"AudioFrontend": AudioFrontend})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: cannot load the QAT student ({exc}); was it written by `sea-tf distill` "
                         "with qat.enabled?") from exc
    return model, cards.read_card(path)
