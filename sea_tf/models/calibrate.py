"""Batch-norm calibration of an untrained model, so that a seeded random L3 is a usable feature extractor.

With BN moving statistics at their defaults (mean 0, variance 1), dB inputs in [−80, 0] saturate
the first ReLUs of a random network and its embeddings are nearly constant. Setting each BN
layer's moving mean and variance from a batch of real audio (in order, each layer seeing the
already-normalised output of the previous ones) gives a random but informative "seeded untrained
L3" — what the demo uses as its teacher when no openl3 weights are available.
"""
import numpy as np
import numpy.typing as npt

from sea_tf.backend import keras, tf
from sea_tf.errors import ModelError
from sea_tf.models.seamodel import SeaModel

UNTRAINED_TEACHER_NAME = "seeded untrained L3"


def calibrate_batchnorm(seamodel: SeaModel, frames: npt.ArrayLike, *, batch_size: int = 16) -> SeaModel:
    """Set every BN layer's moving mean/variance from ``frames``, in layer order (in place).

    Parameters
    ----------
    seamodel : SeaModel
    frames : np.ndarray [shape=(N, frame_samples)]
        Real audio windows at the model's sample rate (a few dozen suffice).
    batch_size : int
        Windows per forward pass through the front end and each layer.

    Returns
    -------
    SeaModel
        The same model; its card records ``weights.calibrated_batchnorm`` and, for an untrained
        teacher, is renamed "seeded untrained L3".
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != seamodel.frame_samples or len(frames) < 2:
        raise ModelError(f"calibrate_batchnorm needs at least 2 windows [N, {seamodel.frame_samples}]; "
                         f"got shape {frames.shape}")
    frontend = seamodel.frontend_layer()
    x = np.concatenate([frontend(frames[i:i + batch_size]).numpy() for i in range(0, len(frames), batch_size)])
    network = seamodel.network()
    n_calibrated = 0
    # The body is a straight chain, so one pass through its layers in order sees each BN's input.
    for layer in network.layers[1:]:
        if isinstance(layer, keras.layers.BatchNormalization):
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axis=axes, dtype=np.float64)
            var = x.var(axis=axes, dtype=np.float64)
            gamma, beta, _, _ = layer.get_weights()
            layer.set_weights([gamma, beta, mean.astype(np.float32), var.astype(np.float32)])
            n_calibrated += 1
        x = np.concatenate([layer(tf.constant(x[i:i + batch_size]), training=False).numpy()
                            for i in range(0, len(x), batch_size)])
    seamodel._forward = None
    card = seamodel.card
    card["weights"]["calibrated_batchnorm"] = {"n_frames": int(len(frames)), "n_layers": n_calibrated}
    if card["kind"] == "teacher" and card["weights"].get("source") == "untrained":
        card["name"] = UNTRAINED_TEACHER_NAME
    return seamodel
