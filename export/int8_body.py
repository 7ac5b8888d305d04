"""Prepare a network body for full-int8 conversion so the int8 file tracks the float one closely.

Measured on the published SEA-64 (calibrated on 400 upstream windows of the demo dataset, cosine
vs Keras fp32 on 285 held-out clip windows), almost all of plain post-training int8's loss
(mean 0.9975, 5th percentile 0.9907) comes from rounding the **first convolution's** weights:
it sees the raw dB image (values around −15 to −80 dB, never centred), has only 9 weights per
output channel, and round-to-nearest leaves each channel's weight sum off by up to ~4 LSB, which
multiplies the image's local mean level. That error changes from window to window, so it hurts
quiet, spectrally flat windows (small embeddings) most. Float model with only conv1's weights
rounded: cosine mean 0.9985, worst 0.979; every other layer alone: ≥ 0.99998.

Three exact or principled steps, each kept in full int8 (no layer is left in float):

1. :func:`fold_input_norm` — the input batch norm on the 1-channel image is a scalar affine map
   ``a·x + b``; fold it into the first convolution (kernel ``a·W``, bias ``+ b·ΣW``) and pad the
   image with ``−b/a`` (a PADV2 with an int8 constant) so the borders match the original zero
   padding exactly. Saves two int8 requantizations (MUL, ADD).
2. :func:`round_first_conv` — adaptive rounding ("Up or Down?", Nagel et al. 2020) of the first
   convolution's per-channel int8 kernel: for each output channel, the floor/ceil choice of its 9
   weights (512 candidates, searched exhaustively) that minimises the expected squared output
   error over the calibration images' 3×3 patches, plus bias correction of the remaining mean
   error. The weights are written back as exact multiples of the converter's per-channel scale,
   so the converter's own round-to-nearest reproduces the chosen integers.
3. :func:`clip_activation_ranges` — percentile calibration of the hidden ReLU outputs: a
   FakeQuant range at the given percentile of the calibration activations instead of the
   converter's min/max (a few loud windows set the max; quiet windows then get few levels); the
   embedding layer keeps its full range.

Published SEA-64, cosine vs Keras fp32 (mean / 5th percentile / worst window), held-out clip
windows of two independently generated demo datasets (seeds 20180216 and 7):

==============================================  ===========================  ===========================
variant                                         demo data (285 windows)      seed-7 data (300 windows)
==============================================  ===========================  ===========================
plain post-training int8                        0.99751 / 0.99070 / 0.97497  0.99683 / 0.98544 / 0.97462
fold + adaptive rounding                        0.99868 / 0.99472 / 0.98621  0.99837 / 0.99283 / 0.98577
fold + adaptive rounding + ReLU pct 99.999      0.99898 / 0.99584 / 0.99021  0.99883 / 0.99500 / 0.99083
==============================================  ===========================  ===========================

(99.99 clips too much: 0.99822 / 0.99155 on the demo data.) Quantization-aware fine-tuning
(tfmot, self-distillation) reaches about the fold + rounding figures, at the cost of training.
"""
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sea_tf.backend import keras, tf
from sea_tf.errors import ExportError

#: Per-channel symmetric int8 kernel range used by the TFLite converter.
QMAX = 127


class ConstantPad2D(keras.layers.Layer):
    """Pads height and width of an NHWC tensor by ``pad`` with the constant ``value`` (TFLite PADV2)."""

    def __init__(self, pad: int = 1, *, value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad, self.value = int(pad), float(value)

    def call(self, x: Any) -> Any:
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=self.value)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pad": self.pad, "value": self.value}


class ActivationRange(keras.layers.Layer):
    """A fixed int8 range ``[0, maximum]`` for the tensor it follows (FakeQuant; the converter uses it)."""

    def __init__(self, maximum: float = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.maximum = float(maximum)

    def call(self, x: Any) -> Any:
        return tf.quantization.fake_quant_with_min_max_args(x, min=0.0, max=self.maximum, num_bits=8)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "maximum": self.maximum}


def chain_layers(network: Any) -> list[Any] | None:
    """The layers of ``network`` after its input when it is a plain chain, else ``None``."""
    layers = network.layers
    if not layers or not isinstance(layers[0], keras.layers.InputLayer):
        return None
    for prev, layer in zip(layers, layers[1:]):
        inbound = [node.inbound_layers for node in layer._inbound_nodes]
        if len(inbound) != 1 or inbound[0] is not prev:
            return None
    return layers[1:]


