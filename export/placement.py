"""Where the front end runs: inside the ``.tflite`` or on the device with the numpy twin.

A mode carries the front end only when it computes it with the *same* numbers as the Keras
layer. Measured on the published SEA-64 (held-out demo audio, cosine vs Keras fp32):

- ``fp32`` (1.000000) and ``fp16`` (0.999999; only the window and mel filterbank constants are
  rounded to float16, the arithmetic stays float32): inside the model.
- ``dynamic``: the hybrid FULLY_CONNECTED kernel quantizes its *input*, the power spectrum, to
  int8 per frame, which wipes out every band 24 dB (power) below the frame's loudest one:
  cosine 0.70. The body alone converts fine (0.9999), so the device computes the front end.
- ``int8`` / ``int16x8``: log, sqrt and the per-example max of the dB step have no exact integer
  kernels (cosine 0.60 when forced in): network body only.

Nothing is approximated: when the front end is not in the model, the sidecar says the input is the
dB image of ``frontend`` and the device computes it with ``device.frontends.compute_frontend``.
"""
import re
from typing import Any

from sea_tf.errors import ExportError
from sea_tf.models.seamodel import assemble

#: Modes whose ``.tflite`` reproduces the front end exactly (see the module docstring).
FRONTEND_EXACT_MODES = ("fp32", "fp16")
PLACEMENTS = ("auto", "device")


def frontend_in_model(mode: str, *, placement: str) -> bool:
    """Whether the ``mode`` export takes raw audio (front end inside).

    Parameters
    ----------
    mode : str
        Export mode.
    placement : {"auto", "device"}
        ``auto``: inside when the mode carries it exactly; ``device``: always on the device
        (network body only in every mode, e.g. to time the bodies alone).

    Returns
    -------
    bool
    """
    if placement not in PLACEMENTS:
        raise ExportError(f"front-end placement must be one of {PLACEMENTS}; got {placement!r}")
    return placement == "auto" and mode in FRONTEND_EXACT_MODES


def export_graph(model: Any, inside: bool, *, dft: str) -> Any:
    """The Keras model to convert for one artifact.

    Parameters
    ----------
    model : sea_tf.models.SeaModel
    inside : bool
        True: raw audio ``[B, frame_samples]`` → embedding (front end rebuilt with ``dft``);
        False: front-end image ``[B, F, T, 1]`` → embedding (the network body).
    dft : {"rfft", "matmul"}
        DFT of an in-model front end. ``rfft`` converts to the builtin RFFT2D and is the fastest
        on CPU; ``matmul`` (kapre's 1024×513 kernels) is for interpreters without RFFT2D.

    Returns
    -------
    keras.Model
    """
    network = model.network()
    if not inside:
        return network
    return assemble(model.frontend, network, re.sub(r"\W", "_", model.name), dft=dft)
