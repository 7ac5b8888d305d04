"""Audio input and openl3/edgel3 framing: read → mono → resample (soxr) → 1-s windows.

The framing reproduces ``openl3.core._preprocess_audio_batch`` (and edgel3, which is the same
apart from the sample rate; docs/PROTOCOL.md §1.3): with ``center=True`` half a window of zeros is prepended
so that timestamp ``k * hop_size`` is the centre of window ``k``; the end is zero-padded to a whole
number of hops; audio shorter than a window is padded to one window with a warning.
"""
import numbers
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sea_tf.errors import AudioError, ConfigError, SeaTFWarning

#: File extensions :func:`find_audio_files` picks up from directories (what libsndfile reads).
AUDIO_EXTENSIONS = frozenset(
    "." + ext.lower() for ext in sf.available_formats()) | {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}

#: Loudness floor of :func:`window_loudness_db` in dBFS (an all-zero window).
LOUDNESS_FLOOR_DB = -120.0


def check_sample_rate(sr, what="sample rate"):
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


def check_hop_size(hop_size):
    """Return ``hop_size`` (seconds) as a positive float; raise :class:`AudioError` otherwise."""
    if isinstance(hop_size, bool) or not isinstance(hop_size, numbers.Real) or not np.isfinite(hop_size) \
            or hop_size <= 0:
        raise AudioError(f"hop_size must be a positive number of seconds (e.g. 0.1), got {hop_size!r}")
    return float(hop_size)


def check_audio(audio, name="audio"):
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
    audio = np.asarray(audio)
    if audio.dtype.kind not in "fiu":
        raise AudioError(f"{name}: audio must be a numeric array, got dtype {audio.dtype}")
    if audio.size == 0:
        raise AudioError(f"{name}: audio is empty (0 samples); pass a non-empty signal")
    if audio.ndim > 2:
        raise AudioError(f"{name}: audio has {audio.ndim} dimensions {audio.shape}; "
                         "expected [n_samples] or [n_samples, n_channels]")
    if audio.dtype.kind in "iu":
        # Integer PCM (e.g. int16 from another reader) is scaled to [-1, 1) like soundfile does.
        full_scale = float(2 ** (8 * audio.dtype.itemsize - 1))
        offset = full_scale if audio.dtype.kind == "u" else 0.0
        audio = ((audio.astype(np.float64) - offset) / full_scale).astype(np.float32)
    audio = audio.astype(np.float32, copy=False)
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"{name}: {bad} of {audio.size} samples are NaN or infinite; clean the signal first")
    if audio.ndim == 2 and audio.shape[1] > audio.shape[0]:
        warnings.warn(f"{name}: shape {audio.shape} has more channels than samples; audio is read as "
                      "[n_samples, n_channels] (transpose a [channels, samples] array)", SeaTFWarning, stacklevel=3)
    if not np.any(audio):
        warnings.warn(f"{name}: every sample is zero; its embeddings carry no information", SeaTFWarning,
                      stacklevel=3)
    return audio


def load_audio(path):
    """Read an audio file with soundfile (any format libsndfile reads).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    audio : np.ndarray [shape=(n,) or (n, channels), dtype=float32]
        Samples in [-1, 1].
    sr : int
        Sample rate in Hz.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file; check the path")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc}); is the file truncated or not audio?") from exc
    _check_wav_complete(path)
    return audio, int(sr)


def _check_wav_complete(path):
    """Raise AudioError when a RIFF/WAVE file holds fewer data bytes than its header declares.

    libsndfile silently reads what is there, so a half-copied WAV would otherwise be embedded as a
    shorter clip. Streaming writers that leave the size at 0 or 0xFFFFFFFF are accepted.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk = fh.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                available = size - offset - 8
                if 0 < declared < 0xFFFFFFFF and declared > available:
                    raise AudioError(f"{path}: truncated WAV (header declares {declared} data bytes, the file holds "
                                     f"{available}); re-copy or re-download the file")
                return
            offset += 8 + declared + (declared & 1)


