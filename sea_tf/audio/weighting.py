"""A-weighted level of 1-s windows (docs/PROTOCOL.md §3.1): the quality score the published sampling ranks.

The reference ranks a window by its sensor's A-weighted sound level (dBA); sea-tf computes that level
from the window itself: the IEC 61672-1 A-curve, in its analytic form, applied to the window's
spectrum, then the mean square of the weighted signal by Parseval's theorem. No microphone
calibration is known, so the level is relative to digital full scale (dBFS, A-weighted), which
changes nothing in a rank within one sensor.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sea_tf.audio.framing import LOUDNESS_FLOOR_DB
from sea_tf.errors import AudioError

# Pole frequencies of the A-curve in Hz (IEC 61672-1:2013, Annex E): f1, f2, f3, f4.
_F1, _F2, _F3, _F4 = 20.598997, 107.65265, 737.86223, 12194.217


def _a_response(f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The unnormalised A-curve magnitude R_A(f) (linear, not dB)."""
    f2 = np.square(f)
    return (_F4 ** 2 * f2 ** 2) / ((f2 + _F1 ** 2) * np.sqrt((f2 + _F2 ** 2) * (f2 + _F3 ** 2)) * (f2 + _F4 ** 2))


#: R_A(1 kHz): the curve is normalised to 0 dB there (IEC 61672's A1000 ≈ −2.000 dB).
_A_1KHZ = float(_a_response(np.array([1000.0]))[0])


def a_weighting_db(frequencies: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The A-weighting in dB at ``frequencies`` (Hz): ``20 log10(R_A(f) / R_A(1000))``.

    Parameters
    ----------
    frequencies : np.ndarray [shape=(n,)]
        Hz, ≥ 0.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
        0.0 at 1 kHz, −19.1 at 100 Hz, −inf at 0 Hz (DC carries no A-weighted energy).
    """
    f = np.asarray(frequencies, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(_a_response(f) / _A_1KHZ)


def window_dba(frames: npt.ArrayLike, sr: int) -> npt.NDArray[np.float32]:
    """A-weighted level of each window in dBFS, floored like :func:`~sea_tf.audio.framing.window_loudness_db`.

    The window's one-sided power spectrum is weighted by the A-curve's power gain and summed
    (Parseval), so a full-window 1 kHz sine's level equals its unweighted RMS level and a 100 Hz
    sine's is 19.1 dB lower.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, n_samples)]
    sr : int
        Sample rate of the windows in Hz (the teacher's 48 kHz windows in the shards).

    Returns
    -------
    np.ndarray [shape=(T,), dtype=float32]
    """
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise AudioError(f"window_dba needs frames [T, n_samples]; got shape {frames.shape}")
    n = frames.shape[1]
    # Power gain per rfft bin, times 2 for the bins that stand for a negative frequency too.
    gain = np.square(10.0 ** (a_weighting_db(np.fft.rfftfreq(n, 1.0 / int(sr))) / 20.0))
    gain[1:(n + 1) // 2] *= 2.0
    gain /= float(n) ** 2
    # A few rows at a time: the complex spectrum of every window at once would take 4x their memory.
    rows = max(1, (1 << 22) // max(1, n))
    mean_square = np.empty(len(frames), np.float64)
    for i in range(0, len(frames), rows):
        spectrum = np.fft.rfft(frames[i:i + rows].astype(np.float64), axis=1)
        mean_square[i:i + rows] = (np.square(spectrum.real) + np.square(spectrum.imag)) @ gain
    floor = 10.0 ** (LOUDNESS_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(mean_square, floor))).astype(np.float32)
