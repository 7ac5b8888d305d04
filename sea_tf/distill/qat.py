"""Quantization-aware fine-tuning of a distilled student (tfmot), front end left in float.

Post-training int8 quantization of the SEA body loses accuracy mostly in the first layers, where
the dB image has a wide range. A few epochs of QAT let the weights adapt to int8 rounding (fake
quantization of weights and activations in the body, ``quantize_model``) so that export's int8
model tracks the float one more closely. The front end (DFT, mel, dB) has no weights and stays
float32: only the body is annotated.

The QAT model is saved as ``student-qat.h5`` with the quantization wrappers (the TFLite
converter turns them into int8 ops); read it back with :func:`load`. It is HDF5, not ``.keras``:
tfmot's quantize wrappers do not round-trip through tf_keras 2.21's ``.keras`` format (the
wrapped layers' variables are restored in another order), while HDF5 restores them exactly.
"""
from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

# sea_tf.backend before tfmot, which imports TensorFlow: it selects Keras 2 and starts TensorFlow quietly.
import numpy as np

from sea_tf.backend import keras, tf
from sea_tf import atomic, cards

import tensorflow_model_optimization as tfmot  # noqa: E402  (isort: skip)
from sea_tf.distill import evaluate
from sea_tf.errors import ModelError, TrainError
from sea_tf.models.frontends import AudioFrontend

if TYPE_CHECKING:  # annotations only
    from sea_tf.distill.pairs import Pairs
    from sea_tf.models.seamodel import SeaModel


def quantize_body(network: keras.Model, *, preserve_sparsity: bool = False) -> keras.Model:
    """``network`` with fake-quantization wrappers (tfmot default 8-bit scheme).

    With ``preserve_sparsity`` (a pruned student) tfmot's prune-preserving scheme keeps the zero
    weights at zero during the fine-tune.

    The input batch norm (a per-band affine map of the dB image, right after the front end) has
    no preceding convolution to fold into, which tfmot cannot quantize; it stays float with the
    front end. Every other layer is annotated, so conv → BN → ReLU fold as in the int8 export.
    """
    quantize = tfmot.quantization.keras
    first_bn = next((layer.name for layer in network.layers
                     if isinstance(layer, keras.layers.BatchNormalization)), None)

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if layer.name == first_bn or isinstance(layer, keras.layers.InputLayer):
            return layer
        return quantize.quantize_annotate_layer(layer)

    try:
        annotated = keras.models.clone_model(network, clone_function=annotate)
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity \
            else quantize.default_8bit.Default8BitQuantizeScheme()
        with quantize.quantize_scope():
            return quantize.quantize_apply(annotated, scheme=scheme)
    except (ValueError, RuntimeError) as exc:
        raise TrainError(f"quantization-aware training cannot wrap this student body ({exc}); disable qat") from exc


def qat_model(seamodel: SeaModel) -> keras.Model:
    """Raw audio → float front end → fake-quantized body; starts from the student's weights."""
    body = quantize_body(seamodel.network(), preserve_sparsity=seamodel.card.get("sparsity", {}).get("pruned", False))
    audio = keras.Input(shape=(seamodel.frame_samples,), name="audio")
    image = seamodel.frontend_layer()(audio)
    return keras.Model(audio, body(image), name=f"{seamodel.keras.name}_qat")


#: Training batches whose float activations set the QAT ranges' start (as calibration does for PTQ;
#: a few batches give the range's order of magnitude, which is all the moving average needs).
RANGE_BATCHES = 8