def _copy(layer: Any) -> Any:
    return layer.__class__.from_config(layer.get_config())


def _rebuild(network: Any, layers: Sequence[Any], *, replace: Mapping[str, list[Any]] | None = None,
             after: Mapping[str, list[Any]] | None = None) -> Any:
    """A new chain model over copies of ``layers``; ``replace[name]`` gives layers to use instead,
    ``after[name]`` layers to append after that layer."""
    replacements: Mapping[str, list[Any]] = replace or {}
    appended: Mapping[str, list[Any]] = after or {}
    x = inputs = keras.Input(network.input_shape[1:], name=network.layers[0].name)
    for layer in layers:
        for new in replacements.get(layer.name, [layer]):
            fresh = _copy(new) if new is layer else new
            x = fresh(x)
            if new is layer and layer.get_weights():
                fresh.set_weights(layer.get_weights())
        for extra in appended.get(layer.name, []):
            x = extra(x)
    return keras.Model(inputs, x, name=network.name)


def _bn_affine(bn: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    gamma, beta, mean, var = _bn_weights(bn)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _bn_weights(bn: Any) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64],
                                 npt.NDArray[np.float64]]:
    weights = {w.name.split("/")[-1].split(":")[0]: np.asarray(w.numpy(), np.float64) for w in bn.weights}
    n = len(weights["moving_mean"])
    return (weights.get("gamma", np.ones(n)), weights.get("beta", np.zeros(n)),
            weights["moving_mean"], weights["moving_variance"])


def _first_conv(layers: Sequence[Any]) -> int | None:
    return next((i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)), None)


def fold_input_norm(network: Any) -> tuple[Any, float | None]:
    """Fold a 1-channel input batch norm into the first convolution, exactly.

    Parameters
    ----------
    network : keras.Model
        A chain ``Input [B, F, T, 1] → BatchNormalization → Conv2D(padding="same", stride 1) → ...``.

    Returns
    -------
    model : keras.Model
        Same outputs in float (borders included); the input norm is gone and the convolution is
        ``valid`` behind a :class:`ConstantPad2D`. ``network`` itself when it does not match.
    pad_value : float or None
        The dB value the image is padded with (``None`` when nothing was folded).
    """
    layers = chain_layers(network)
    if not layers or len(layers) < 2 or not isinstance(layers[0], keras.layers.BatchNormalization):
        return network, None
    bn, conv = layers[0], layers[1]
    cfg = conv.get_config()
    kh, kw = conv.kernel_size
    if (not isinstance(conv, keras.layers.Conv2D) or type(conv) is not keras.layers.Conv2D
            or network.input_shape[-1] != 1 or cfg["padding"] != "same" or tuple(cfg["strides"]) != (1, 1)
            or tuple(cfg["dilation_rate"]) != (1, 1) or kh != kw or kh % 2 == 0):
        return network, None
    a, b = (float(v[0]) for v in _bn_affine(bn))
    if a == 0.0:
        return network, None
    kernel = conv.get_weights()[0].astype(np.float64)
    bias = conv.get_weights()[1].astype(np.float64) if conv.use_bias else np.zeros(conv.filters)
    folded = keras.layers.Conv2D.from_config({**cfg, "padding": "valid", "use_bias": True})
    pad_value = -b / a  # where a·x + b = 0: what zero padding of the normalized image meant
    x = inputs = keras.Input(network.input_shape[1:], name=network.layers[0].name)
    x = ConstantPad2D(kh // 2, value=pad_value, name="input_norm_pad")(x)
    x = folded(x)
    folded.set_weights([(kernel * a).astype(np.float32), (bias + b * kernel.sum(axis=(0, 1, 2))).astype(np.float32)])
    for layer in layers[2:]:
        fresh = _copy(layer)
        x = fresh(x)
        if layer.get_weights():
            fresh.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=network.name), float(pad_value)


