"""Argument checks shared by every audio function: sample rate, hop size, and the audio array itself."""
from __future__ import annotations

import numbers
import warnings

import numpy as np
import numpy.typing as npt

from sea_tf.errors import AudioError, SeaTFWarning


def check_sample_rate(sr: float, *, what: str = "sample rate") -> int:
    """Return ``sr`` as a positive ``int``; raise :class:`AudioError` otherwise.

    Parameters
    ----------
    sr : int or float
        Sample rate in Hz. Floats are accepted only when they hold an integer value (e.g. 8000.0).
    what : str
        How to name the value in the error message.
    """
    if isinstance(sr, bool) or not isinstance(sr, numbers.Real):
        raise AudioError(f"{what} must be a positive integer number of Hz, got {sr!r} ({type(sr).__name__})")
    if not np.isfinite(sr) or sr <= 0 or float(sr) != int(sr):
        raise AudioError(f"{what} must be a positive integer number of Hz, got {sr!r}")
    return int(sr)


def check_hop_size(hop_size: float) -> float:
    """Return ``hop_size`` (seconds) as a positive float; raise :class:`AudioError` otherwise."""
    if isinstance(hop_size, bool) or not isinstance(hop_size, numbers.Real) or not np.isfinite(hop_size) \
            or hop_size <= 0:
        raise AudioError(f"hop_size must be a positive number of seconds (e.g. 0.1), got {hop_size!r}")
    return float(hop_size)


def check_audio(audio: npt.ArrayLike, *, name: str = "audio") -> npt.NDArray[np.float32]:
    """Validate an audio array and return it as float32 ``[n]`` or ``[n, channels]``.

    Raises :class:`AudioError` for empty arrays, more than two dimensions and NaN/infinite
    samples; warns (:class:`SeaTFWarning`) when every sample is zero. Integer PCM is scaled to
    [-1, 1) (int16 by 1/32768, uint8 centred on 128).

    Parameters
    ----------
    audio : array_like [shape=(n,) or (n, channels)]
    name : str
        How to name the input in messages (a file path, or "audio").
    """
    array = np.asarray(audio)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{name}: audio must be a numeric array, got dtype {array.dtype}")
    if array.size == 0:
        raise AudioError(f"{name}: audio is empty (0 samples); pass a non-empty signal")
    if array.ndim > 2:
        raise AudioError(f"{name}: audio has {array.ndim} dimensions {array.shape}; "
                         "expected [n_samples] or [n_samples, n_channels]")
    if array.dtype.kind in "iu":
        # Integer PCM (e.g. int16 from another reader) is scaled to [-1, 1) like soundfile does.
        full_scale = float(2 ** (8 * array.dtype.itemsize - 1))
        offset = full_scale if array.dtype.kind == "u" else 0.0
        array = ((array.astype(np.float64) - offset) / full_scale).astype(np.float32)
    samples = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(f"{name}: {bad} of {samples.size} samples are NaN or infinite; clean the signal first")
    if samples.ndim == 2 and samples.shape[1] > samples.shape[0]:
        warnings.warn(f"{name}: shape {samples.shape} has more channels than samples; audio is read as "
                      "[n_samples, n_channels] (transpose a [channels, samples] array)", SeaTFWarning, stacklevel=3)
    if not np.any(samples):
        warnings.warn(f"{name}: every sample is zero; its embeddings carry no information", SeaTFWarning,
                      stacklevel=3)
    return samples