def init_activation_ranges(body: keras.Model, seamodel: SeaModel, dataset: tf.data.Dataset, *,
                           batches: int = RANGE_BATCHES) -> None:
    """Start every learnt activation range at the float student's observed range on ``batches`` training batches.

    tfmot starts each range at [-6, 6] and moves it by an exponential moving average (decay 0.999),
    so a fine-tune of a few hundred steps keeps ranges near their start: a layer whose outputs
    reach 20 is clipped at 6 and one that stays below 0.5 gets a handful of int8 levels. Measured on
    a tiny student after 8 QAT steps: cosine 0.84 to the float student from the start ranges, where
    post-training int8 gave 0.998. Starting from the data's min/max (as post-training calibration
    does), QAT begins where PTQ is and its fine-tune can only adapt the weights from there.

    Parameters
    ----------
    body : keras.Model
        The fake-quantized body (:func:`quantize_body`); its ``output_min/max`` and
        ``post_activation_min/max`` variables are set in place.
    seamodel : SeaModel
        The float student (same layer names inside its network).
    dataset : tf.data.Dataset
        ``(audio [B, frame_samples], target)`` batches.
    batches : int
        Batches to observe (0: keep tfmot's start ranges).
    """
    wrappers = {}
    for layer in body.layers:
        named = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        for lo, hi in (("output_min", "output_max"), ("post_activation_min", "post_activation_max")):
            if lo in named and hi in named and hasattr(layer, "layer"):
                wrappers[layer.layer.name] = (named[lo], named[hi])
    if not wrappers or batches < 1:
        return
    network = seamodel.network()
    probe = keras.Model(network.inputs, [network.get_layer(name).output for name in wrappers])
    lows: list[float] = [np.inf] * len(wrappers)
    highs: list[float] = [-np.inf] * len(wrappers)
    for audio, _ in dataset.take(batches):
        outputs = probe(seamodel.frontend_layer()(audio), training=False)
        for i, out in enumerate(outputs if isinstance(outputs, list) else [outputs]):
            lows[i], highs[i] = min(lows[i], float(tf.reduce_min(out))), max(highs[i], float(tf.reduce_max(out)))
    for (lo_var, hi_var), low, high in zip(wrappers.values(), lows, highs):
        if np.isfinite(low) and np.isfinite(high):
            # The int8 grid must hold 0 exactly (zero padding, ReLU): the range spans it.
            lo_var.assign(min(low, 0.0))
            hi_var.assign(max(high, 0.0) if max(high, 0.0) > min(low, 0.0) else min(low, 0.0) + 1e-6)


def fine_tune(seamodel: SeaModel, train_ds: tf.data.Dataset, valid_ds: tf.data.Dataset, *, steps: int,
              valid_steps: int | None, cfg: dict, run_dir: Path | str, chief: bool = True, pairs: Pairs | None = None,
              log: Callable[[str], object] = print) -> dict:
    """Fine-tune with fake quantization for ``qat.epochs`` epochs; save ``student-qat.h5``.

    Returns
    -------
    dict
        ``path``, ``epochs``, ``held_out`` (regression figures of the QAT model).
    """
    qcfg = cfg["qat"]
    model = qat_model(seamodel)
    init_activation_ranges(model.get_layer("network"), seamodel, train_ds, batches=RANGE_BATCHES)
    model.compile(optimizer=keras.optimizers.Adam(float(qcfg["learning_rate"])), loss="mse", metrics=["mae"])
    history = model.fit(train_ds, epochs=int(qcfg["epochs"]), steps_per_epoch=steps, validation_data=valid_ds,
                        validation_steps=valid_steps if cfg["train"]["validation_steps"] else None, verbose=0)
    preds, targets = evaluate.predict(model, valid_ds)
    metrics = evaluate.regression_metrics(preds, targets)
    log(f"QAT fine-tune: held-out R² {metrics['r2']:.3f}, MSE {metrics['mse']:.4g}")
    path = Path(run_dir) / "student-qat.h5"
    if chief:
        _save_keras(model, path)
        card = dict(seamodel.card)
        card["name"] = f"{seamodel.name}-qat"
        card["qat"] = {"epochs": int(qcfg["epochs"]), "learning_rate": float(qcfg["learning_rate"]),
                       "scheme": "tfmot default 8-bit" + (", prune-preserving" if card.get("sparsity", {}).get("pruned") else ""),
                       "frontend": "float32 (front end and input batch norm)",
                       "val_loss": [float(v) for v in history.history.get("val_loss", [])],
                       "held_out": metrics, "load": "sea_tf.distill.qat.load"}
        card["weights"] = {**card.get("weights", {}), "path": str(path), "sha256": cards.sha256_file(path)}
        student = Path(run_dir) / "student.keras"
        if student.is_file():
            # The float student it was fine-tuned from: export pairs the two (PTQ beside QAT) by this link.
            card["qat"]["student"] = {"path": student.name, "sha256": cards.sha256_file(student)}
        cards.write_card(path, card)
    return {"path": str(path), "epochs": int(qcfg["epochs"]), "held_out": metrics}