def patch_moments(images: npt.ArrayLike, kernel_size: int, *, pad_value: float = 0.0) -> npt.NDArray[np.float64]:
    """Second moments ``E[p pᵀ]`` of ``[patch, 1]`` over every ``k×k`` patch the first conv sees.

    Parameters
    ----------
    images : np.ndarray [shape=(n, F, T, 1)]
        Calibration front-end images (dB).
    kernel_size : int
        Odd ``k``.
    pad_value : float
        What the borders are padded with.

    Returns
    -------
    np.ndarray [shape=(k·k + 1, k·k + 1), dtype=float64]
    """
    x = np.asarray(images, np.float64)[..., 0]
    p = kernel_size // 2
    xp = np.pad(x, [(0, 0), (p, p), (p, p)], constant_values=pad_value)
    patches = np.lib.stride_tricks.sliding_window_view(xp, (kernel_size, kernel_size), axis=(1, 2))
    flat = patches.reshape(-1, kernel_size * kernel_size)
    flat = np.concatenate([flat, np.ones((len(flat), 1))], axis=1)
    return flat.T @ flat / len(flat)


def adaptive_rounding(kernel: npt.ArrayLike, moments: npt.NDArray[np.float64], *, qmax: int = QMAX
                      ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-channel int8 rounding of a 1-input-channel kernel that minimises the output error.

    Parameters
    ----------
    kernel : np.ndarray [shape=(k, k, 1, C)]
        Effective (batch-norm-folded) float kernel.
    moments : np.ndarray [shape=(k·k + 1, k·k + 1)]
        From :func:`patch_moments`.

    Returns
    -------
    codes : np.ndarray [shape=(k, k, 1, C), dtype=int64]
        The chosen integers (the largest-magnitude weight of each channel stays at ±``qmax``).
    scales : np.ndarray [shape=(C,)]
        Per-channel scale ``max|w| / qmax`` (what the converter uses).
    bias_correction : np.ndarray [shape=(C,)]
        To add to the effective bias: minus the mean output error of the chosen rounding.
    """
    weights = np.asarray(kernel, np.float64)
    n, channels = int(np.prod(weights.shape[:3])), weights.shape[-1]
    flat = weights.reshape(n, channels)
    cww, cwb, cbb = moments[:n, :n], moments[:n, n], moments[n, n]
    residual = cww - np.outer(cwb, cwb) / cbb  # error second moment once the mean error is corrected
    offsets = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    codes = np.zeros((n, channels), np.int64)
    scales = np.abs(flat).max(axis=0) / qmax
    correction = np.zeros(channels)
    for c in range(channels):
        w, s = flat[:, c], scales[c]
        if s == 0.0:
            continue
        lo = np.floor(w / s)
        candidates = lo[None] + offsets
        peak = int(np.argmax(np.abs(w)))
        candidates[:, peak] = np.round(w[peak] / s)  # fixes the scale the converter will derive
        candidates = np.unique(np.clip(candidates, -qmax, qmax), axis=0)
        err = candidates * s - w[None]
        best = int(np.argmin(np.einsum("ij,jk,ik->i", err, residual, err)))
        codes[:, c] = candidates[best].astype(np.int64)
        correction[c] = -(cwb @ err[best]) / cbb
    return codes.reshape(weights.shape), scales, correction


def round_first_conv(network: Any, images: npt.ArrayLike, *,
                     pad_value: float | None = None) -> tuple[Any, dict[str, Any] | None]:
    """Replace the first convolution's kernel by its adaptively rounded int8 values (in float).

    Works on a chain whose first layer after the input is a 1-input-channel ``Conv2D`` (optionally
    behind :class:`ConstantPad2D`), followed directly by an optional ``BatchNormalization`` that
    the converter folds into it; the rounding is chosen on the folded kernel and written back
    through the norm's per-channel scale.

    Parameters
    ----------
    network : keras.Model
    images : np.ndarray [shape=(n, F, T, 1)]
        Calibration images (what the body takes).
    pad_value : float, optional
        Border value of a padded ``valid`` convolution (from :func:`fold_input_norm`); ``None``
        for a ``same`` convolution on the raw input (zero padding).

    Returns
    -------
    model : keras.Model
        A copy with the new kernel and bias (``network`` when the pattern does not match).
    info : dict or None
        ``{"layer", "channels", "max_code_change"}`` (how far the codes moved from round-to-nearest).
    """
    layers = chain_layers(network)
    if not layers:
        return network, None
    i = _first_conv(layers)
    if i is None or i > 1 or (i == 1 and not isinstance(layers[0], ConstantPad2D)):
        return network, None
    conv = layers[i]
    kernel = conv.get_weights()[0].astype(np.float64)
    if type(conv) is not keras.layers.Conv2D or kernel.shape[2] != 1 or kernel.shape[0] != kernel.shape[1] \
            or kernel.shape[0] % 2 == 0 or (pad_value is None and conv.get_config()["padding"] != "same") \
            or tuple(conv.strides) != (1, 1):
        return network, None
    bias = conv.get_weights()[1].astype(np.float64) if conv.use_bias else np.zeros(conv.filters)
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    bn_scale = _bn_affine(nxt)[0] if isinstance(nxt, keras.layers.BatchNormalization) else np.ones(conv.filters)
    if np.any(bn_scale == 0):
        return network, None
    effective = kernel * bn_scale
    moments = patch_moments(images, kernel.shape[0], pad_value=0.0 if pad_value is None else pad_value)
    codes, scales, correction = adaptive_rounding(effective, moments)
    new_kernel = (codes * scales) / bn_scale
    new_bias = bias + correction / bn_scale
    replacement = keras.layers.Conv2D.from_config({**conv.get_config(), "use_bias": True})
    model = _rebuild(network, layers, replace={conv.name: [replacement]})
    replacement.set_weights([new_kernel.astype(np.float32), new_bias.astype(np.float32)])
    nearest = np.round(effective / scales)
    info = {"layer": conv.name, "channels": int(conv.filters),
            "max_code_change": int(np.abs(codes - nearest).max())}
    return model, info


def clip_activation_ranges(network: Any, images: npt.ArrayLike, percentile: float) -> tuple[Any, dict[str, float]]:
    """Fix each hidden ReLU's int8 range at ``percentile`` of its calibration values.

    The last activation (the one the embedding is pooled from) keeps the converter's min/max range.

    Parameters
    ----------
    network : keras.Model
        A chain.
    images : np.ndarray [shape=(n, F, T, 1)]
    percentile : float
        In (0, 100], e.g. 99.999.

    Returns
    -------
    model : keras.Model
        A copy with an :class:`ActivationRange` after each hidden ReLU (``network`` when not a chain).
    ranges : dict
        ``{activation layer name: maximum}``.
    """
    layers = chain_layers(network)
    acts = [layer for layer in layers or []
            if isinstance(layer, keras.layers.Activation) and layer.get_config()["activation"] == "relu"]
    if layers is None or not acts or len(acts) < 2:     # (no chain: no activations either)
        return network, {}
    hidden = acts[:-1]
    probe = keras.Model(network.input, [layer.output for layer in hidden])
    values = probe.predict(np.asarray(images, np.float32), verbose=0, batch_size=64)
    ranges = {layer.name: float(np.percentile(v, percentile)) for layer, v in zip(hidden, values)}
    after = {name: [ActivationRange(top, name=f"{name}_range")] for name, top in ranges.items() if top > 0}
    return _rebuild(network, layers, after=after), ranges


def prepare_body(network: Any, images: npt.ArrayLike, settings: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The body to convert in ``int8`` mode, and what was done to it (for the sidecar).

    Parameters
    ----------
    network : keras.Model
        The float network body (front-end image → embedding); not modified.
    images : np.ndarray [shape=(n, F, T, 1)]
        Calibration images.
    settings : dict
        ``fold_input_norm`` (bool), ``first_conv_rounding`` (``"adaptive"`` | ``"nearest"``),
        ``activation_percentile`` (float or ``None`` for the converter's min/max).

    Returns
    -------
    model : keras.Model
    info : dict
    """
    rounding = settings.get("first_conv_rounding", "adaptive")
    if rounding not in ("adaptive", "nearest"):
        raise ExportError(f"int8_body.first_conv_rounding must be 'adaptive' or 'nearest'; got {rounding!r}")
    percentile = settings.get("activation_percentile")
    if percentile is not None and not 0 < float(percentile) <= 100:
        raise ExportError(f"int8_body.activation_percentile must be in (0, 100] or null; got {percentile!r}")
    info: dict[str, Any] = {"fold_input_norm": False, "first_conv_rounding": "nearest", "activation_percentile": None}
    model, pad_value = network, None
    if settings.get("fold_input_norm", True):
        model, pad_value = fold_input_norm(model)
        info["fold_input_norm"] = pad_value is not None
        if pad_value is not None:
            info["pad_value_db"] = round(pad_value, 4)
    if rounding == "adaptive":
        model, first_conv = round_first_conv(model, images, pad_value=pad_value)
        if first_conv is not None:
            info["first_conv_rounding"] = "adaptive"
            info["first_conv"] = first_conv
    if percentile is not None:
        model, ranges = clip_activation_ranges(model, images, float(percentile))
        if ranges:
            info["activation_percentile"] = float(percentile)
    return model, info
