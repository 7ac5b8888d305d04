"""Audio input and openl3/edgel3 framing: read → mono → resample (soxr) → 1-s windows.

The framing reproduces ``openl3.core._preprocess_audio_batch`` (and edgel3, which is the same
apart from the sample rate; docs/PROTOCOL.md §1.3): with ``center=True`` half a window of zeros is prepended
so that timestamp ``k * hop_size`` is the centre of window ``k``; the end is zero-padded to a whole
number of hops; audio shorter than a window is padded to one window with a warning.
"""
import numbers
import os
import stat
import warnings
from pathlib import Path
from typing import NamedTuple

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


#: Sample rates (Hz) a file's header may declare. Below 1 kHz no real recording exists and the ratio
#: to a model's rate (up to 48 kHz) would multiply the samples by more than 48 before any check; a
#: 2-KB WAV whose header said 1 Hz cost +996 MiB in the old reader. 384 kHz is the highest rate of
#: common recorders and of libsndfile's own tests.
MIN_FILE_SAMPLE_RATE, MAX_FILE_SAMPLE_RATE = 1000, 384000

#: Bytes per sample of the uncompressed subtypes, for the frames x channels check against the
#: file's size (compressed formats are never allocated from their header's frame count: they
#: are read block by block).
_PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
              "ULAW": 1, "ALAW": 1}
#: Containers whose samples are stored as they are (FLAC says PCM_16 of what it compresses).
_PCM_CONTAINERS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "AU", "CAF", "RAW"})
#: A FLAC frame holds at most 65,535 samples per channel and costs more than one byte per channel
#: (frame header, CRC), so no FLAC file holds more samples than this many per byte.
_FLAC_SAMPLES_PER_BYTE = 65535


def check_file_header(path: Path, handle: sf.SoundFile) -> None:
    """Raise :class:`AudioError` when an open file's header cannot describe real audio.

    Checked before any sample is read or resampled, so a header that lies cannot make a reader
    allocate: the sample rate must lie within ``MIN_FILE_SAMPLE_RATE``–``MAX_FILE_SAMPLE_RATE``
    (1 kHz–384 kHz), there must be at least one channel, and for uncompressed PCM the declared
    frames x channels x bytes per sample must fit in the file's size (FLAC: at most 65,535
    samples per byte).

    Parameters
    ----------
    path : Path
        Named in the message.
    handle : soundfile.SoundFile
        Open for reading.
    """
    sr, channels, frames = int(handle.samplerate), int(handle.channels), int(handle.frames)
    if not MIN_FILE_SAMPLE_RATE <= sr <= MAX_FILE_SAMPLE_RATE:
        raise AudioError(f"{path}: header declares a sample rate of {sr} Hz, outside "
                         f"{MIN_FILE_SAMPLE_RATE // 1000} kHz-{MAX_FILE_SAMPLE_RATE // 1000} kHz; the file is "
                         "corrupt or not audio (re-encode or remove it)")
    if channels < 1:
        raise AudioError(f"{path}: header declares {channels} channels; the file is corrupt (re-encode or remove it)")
    width = _PCM_BYTES.get(handle.subtype) if handle.format in _PCM_CONTAINERS else None
    info = os.stat(path)
    size = info.st_size
    if width and stat.S_ISREG(info.st_mode) and frames > 0 and frames * channels * width > size:
        raise AudioError(f"{path}: header declares {frames} frames x {channels} channels of {width}-byte "
                         f"samples ({frames * channels * width} bytes) but the file holds {size} bytes; the "
                         "file is truncated or corrupt (re-copy or re-encode it)")
    if handle.format == "FLAC" and stat.S_ISREG(info.st_mode) and frames * channels > _FLAC_SAMPLES_PER_BYTE * size:
        raise AudioError(f"{path}: header declares {frames} frames x {channels} channels, more than a FLAC file of "
                         f"{size} bytes can hold; the file is corrupt (re-encode it)")