def _save_keras(model: keras.Model, path: Path) -> None:
    # Keras picks the format from the extension, so save as <tmpdir>/model.h5, then rename.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": chosen on purpose, see above
            model.save(tmp_dir / "model.h5")
        atomic.replace(tmp_dir / "model.h5", path)  # flushed before and after the rename
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def is_qat_file(path: str | Path) -> bool:
    """True when ``path`` is a Keras HDF5 model holding tfmot quantize wrappers (read with h5py, nothing run)."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            config = fh.attrs.get("model_config")
    except OSError:
        return False
    if isinstance(config, bytes):
        config = config.decode("utf-8", "replace")
    return isinstance(config, str) and ("QuantizeWrapper" in config or "QuantizeLayer" in config)


def load(path: Path | str) -> tuple[keras.Model, dict]:
    """Read ``student-qat.h5`` back (needs tfmot's quantize scope); returns ``(keras.Model, card)``.

    The card must be there and say ``qat`` (it names the front end and the float student); the
    file is deserialised in Keras' safe mode with only sea-tf's front end and tfmot's quantize
    objects known, so a Lambda layer's pickled bytecode or any other class is refused, not run.
    """
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    path = Path(path)
    card = cards.read_card(path, required=False)
    if not isinstance(card, dict) or not isinstance(card.get("qat"), dict):
        raise ModelError(f"{path}: no QAT card at {cards.card_path(path)} (a card with 'qat'); the card written by "
                         "`sea-tf distill` with qat.enabled must sit beside the .h5 file")
    _check_config(path)
    try:
        with tfmot.quantization.keras.quantize_scope(), SafeModeScope(True):
            model = keras.models.load_model(path, compile=False, custom_objects={"AudioFrontend": AudioFrontend})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{path}: cannot load the QAT student ({_first_line(exc)}); was it written by "
                         "`sea-tf distill` with qat.enabled?") from exc
    return model, card


def _check_config(path: Path) -> None:
    """Refuse, before Keras sees it, a config with a Lambda, a TF op outside math/array ops, or a foreign class.

    sea-tf writes this file itself, so it needs no ``--trust-model-code``; the legacy HDF5 loader is
    still given only configs that :func:`sea_tf.models.safe_load.check_config` passes (tfmot's
    quantize classes are resolved by name in its quantize scope, like Keras built-ins).
    """
    import json

    import h5py

    from sea_tf.models.safe_load import check_config

    try:
        with h5py.File(path, "r") as fh:
            config = fh.attrs.get("model_config")
    except OSError as exc:
        raise ModelError(f"{path}: not an HDF5 file ({exc}); was it written by `sea-tf distill` with "
                         "qat.enabled?") from exc
    if config is None:
        raise ModelError(f"{path}: holds no Keras model config; was it written by `sea-tf distill` with qat.enabled?")
    try:
        config = json.loads(config.decode() if isinstance(config, bytes) else config)
    except ValueError as exc:
        raise ModelError(f"{path}: unreadable model config ({exc}); re-run `sea-tf distill --qat`") from exc
    check_config(_tfmot_by_name(config), path)


def _tfmot_by_name(node: object) -> object:
    """``node`` with tfmot's own classes unmarked: the legacy loader resolves them by name in the quantize scope."""
    if isinstance(node, list):
        return [_tfmot_by_name(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tfmot_by_name(value) for key, value in node.items()}
    if str(out.get("module", "")).split(".")[0] == "tensorflow_model_optimization":
        out.pop("module")
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
