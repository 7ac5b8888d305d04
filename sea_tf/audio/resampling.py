"""Resampling a whole mono signal: soxr HQ (the default, as on the board) or resampy's Kaiser filters."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from sea_tf.audio.checks import check_sample_rate
from sea_tf.errors import ConfigError

#: Resamplers: soxr's HQ filter (the default, here and on the board), or resampy's Kaiser filters for
#: exact parity with the published features (docs/PROTOCOL.md §3.0, §3.5: ``kaiser_best`` for the
#: teacher and downstream features, ``kaiser_fast`` for the SONYC student pairs).
RESAMPLERS = ("soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast")


def resample(audio: npt.ArrayLike, sr_in: int, sr_out: int, *, method: str = "soxr-hq") -> npt.NDArray[np.float32]:
    """Resample mono ``audio`` from ``sr_in`` to ``sr_out`` Hz.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
    sr_in, sr_out : int
        Sample rates in Hz.
    method : {"soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast"}
        resampy is an optional extra (``pip install resampy``; it needs numba), not a requirement.

    Returns
    -------
    np.ndarray [shape=(round(n * sr_out / sr_in),), dtype=float32]
        resampy returns ``ceil``-rounded lengths for some ratios; the result is trimmed or
        zero-padded to soxr's length so every method frames the same number of windows.
    """
    if method not in RESAMPLERS:
        raise ConfigError(f"resampler must be one of {', '.join(RESAMPLERS)}; got {method!r}")
    sr_in = check_sample_rate(sr_in, what="input sample rate")
    sr_out = check_sample_rate(sr_out, what="target sample rate")
    samples = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return samples
    if method == "soxr-hq":
        return soxr.resample(samples, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    try:
        import resampy
    except ImportError as exc:
        raise ConfigError(f"resampler {method!r} needs resampy, an optional extra (`pip install resampy`, which "
                          "needs numba); or use resampler: soxr-hq") from exc
    out = resampy.resample(samples.astype(np.float64), sr_in, sr_out, filter=method.split("-", 1)[1].replace("-", "_"))
    n_out = int(round(len(samples) * sr_out / sr_in))
    out = out[:n_out] if len(out) >= n_out else np.pad(out, (0, n_out - len(out)))
    return out.astype(np.float32)

