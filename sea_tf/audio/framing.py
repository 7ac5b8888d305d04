"""openl3/edgel3 framing (docs/PROTOCOL.md §1.3): mono audio → 1-s windows, whole or block by block.

With ``center=True`` half a window of zeros is prepended so that timestamp ``k * hop_size`` is the
centre of window ``k``; the end is zero-padded to a whole number of hops; audio shorter than a
window is padded to one window with a warning.
"""
from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from sea_tf.audio.checks import check_audio, check_hop_size, check_sample_rate
from sea_tf.audio.files import to_mono
from sea_tf.audio.resampling import resample
from sea_tf.errors import AudioError, SeaTFWarning

#: Loudness floor of :func:`window_loudness_db` in dBFS (an all-zero window).
LOUDNESS_FLOOR_DB = -120.0


def n_frames(n_samples: int, sr: int, *, hop_size: float = 0.1, center: bool = True) -> int:
    """Number of 1-s windows :func:`frame_audio` makes from ``n_samples`` samples at ``sr`` Hz."""
    frame_len, hop_len = int(sr), int(hop_size * sr)
    length = n_samples + (frame_len // 2 if center else 0)
    if length <= frame_len:
        return 1
    return 1 + int(np.ceil((length - frame_len) / hop_len))


def frame_audio(audio: npt.ArrayLike, sr: int, *, hop_size: float = 0.1, center: bool = True,
                name: str = "audio") -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Cut mono audio into 1-s windows with openl3/edgel3 semantics (docs/PROTOCOL.md §1.3).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
        Mono samples at ``sr``.
    sr : int
        Sample rate in Hz; the window is ``sr`` samples (1 s).
    hop_size : float
        Hop between windows in seconds; the hop in samples is ``int(hop_size * sr)``.
    center : bool
        Prepend ``sr // 2`` zeros so that timestamp ``k * hop_size`` is the centre of window ``k``.
    name : str
        How to name the input in warnings and errors.

    Returns
    -------
    frames : np.ndarray [shape=(T, sr), dtype=float32]
    timestamps : np.ndarray [shape=(T,), dtype=float64]
        ``arange(T) * hop_size`` in seconds.

    Examples
    --------
    >>> frames, ts = frame_audio(np.zeros(8000, "float32") + 0.1, 8000)   # doctest: +SKIP
    >>> frames.shape, ts                                                    # doctest: +SKIP
    ((6, 8000), array([0. , 0.1, 0.2, 0.3, 0.4, 0.5]))
    """
    sr = check_sample_rate(sr)
    hop_size = check_hop_size(hop_size)
    audio = check_audio(audio, name=name)
    if audio.ndim != 1:
        raise AudioError(f"{name}: frame_audio needs mono audio [n]; got shape {audio.shape} (use to_mono first)")
    frame_len = sr
    hop_len = int(hop_size * sr)
    if hop_len < 1:
        raise AudioError(f"{name}: hop_size {hop_size} s is shorter than one sample at {sr} Hz")
    if center:
        audio = np.concatenate([np.zeros(frame_len // 2, np.float32), audio])
    length = audio.shape[0]
    if length < frame_len:
        warnings.warn(f"{name}: audio ({length / sr:.3f} s with centring) is shorter than the 1-s window; "
                      "zero-padding it to one window", SeaTFWarning, stacklevel=2)
        pad = frame_len - length
    else:
        pad = int(np.ceil((length - frame_len) / hop_len)) * hop_len - (length - frame_len)
    if pad:
        audio = np.concatenate([audio, np.zeros(pad, np.float32)])
    count = 1 + (audio.shape[0] - frame_len) // hop_len
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame_len)[::hop_len][:count]
    timestamps = np.arange(count, dtype=np.float64) * hop_size
    return np.ascontiguousarray(frames, dtype=np.float32), timestamps


def prepare_frames(audio: npt.ArrayLike, sr: int, target_sr: int, *, hop_size: float = 0.1, center: bool = True,
                   name: str = "audio") -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Mono → resample to ``target_sr`` (soxr HQ) → :func:`frame_audio`.

    Parameters
    ----------
    audio : array_like [shape=(n,) or (n, channels)]
    sr : int
        Sample rate of ``audio`` in Hz.
    target_sr : int
        The model's sample rate in Hz (window length = ``target_sr`` samples).
    hop_size : float
        Seconds between windows.
    center : bool
        Centre window ``k`` on ``k * hop_size``.

    Returns
    -------
    frames : np.ndarray [shape=(T, target_sr), dtype=float32]
    timestamps : np.ndarray [shape=(T,), dtype=float64]
    """
    sr = check_sample_rate(sr)
    target_sr = check_sample_rate(target_sr, what="model sample rate")
    check_hop_size(hop_size)
    mono = resample(to_mono(check_audio(audio, name=name)), sr, target_sr)
    with warnings.catch_warnings():
        # check_audio above already warned once about all-zero input.
        warnings.filterwarnings("ignore", message=".*every sample is zero.*", category=SeaTFWarning)
        return frame_audio(mono, target_sr, hop_size=hop_size, center=center, name=name)


def window_loudness_db(frames: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """RMS level of each window in dBFS, floored at −120 dB.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, n_samples)]

    Returns
    -------
    np.ndarray [shape=(T,), dtype=float32]
        ``20 * log10(rms)``; a full-scale sine gives about −3 dB, silence gives −120 dB.
    """
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise AudioError(f"window_loudness_db needs frames [T, n_samples]; got shape {frames.shape}")
    # float64 rows a few at a time: the whole array in float64 (and its square) would cost 4x the
    # windows' own memory; each row's mean is the same whichever rows share the call.
    rows = max(1, (1 << 22) // max(1, frames.shape[1]))
    mean_square = np.empty(len(frames), np.float64)
    for i in range(0, len(frames), rows):
        mean_square[i:i + rows] = np.mean(np.square(frames[i:i + rows].astype(np.float64)), axis=1)
    floor = 10.0 ** (LOUDNESS_FLOOR_DB / 20.0)
    return (20.0 * np.log10(np.maximum(np.sqrt(mean_square), floor))).astype(np.float32)


class WindowFramer:
    """Cut mono audio pushed block by block into :func:`frame_audio`'s windows.

    Holds at most one window plus one pushed block of samples, whatever the length of the signal.
    ``push`` returns the windows complete so far; ``finish`` pads the end exactly as
    :func:`frame_audio` does (to a whole hop, or to one window) and returns the rest, so the
    concatenated windows equal ``frame_audio(whole_signal, sr, hop_size=hop_size, center=center)[0]``.

    Parameters
    ----------
    sr : int
        Sample rate in Hz; a window is ``sr`` samples (1 s).
    hop_size : float
        Seconds between windows; the hop in samples is ``int(hop_size * sr)``.
    center : bool
        Prepend ``sr // 2`` zeros (window ``k`` centred on ``k * hop_size``).
    """

    def __init__(self, sr: int, *, hop_size: float = 0.1, center: bool = True) -> None:
        self.sr = check_sample_rate(sr)
        self.hop_size = check_hop_size(hop_size)
        self.center = bool(center)
        self.frame_len, self.hop_len = self.sr, int(self.hop_size * self.sr)
        if self.hop_len < 1:
            raise AudioError(f"hop_size {hop_size} s is shorter than one sample at {sr} Hz")
        self.n_in = 0                     # samples pushed (without the centring pad)
        self.n_out = 0                    # windows returned
        self._buf = np.zeros(self.frame_len // 2 if center else 0, np.float32)
        self._buf_start = 0               # position of _buf[0] in the centred signal

    def push(self, samples: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Append mono samples; return the windows now complete, float32 ``[m, sr]`` (m may be 0)."""
        samples = np.asarray(samples, dtype=np.float32)
        self.n_in += len(samples)
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples
        end = self._buf_start + len(self._buf)
        last = (end - self.frame_len) // self.hop_len if end >= self.frame_len else -1
        return self._take(last + 1)

    def finish(self) -> npt.NDArray[np.float32]:
        """Zero-pad the end as :func:`frame_audio` does; return the remaining windows ``[m, sr]``."""
        count = n_frames(self.n_in, self.sr, hop_size=self.hop_size, center=self.center)
        need = (count - 1) * self.hop_len + self.frame_len - (self._buf_start + len(self._buf))
        if need > 0:
            self._buf = np.concatenate([self._buf, np.zeros(need, np.float32)])
        return self._take(count)

    def _take(self, upto: int) -> npt.NDArray[np.float32]:
        """Windows ``n_out .. upto-1`` (copies), then drop the samples no later window needs."""
        first = self.n_out
        if upto <= first:
            return np.empty((0, self.frame_len), np.float32)
        offset = first * self.hop_len - self._buf_start
        view = np.lib.stride_tricks.sliding_window_view(self._buf[offset:], self.frame_len)[::self.hop_len]
        frames = np.array(view[:upto - first], dtype=np.float32)
        self.n_out = upto
        drop = min(upto * self.hop_len - self._buf_start, len(self._buf))
        self._buf, self._buf_start = self._buf[drop:].copy(), self._buf_start + drop
        return frames

