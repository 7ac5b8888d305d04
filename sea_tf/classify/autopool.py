"""AutoPool1D: adaptive pooling over time with one learnable sharpness per class (docs/PROTOCOL.md §4.3).

McFee, Salamon & Bello, "Adaptive pooling operators for weakly labeled sound event detection"
(IEEE/ACM TASLP 2018): for frame probabilities x_t of one class,

    pooled = Σ_t x_t · softmax_t(α · x_t),    α ≥ 0

α = 0 is the mean over frames, α → ∞ the max, α = 1 the "softmax-weighted" average. The
``autopool`` package implements it for standalone Keras 3, which does not mix with the tf_keras
models sea-tf builds, so this is our own small tf_keras layer.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sea_tf.backend import keras, tf


@keras.utils.register_keras_serializable(package="sea_tf")
class AutoPool1D(keras.layers.Layer):
    """Pool ``[B, T, C]`` over T with a learnable, non-negative α per channel C.

    Parameters
    ----------
    axis : int
        The time axis (1 for ``[B, T, C]``).
    alpha_init : float
        Initial α (0: start as the mean, as the ``autopool`` package does).

    Input ``float32 [B, T, C]`` (probabilities) → output ``float32 [B, C]``.
    """

    def __init__(self, *, axis: int = 1, alpha_init: float = 0.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.alpha_init = float(alpha_init)

    def build(self, input_shape: tf.TensorShape) -> None:
        self.alpha = self.add_weight(name="alpha", shape=(int(input_shape[-1]),),
                                     initializer=keras.initializers.Constant(self.alpha_init),
                                     constraint=keras.constraints.NonNeg(), trainable=True)
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        scaled = self.alpha * x
        # softmax over time; subtracting the max keeps exp() finite for large α
        weights = tf.nn.softmax(scaled, axis=self.axis)
        return tf.reduce_sum(x * weights, axis=self.axis)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tuple:
        shape = list(input_shape)
        del shape[self.axis]
        return tuple(shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis, "alpha_init": self.alpha_init}


def autopool_numpy(x: npt.ArrayLike, alpha: npt.ArrayLike, *, axis: int = 1) -> npt.NDArray[np.float64]:
    """The AutoPool formula in float64 numpy (the reference the layer is tested against).

    Parameters
    ----------
    x : np.ndarray [shape=(B, T, C)]
    alpha : np.ndarray [shape=(C,)], ≥ 0

    Returns
    -------
    np.ndarray [shape=(B, C)]
    """
    values = np.asarray(x, dtype=np.float64)
    z = np.asarray(alpha, dtype=np.float64) * values
    w = np.exp(z - z.max(axis=axis, keepdims=True))
    w /= w.sum(axis=axis, keepdims=True)
    return (values * w).sum(axis=axis)