def to_mono(audio):
    """Downmix ``[n, channels]`` to ``[n]`` with the channel mean (as openl3); 1-D input is returned as is.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,) or (n, channels)]

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        return audio.mean(axis=1, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"audio has {audio.ndim} dimensions {audio.shape}; expected [n] or [n, channels]")
    return audio


#: Resamplers: soxr's HQ filter (the default, here and on the board), or resampy's Kaiser filters for
#: exact parity with the published features (docs/PROTOCOL.md §3.0, §3.5: ``kaiser_best`` for the
#: teacher and downstream features, ``kaiser_fast`` for the SONYC student pairs).
RESAMPLERS = ("soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast")


def resample(audio: np.ndarray, sr_in: int, sr_out: int, method: str = "soxr-hq") -> np.ndarray:
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
    sr_in = check_sample_rate(sr_in, "input sample rate")
    sr_out = check_sample_rate(sr_out, "target sample rate")
    audio = np.asarray(audio, dtype=np.float32)
    if sr_in == sr_out:
        return audio
    if method == "soxr-hq":
        return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    try:
        import resampy
    except ImportError as exc:
        raise ConfigError(f"resampler {method!r} needs resampy, an optional extra (`pip install resampy`, which "
                          "needs numba); or use resampler: soxr-hq") from exc
    out = resampy.resample(audio.astype(np.float64), sr_in, sr_out, filter=method.split("-", 1)[1].replace("-", "_"))
    n_out = int(round(len(audio) * sr_out / sr_in))
    out = out[:n_out] if len(out) >= n_out else np.pad(out, (0, n_out - len(out)))
    return out.astype(np.float32)


def n_frames(n_samples, sr, hop_size=0.1, center=True):
    """Number of 1-s windows :func:`frame_audio` makes from ``n_samples`` samples at ``sr`` Hz."""
    frame_len, hop_len = int(sr), int(hop_size * sr)
    length = n_samples + (frame_len // 2 if center else 0)
    if length <= frame_len:
        return 1
    return 1 + int(np.ceil((length - frame_len) / hop_len))


def frame_audio(audio, sr, hop_size=0.1, center=True, name="audio"):
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
    audio = check_audio(audio, name)
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


def prepare_frames(audio, sr, target_sr, hop_size=0.1, center=True, name="audio"):
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
    target_sr = check_sample_rate(target_sr, "model sample rate")
    check_hop_size(hop_size)
    audio = to_mono(check_audio(audio, name))
    audio = resample(audio, sr, target_sr)
    with warnings.catch_warnings():
        # check_audio above already warned once about all-zero input.
        warnings.filterwarnings("ignore", message=".*every sample is zero.*", category=SeaTFWarning)
        return frame_audio(audio, target_sr, hop_size=hop_size, center=center, name=name)


def window_loudness_db(frames):
    """RMS level of each window in dBFS, floored at −120 dB.

    Parameters
    ----------
    frames : np.ndarray [shape=(T, n_samples)]

    Returns
    -------
    np.ndarray [shape=(T,), dtype=float32]
        ``20 * log10(rms)``; a full-scale sine gives about −3 dB, silence gives −120 dB.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2:
        raise AudioError(f"window_loudness_db needs frames [T, n_samples]; got shape {frames.shape}")
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    floor = 10.0 ** (LOUDNESS_FLOOR_DB / 20.0)
    return (20.0 * np.log10(np.maximum(rms, floor))).astype(np.float32)


def find_audio_files(inputs, recursive=False):
    """Expand files and directories into a sorted, de-duplicated list of audio files.

    Parameters
    ----------
    inputs : str, Path or list of them
        Files are taken as given (whatever their extension); directories contribute the files
        whose extension libsndfile knows (``AUDIO_EXTENSIONS``).
    recursive : bool
        Also descend into sub-directories.

    Returns
    -------
    list of Path
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found, seen = [], set()
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            pattern = item.rglob("*") if recursive else item.glob("*")
            candidates = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        elif item.is_file():
            candidates = [item]
        else:
            raise AudioError(f"{item}: no such file or directory; check the input path")
        for path in candidates:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found
