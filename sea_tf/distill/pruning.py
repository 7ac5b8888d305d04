"""Magnitude pruning of the student body (docs/PROTOCOL.md §2.4): EdgeL3's one-shot masks, or tfmot's gradual schedule.

``pruning.schedule: one-shot`` is EdgeL3 as published: start from the pretrained L3 audio body
(``student.init: openl3/mel256-env``), zero each layer's weights at or below the s-th percentile
of its |W| once (:func:`magnitude_masks`), then retrain with those masks frozen
(:class:`FixedMasks` re-applies them after every step). ``schedule: gradual`` uses tfmot's
``prune_low_magnitude``, raising each layer's sparsity along a ``PolynomialDecay`` schedule while
the student distils, which reaches per-layer magnitude masks with less damage. The front end has
no weights and is never pruned; the first conv is excluded by default (it has few weights and every
later layer depends on it). ``strip_pruning`` removes tfmot's wrappers before saving;
:func:`measure_sparsity` records what was actually reached. :func:`published_profile` derives the
per-layer targets of the ``distill/edgel3-sparse-<s>-kd`` presets from the published example lists,
so that ``s`` % of all conv weights are zero.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

# sea_tf.backend before tfmot, which imports TensorFlow: it selects Keras 2 and starts TensorFlow quietly.
from sea_tf.backend import keras
from sea_tf.errors import TrainError

import tensorflow_model_optimization as tfmot  # noqa: E402  (isort: skip)

PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)
SCHEDULES = ("gradual", "one-shot")

# The two per-layer lists the EdgeL3 pruning jobs give as example command lines (docs/PROTOCOL.md
# §2.4), one fraction per convolution of the L3 audio network in order (conv 1 … audio_embedding_layer).
# Weighted by the layers' kernel sizes they are 73.5 % (``ft``) and 80.9 % (``kd``) sparse overall.
PUBLISHED_LISTS: dict[str, tuple[float, ...]] = {
    "ft": (0.0, 0.60, 0.60, 0.70, 0.50, 0.70, 0.70, 0.80),
    "kd": (0.0, 0.70, 0.70, 0.75, 0.60, 0.80, 0.80, 0.85),
}
# A derived profile never empties a layer: every scaled fraction is clipped to this.
MAX_LAYER_SPARSITY = 0.99
# How close a derived profile's overall sparsity comes to its target (fraction of all conv weights);
# the published levels are quoted to 0.1 percentage point, so a profile closer than that is exact.
OVERALL_TOLERANCE = 1e-3


def prunable_layer_names(network: keras.Model) -> list[str]:
    """Names of the layers that carry a kernel and could be pruned, in order."""
    return [layer.name for layer in network.layers if isinstance(layer, PRUNABLE)]


def layer_targets(network: keras.Model, target_sparsity: float, *,
                  per_layer: list[dict] | tuple[dict, ...] | dict[str, float] | None = None,
                  exclude: Sequence[str]) -> dict[str, float]:
    """Target sparsity of every prunable layer (0 for excluded layers).

    Parameters
    ----------
    network : keras.Model
        The student body (``SeaModel.network()``).
    target_sparsity : float
        Fraction of zero weights in [0, 1).
    per_layer : list of {"layer": str, "sparsity": float} or dict of str -> float, optional
    exclude : sequence of str

    Returns
    -------
    dict of str -> float
    """
    names = prunable_layer_names(network)
    chosen: dict[str, float]
    if isinstance(per_layer, (list, tuple)):
        try:
            chosen = {entry["layer"]: entry["sparsity"] for entry in per_layer}
        except (TypeError, KeyError):
            raise TrainError(f"pruning.per_layer must be a list of {{layer: NAME, sparsity: S}}, got {per_layer!r}") from None
    else:
        chosen = dict(per_layer or {})
    unknown = (set(chosen) | set(exclude)) - set(names)
    if unknown:
        raise TrainError(f"pruning.per_layer / pruning.exclude name unknown layer(s) {sorted(unknown)}; the student's "
                         f"prunable layers are {', '.join(names)}")
    targets = {}
    for name in names:
        value = 0.0 if name in exclude else float(chosen.get(name, target_sparsity))
        if not 0.0 <= value < 1.0:
            raise TrainError(f"sparsity of layer {name} must be in [0, 1), got {value}")
        targets[name] = value
    return targets


def prune_network(network: keras.Model, targets: dict[str, float], *, begin_step: int, end_step: int,
                  initial_sparsity: float, frequency: int) -> keras.Model:
    """Wrap the layers of ``network`` with a non-zero target in ``prune_low_magnitude``.

    Parameters
    ----------
    network : keras.Model
    targets : dict of str -> float
        From :func:`layer_targets`.
    begin_step, end_step : int
        Optimizer steps over which the sparsity rises from ``initial_sparsity`` to the target.
    initial_sparsity : float
    frequency : int
        Steps between mask updates.

    Returns
    -------
    keras.Model
        Shares the weights of ``network``; train it with ``tfmot.sparsity.keras.UpdatePruningStep``.
    """
    if end_step <= begin_step:
        raise TrainError(f"pruning ends at step {end_step}, not after it begins ({begin_step}); raise train.epochs / "
                         "train.steps_per_epoch or pruning.end_fraction")
    frequency = max(1, min(int(frequency), max(1, (end_step - begin_step) // 4)))

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        target = targets.get(layer.name, 0.0)
        if not isinstance(layer, PRUNABLE) or target <= 0.0:
            return layer
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=min(float(initial_sparsity), target), final_sparsity=target,
            begin_step=int(begin_step), end_step=int(end_step), frequency=frequency)
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    return keras.models.clone_model(network, clone_function=wrap)


def magnitude_masks(network: keras.Model, targets: dict[str, float]) -> dict[str, npt.NDArray[np.bool_]]:
    """EdgeL3's one-shot masks: keep the weights of each layer above the s-th percentile of its |W|.

    Parameters
    ----------
    network : keras.Model
        The (pretrained) body.
    targets : dict of str -> float
        Per-layer sparsity in [0, 1) (:func:`layer_targets`); layers at 0 are not masked.

    Returns
    -------
    dict of str -> np.ndarray of bool
        ``mask = |W| > percentile(|W|, 100·s)``, the shape of each masked layer's kernel.
    """
    masks = {}
    for layer in network.layers:
        target = float(targets.get(layer.name, 0.0))
        if isinstance(layer, PRUNABLE) and target > 0.0:
            magnitude = np.abs(np.asarray(layer.get_weights()[0]))
            masks[layer.name] = magnitude > np.percentile(magnitude, 100.0 * target)
    return masks


def apply_masks(network: keras.Model, masks: dict[str, npt.NDArray[np.bool_]]) -> None:
    """Zero the masked-out kernel weights of ``network`` in place."""
    for layer in network.layers:
        if layer.name in masks:
            weights = layer.get_weights()
            weights[0] = weights[0] * masks[layer.name]
            layer.set_weights(weights)


class FixedMasks(keras.callbacks.Callback):
    """Re-apply one-shot masks after every training step, so pruned weights stay exactly zero."""

    def __init__(self, network: keras.Model, masks: dict[str, npt.NDArray[np.bool_]]) -> None:
        super().__init__()
        self._pairs = [(layer.kernel, masks[layer.name].astype(np.float32))
                       for layer in network.layers if layer.name in masks]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for kernel, mask in self._pairs:
            kernel.assign(kernel * mask)


def strip(network: keras.Model) -> keras.Model:
    """The network without pruning wrappers (zeroed weights stay zero)."""
    return tfmot.sparsity.keras.strip_pruning(network)


def callbacks() -> list[keras.callbacks.Callback]:
    """Keras callbacks a pruned model needs while training."""
    return [tfmot.sparsity.keras.UpdatePruningStep()]


def measure_sparsity(network: keras.Model, targets: dict[str, float] | None = None) -> dict:
    """Measured fraction of exactly-zero kernel weights.

    Parameters
    ----------
    network : keras.Model
        A stripped (or never pruned) body.
    targets : dict, optional
        Per-layer targets, recorded beside the measurements.

    Returns
    -------
    dict
        ``layers``: name -> {"zeros", "weights", "sparsity", "target"}; ``total`` over every
        prunable layer; ``pruned_total`` over the layers with a non-zero target.
    """
    layers, zeros_all, size_all, zeros_p, size_p = {}, 0, 0, 0, 0
    for layer in network.layers:
        if not isinstance(layer, PRUNABLE):
            continue
        kernel = np.asarray(layer.get_weights()[0])
        zeros, size = int(np.count_nonzero(kernel == 0)), int(kernel.size)
        target = float((targets or {}).get(layer.name, 0.0))
        layers[layer.name] = {"zeros": zeros, "weights": size, "sparsity": zeros / size, "target": target}
        zeros_all, size_all = zeros_all + zeros, size_all + size
        if target > 0:
            zeros_p, size_p = zeros_p + zeros, size_p + size
    return {"layers": layers, "total": zeros_all / max(1, size_all),
            "pruned_total": zeros_p / size_p if size_p else 0.0}


def kernel_sizes(network: keras.Model) -> dict[str, int]:
    """Number of kernel weights (biases excluded) of every prunable layer of ``network``, in order."""
    return {layer.name: int(np.prod(layer.kernel.shape)) for layer in network.layers if isinstance(layer, PRUNABLE)}


def overall_sparsity(fractions: Sequence[float], sizes: Sequence[int]) -> float:
    """Fraction of zero weights over all layers when layer ``i`` of ``sizes[i]`` weights is ``fractions[i]`` sparse."""
    if len(fractions) != len(sizes):
        raise TrainError(f"{len(fractions)} per-layer sparsities for {len(sizes)} layers")
    return float(np.dot(fractions, sizes) / np.sum(sizes))


def scaled_profile(profile: Sequence[float], sizes: Sequence[int], overall: float) -> tuple[float, ...]:
    """``profile`` times one factor, clipped to [0, MAX_LAYER_SPARSITY], whose weighted sparsity is ``overall``.

    The factor is found by bisection: the weighted sparsity of the clipped, scaled profile rises
    monotonically with the factor, from 0 (factor 0) to its ceiling (every listed layer at
    ``MAX_LAYER_SPARSITY``). Layers at 0 in ``profile`` stay dense; the ratios between the other
    layers are kept until a layer reaches the ceiling.

    Parameters
    ----------
    profile : sequence of float
        Per-layer sparsity fractions, e.g. one of :data:`PUBLISHED_LISTS`.
    sizes : sequence of int
        Kernel weights per layer, the same order (:func:`kernel_sizes`).
    overall : float
        Target fraction of zero weights over all layers.

    Returns
    -------
    tuple of float
        Per-layer fractions, within :data:`OVERALL_TOLERANCE` of ``overall``.
    """
    ceiling = overall_sparsity([MAX_LAYER_SPARSITY if p > 0 else 0.0 for p in profile], sizes)
    if not 0.0 <= overall <= ceiling:
        raise TrainError(f"an overall sparsity of {overall:.4f} is out of reach of this profile (at most {ceiling:.4f} "
                         f"with no layer above {MAX_LAYER_SPARSITY})")

    def scaled(factor: float) -> tuple[float, ...]:
        return tuple(float(min(MAX_LAYER_SPARSITY, max(0.0, factor * p))) for p in profile)

    low, high = 0.0, MAX_LAYER_SPARSITY / min(p for p in profile if p > 0)
    for _ in range(100):                  # halves the bracket until it is below double precision
        middle = 0.5 * (low + high)
        low, high = (middle, high) if overall_sparsity(scaled(middle), sizes) < overall else (low, middle)
    return scaled(high)


def published_profile(overall: float, sizes: Sequence[int]) -> tuple[float, ...]:
    """Per-layer fractions for an EdgeL3 model ``overall`` sparse, derived from the published lists.

    The published list whose weighted sparsity is nearest ``overall`` is used as published when it
    is within :data:`OVERALL_TOLERANCE`, otherwise scaled to it by :func:`scaled_profile`
    (docs/PROTOCOL.md §2.4).

    Parameters
    ----------
    overall : float
        Fraction of zero conv weights, e.g. 0.9545.
    sizes : sequence of int
        Kernel weights of the eight convolutions of the L3 audio network, in order.

    Returns
    -------
    tuple of float
        One fraction per convolution (the first stays 0).
    """
    nearest = min(PUBLISHED_LISTS.values(), key=lambda listed: abs(overall_sparsity(listed, sizes) - overall))
    if abs(overall_sparsity(nearest, sizes) - overall) <= OVERALL_TOLERANCE:
        return nearest
    return scaled_profile(nearest, sizes, overall)