def read_block_frames(sr: int, channels: int, *, samples: "int | None" = None) -> int:
    """Source frames per read so that one block is bounded whatever the file's rate and channels.

    A block holds at most ``samples`` samples over all channels (default :data:`READ_BLOCK_FRAMES`)
    and at most ``samples / 48000`` seconds, so resampled to any model rate up to 48 kHz it is at
    most ``samples`` samples too: peak memory depends on this bound, never on the header.

    Parameters
    ----------
    sr : int
        The file's sample rate in Hz.
    channels : int
    samples : int, optional

    Returns
    -------
    int
        At least 1.
    """
    samples = int(samples or READ_BLOCK_FRAMES)
    return max(1, min(samples // max(1, int(channels)), -(-samples * int(sr) // 48000)))


def _open_checked(path):
    """soundfile's handle on ``path`` after :func:`check_file_header` (closed again on failure)."""
    handle = sf.SoundFile(str(path))
    try:
        check_file_header(path, handle)
    except BaseException:
        handle.close()
        raise
    return handle


def load_audio(path):
    """Read an audio file with soundfile (any format libsndfile reads).

    The header is checked first (:func:`check_file_header`), and the samples are read in blocks
    (:func:`read_block_frames`), so what is allocated follows the samples the file really holds,
    never the frame count its header declares.

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
        with _open_checked(path) as handle:
            step = read_block_frames(handle.samplerate, handle.channels)
            parts = []
            while True:
                block = handle.read(step, dtype="float32", always_2d=True)
                if not len(block):
                    break
                parts.append(block)
            sr, channels = int(handle.samplerate), int(handle.channels)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc}); is the file truncated or not audio?") from exc
    _check_wav_complete(path)
    audio = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros((0, channels), np.float32))
    return (audio[:, 0].copy() if channels == 1 else audio), sr


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


# -- Streaming: one file block by block, memory flat in its length ------------------------------
#
# A long field recording framed whole costs ~1.4 GB per hour at 48 kHz and hop 0.5 s; the functions
# below read, downmix, resample and frame it in blocks, so memory depends on the block size only.
# soxr's streaming resampler carries its filter state across blocks and gives the very samples of the
# one-shot ``soxr.resample`` (bit-identical, checked in tests/test_audio_stream.py), so a streamed file
# yields exactly frame_audio's windows.

#: libsndfile's error code for a failure of the operating system (open/read errno), as opposed to a
#: file it does not understand: the only libsndfile error worth retrying.
_SF_ERR_SYSTEM = 2

#: Source frames per soundfile read when no block size is asked for (~1.4 s at 48 kHz).
READ_BLOCK_FRAMES = 65536


class TransientAudioError(AudioError):
    """The operating system failed to open or read an audio file (an errno: NFS, a mount not up yet).

    Raised by :func:`read_mono_blocks` once its retries are spent; a file libsndfile cannot
    decode raises a plain :class:`AudioError` at once instead.
    """


def _is_transient(exc):
    if isinstance(exc, sf.LibsndfileError):
        return exc.code == _SF_ERR_SYSTEM
    return isinstance(exc, OSError)


def read_mono_blocks(path, block_frames=None, retries=0, backoff_s=0.5, log=None):
    """Open an audio file and return its rate and an iterator over mono float32 blocks.

    Every format :func:`load_audio` reads streams (libsndfile decodes all of them sequentially),
    and the samples are those of ``to_mono(load_audio(path)[0])``. A transient failure of the
    operating system (an ``OSError`` such as a stale NFS handle or a missing mount, or libsndfile's
    "System error") is retried up to ``retries`` times per file, waiting ``backoff_s * 2**i``
    seconds before retry ``i``; the file is reopened and reading continues at the frame where it
    failed, so the blocks are the same as those of an undisturbed read. A file libsndfile cannot
    decode (or with NaN/infinite samples, or a truncated WAV) fails at once with :class:`AudioError`.

    Parameters
    ----------
    path : str or Path
    block_frames : int, optional
        Source frames per block (the last block may be shorter); default
        :func:`read_block_frames` of the file's rate and channels, so a block is bounded whatever
        the header says. The header is checked (:func:`check_file_header`) before any read.
    retries : int
        Retries of a transient error per file (0: fail at the first).
    backoff_s : float
        Seconds before the first retry; doubled for each further one.
    log : logging.Logger, optional
        Where each retry is reported (warning); ``sea_tf.audio``'s logger by default.

    Returns
    -------
    sr : int
        The file's sample rate in Hz.
    blocks : iterator of np.ndarray [shape=(<= block_frames,), dtype=float32]
        Mono samples (channel mean); at least one sample in all, else :class:`AudioError`.
    """
    import logging
    import time

    path = Path(path)
    log = log or logging.getLogger(__name__)
    if block_frames is not None:
        block_frames = int(block_frames)
        if block_frames < 1:
            raise AudioError(f"block_frames must be a positive number of frames, got {block_frames}")
    state = {"retries_left": int(retries), "attempt": 0}

    def attempt(what, fn, error=None):
        # fn() with the retry policy; `error` is a failure that already happened (a read), so the
        # first call of fn is then a retry.
        while True:
            if error is None:
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - sorted into transient / not below
                    error = exc
            if not _is_transient(error):
                if isinstance(error, AudioError):
                    raise error
                raise AudioError(f"{path}: cannot read audio ({error}); is the file truncated or not "
                                 "audio?") from error
            if state["retries_left"] <= 0:
                raise TransientAudioError(f"{path}: {what} failed {state['attempt'] + 1} time(s) ({error}); "
                                          "check the file system (NFS, mounts) and re-run, which resumes") from error
            wait = float(backoff_s) * 2 ** state["attempt"]
            log.warning("%s: %s failed (%s); retry %d of %d in %.2f s", path, what, error,
                        state["attempt"] + 1, int(retries), wait)
            state["retries_left"] -= 1
            state["attempt"] += 1
            time.sleep(wait)
            error = None

    def open_at(frame):
        if not path.exists():
            # A file that was listed a moment ago and is gone now: a mount or NFS hiccup until the
            # retries say otherwise (ENOENT is an OSError, like any errno).
            raise FileNotFoundError(2, "No such file or directory", str(path))
        if not path.is_file():
            raise AudioError(f"{path}: not a regular file; pass audio files")
        _check_wav_complete(path)
        handle = _open_checked(path)
        try:
            if frame:
                if handle.seekable():
                    handle.seek(frame)
                else:  # decoded stream without seeking: skip what was already delivered
                    left = frame
                    while left:
                        got = len(handle.read(min(left, block_frames), dtype="float32", always_2d=True))
                        if not got:
                            raise OSError(f"{path} ended before frame {frame} on reopening (was it replaced?)")
                        left -= got
        except BaseException:
            handle.close()
            raise
        return handle

    handle = attempt("opening", lambda: open_at(0))
    sr = int(handle.samplerate)
    if block_frames is None:
        block_frames = read_block_frames(sr, handle.channels)

    def blocks():
        nonlocal handle
        done = 0
        try:
            while True:
                try:
                    block = handle.read(block_frames, dtype="float32", always_2d=True)
                except Exception as exc:  # noqa: BLE001 - the retry policy sorts it
                    handle.close()
                    handle = None
                    handle = attempt("reading", lambda: open_at(done), error=exc)
                    continue
                if not len(block):
                    break
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
                if not np.all(np.isfinite(mono)):
                    raise AudioError(f"{path}: NaN or infinite samples near {done / sr:.1f} s; re-encode or clean "
                                     "the file")
                done += len(block)
                yield mono
            if done == 0:
                raise AudioError(f"{path}: audio is empty (0 samples); remove it from the input")
        finally:
            if handle is not None:
                handle.close()

    return sr, blocks()


class WindowFramer:
    """Cut mono audio pushed block by block into :func:`frame_audio`'s windows.

    Holds at most one window plus one pushed block of samples, whatever the length of the signal.
    ``push`` returns the windows complete so far; ``finish`` pads the end exactly as
    :func:`frame_audio` does (to a whole hop, or to one window) and returns the rest, so the
    concatenated windows equal ``frame_audio(whole_signal, sr, hop_size, center)[0]``.

    Parameters
    ----------
    sr : int
        Sample rate in Hz; a window is ``sr`` samples (1 s).
    hop_size : float
        Seconds between windows; the hop in samples is ``int(hop_size * sr)``.
    center : bool
        Prepend ``sr // 2`` zeros (window ``k`` centred on ``k * hop_size``).
    """

    def __init__(self, sr: int, hop_size: float = 0.1, center: bool = True):
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

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append mono samples; return the windows now complete, float32 ``[m, sr]`` (m may be 0)."""
        samples = np.asarray(samples, dtype=np.float32)
        self.n_in += len(samples)
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples
        end = self._buf_start + len(self._buf)
        last = (end - self.frame_len) // self.hop_len if end >= self.frame_len else -1
        return self._take(last + 1)

    def finish(self) -> np.ndarray:
        """Zero-pad the end as :func:`frame_audio` does; return the remaining windows ``[m, sr]``."""
        count = n_frames(self.n_in, self.sr, self.hop_size, self.center)
        need = (count - 1) * self.hop_len + self.frame_len - (self._buf_start + len(self._buf))
        if need > 0:
            self._buf = np.concatenate([self._buf, np.zeros(need, np.float32)])
        return self._take(count)

    def _take(self, upto):
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


class WindowBlock(NamedTuple):
    """Consecutive 1-s windows of one file, at one or several sample rates (:func:`stream_windows`).

    Attributes
    ----------
    start : int
        Index of the first window in the file (window ``start + i`` is row ``i``).
    timestamps : np.ndarray [shape=(b,), dtype=float64]
        Seconds, ``(start + arange(b)) * hop_size``, as :func:`frame_audio`'s.
    frames : tuple of np.ndarray [shape=(b, sr_j), dtype=float32]
        The windows at each requested rate, in the order asked for.
    loudness_db : np.ndarray [shape=(b,), dtype=float32]
        :func:`window_loudness_db` of ``frames[0]``.
    """
    start: int
    timestamps: np.ndarray
    frames: tuple
    loudness_db: np.ndarray


class _StreamResampler:
    """soxr's streaming resampler, or the identity when the rates agree."""

    def __init__(self, sr_in, sr_out):
        self.stream = None if sr_in == sr_out else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32",
                                                                       quality="HQ")

    def __call__(self, block, last=False):
        if self.stream is None:
            return block
        return self.stream.resample_chunk(block, last=last)


def stream_windows(path, sample_rates, hop_size: float = 0.1, center: bool = True, block_windows: int = 32,
                   resampler: str = "soxr-hq", retries: int = 0, backoff_s: float = 0.5, log=None):
    """Read, downmix, resample and frame one file in blocks: memory flat in the file's length.

    For each rate in ``sample_rates`` the windows are exactly those of
    ``prepare_frames(*load_audio(path), rate, hop_size, center)`` (soxr's streaming resampler gives
    the one-shot resampler's samples bit for bit); when the rates' window counts differ (their
    resampled lengths round differently), the file has the smaller count at every rate, as
    ``sea-tf teacher-embed`` pairs them. Peak memory is a few blocks of ``block_windows`` windows
    at each rate plus one read block, whatever the file's length.

    Parameters
    ----------
    path : str or Path
        Any file :func:`load_audio` reads.
    sample_rates : sequence of int
        Rates (Hz) to frame at; the first one's loudness is returned.
    hop_size : float
        Seconds between windows.
    center : bool
        Window ``k`` centred on ``k * hop_size``.
    block_windows : int
        Windows per yielded block (the last block may be shorter).
    resampler : {"soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast"}
        resampy filters a whole signal at once and cannot stream: with them the file is read whole
        and resampled with :func:`resample` (memory grows with the file, as before), then framed in
        blocks.
    retries, backoff_s, log
        Transient read errors: see :func:`read_mono_blocks`.

    Yields
    ------
    WindowBlock
        ``start`` increasing from 0 without gaps; at least one window in all.

    Examples
    --------
    >>> for block in stream_windows("rec.wav", [48000, 8000], hop_size=0.5):   # doctest: +SKIP
    ...     teacher_windows, student_windows = block.frames
    """
    if resampler not in RESAMPLERS:
        raise ConfigError(f"resampler must be one of {', '.join(RESAMPLERS)}; got {resampler!r}")
    rates = [check_sample_rate(r, "target sample rate") for r in sample_rates]
    if not rates:
        raise AudioError("stream_windows needs at least one sample rate")
    hop_size = check_hop_size(hop_size)
    block_windows = int(block_windows)
    if block_windows < 1:
        raise ConfigError(f"block_windows must be a positive integer, got {block_windows}")
    framers = [WindowFramer(r, hop_size, center) for r in rates]
    sr, blocks = read_mono_blocks(path, retries=retries, backoff_s=backoff_s, log=log)
    return _paired_blocks(path, sr, blocks, rates, framers, hop_size, block_windows, resampler)


def stream_array_windows(audio: np.ndarray, sr: int, sample_rate: int, *, hop_size: float = 0.1,
                         center: bool = True, block_windows: int = 32, name: str = "audio"):
    """:func:`stream_windows` for a signal already in memory: the windows of :func:`prepare_frames`
    in blocks, resampled block by block (soxr's streaming resampler, the one-shot's samples), so
    only the input, one block of windows and soxr's state are held, never every window at once.

    Parameters
    ----------
    audio : array_like [shape=(n,) or (n, channels)]
    sr : int
        Rate of ``audio`` in Hz.
    sample_rate : int
        The model's rate in Hz.
    hop_size, center
        As in :func:`frame_audio`.
    block_windows : int
        Windows per yielded block.
    name : str
        How to name the input in warnings and errors.

    Yields
    ------
    WindowBlock
        With one entry in ``frames``.
    """
    sr = check_sample_rate(sr)
    rate = check_sample_rate(sample_rate, "model sample rate")
    hop_size = check_hop_size(hop_size)
    block_windows = int(block_windows)
    if block_windows < 1:
        raise ConfigError(f"block_windows must be a positive integer, got {block_windows}")
    mono = to_mono(check_audio(audio, name))
    step = read_block_frames(sr, 1)
    chunks = (mono[i:i + step] for i in range(0, len(mono), step))
    with warnings.catch_warnings():
        # check_audio above already warned once about all-zero input.
        warnings.filterwarnings("ignore", message=".*every sample is zero.*", category=SeaTFWarning)
        yield from _paired_blocks(name, sr, chunks, [rate], [WindowFramer(rate, hop_size, center)], hop_size,
                                  block_windows, "soxr-hq")


def _paired_blocks(path, sr, blocks, rates, framers, hop_size, block_windows, resampler):
    """The generator behind :func:`stream_windows`: windows at every rate, paired by index."""
    if resampler == "soxr-hq":
        resamplers = [_StreamResampler(sr, r) for r in rates]
    else:
        blocks = iter([np.concatenate(list(blocks))])
        resamplers = [lambda b, last=False, r=r: resample(b, sr, r, method=resampler) if len(b) else b
                      for r in rates]
    pending = [[] for _ in rates]        # windows produced, not yet yielded, per rate
    have = [0] * len(rates)
    start = 0

    def ready(final):
        nonlocal start
        common = min(have)
        while common >= block_windows or (final and common > 0):
            b = min(block_windows, common)
            parts = tuple(_pop(pending[j], b) for j in range(len(rates)))
            for j in range(len(rates)):
                have[j] -= b
            common -= b
            timestamps = (start + np.arange(b, dtype=np.float64)) * hop_size
            yield WindowBlock(start, timestamps, parts, window_loudness_db(parts[0]))
            start += b

    def add(j, windows):
        if len(windows):
            pending[j].append(windows)
            have[j] += len(windows)

    for block in blocks:
        for j in range(len(rates)):
            add(j, framers[j].push(resamplers[j](block)))
        yield from ready(final=False)
    for j in range(len(rates)):
        # soxr holds back its filter's delay until told the stream has ended.
        add(j, framers[j].push(resamplers[j](np.empty(0, np.float32), last=True)))
        add(j, framers[j].finish())
    if framers[0].n_in < framers[0].frame_len - (framers[0].frame_len // 2 if framers[0].center else 0):
        warnings.warn(f"{path}: audio is shorter than the 1-s window; zero-padding it to one window", SeaTFWarning,
                      stacklevel=2)
    yield from ready(final=True)


def _pop(parts, b):
    """The first ``b`` windows of a list of window arrays (removed from the list)."""
    taken, n = [], 0
    while n < b:
        head = parts[0]
        need = b - n
        if len(head) <= need:
            taken.append(parts.pop(0))
            n += len(head)
        else:
            taken.append(head[:need])
            parts[0] = head[need:]
            n += need
    return taken[0] if len(taken) == 1 else np.concatenate(taken)
