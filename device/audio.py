"""Audio on the board: read with soundfile, downmix to mono, resample, cut into 1-s windows.

Framing follows openl3/edgel3 (docs/PROTOCOL.md §1.3) so that windows match the workstation's
``sea_tf.audio.frame_audio``: optional half-window zero padding in front (``center``), zero
padding at the end up to a whole hop, windows every ``hop_s`` seconds.
"""
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from device.errors import AudioFileError, DeviceWarning


#: Sample rates (Hz) a file's header may declare (as ``sea_tf.audio``): outside them the file is
#: refused before any sample is read, since resampling a header's 1 Hz to the model's rate would
#: multiply the samples by thousands (a 2-KB WAV cost +996 MiB on the workstation).
MIN_FILE_SAMPLE_RATE, MAX_FILE_SAMPLE_RATE = 1000, 384000
#: Bytes per sample of uncompressed subtypes in containers that store samples as they are.
_PCM_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
              "ULAW": 1, "ALAW": 1}
_PCM_CONTAINERS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "AU", "CAF", "RAW"})
#: A FLAC frame holds at most 65,535 samples per channel and costs more than one byte per channel.
_FLAC_SAMPLES_PER_BYTE = 65535


def check_header(path: Path | str, handle: Any, *, error: type[Exception] = AudioFileError) -> None:
    """Raise ``error`` when an open file's header cannot describe the audio the file holds.

    Checked before any sample is read or resampled: the rate within 1 kHz-384 kHz, at least one
    channel, frames x channels x bytes per sample within the file's size for uncompressed PCM
    (FLAC: at most 65,535 samples per byte), and a WAV's data chunk as long as it declares.

    Parameters
    ----------
    path : str or Path
        Named in the message.
    handle : soundfile.SoundFile
        Open for reading.
    error : type
        The exception class raised (:class:`AudioFileError`, or ``SourceError`` for live sources).
    """
    import stat

    sr, channels, frames = int(handle.samplerate), int(handle.channels), int(handle.frames)
    if not MIN_FILE_SAMPLE_RATE <= sr <= MAX_FILE_SAMPLE_RATE:
        raise error(f"{path}: header declares a sample rate of {sr} Hz, outside 1 kHz-384 kHz; the file is corrupt "
                    "or not audio (re-encode it)")
    if channels < 1:
        raise error(f"{path}: header declares {channels} channels; the file is corrupt (re-encode it)")
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        return
    size, samples = info.st_size, frames * channels
    width = _PCM_BYTES.get(handle.subtype) if handle.format in _PCM_CONTAINERS else None
    if width and samples * width > size:
        raise error(f"{path}: header declares {frames} frames x {channels} channels of {width}-byte samples "
                    f"({samples * width} bytes) but the file holds {size} bytes; re-copy or re-encode it")
    if handle.format == "FLAC" and samples > _FLAC_SAMPLES_PER_BYTE * size:
        raise error(f"{path}: header declares {frames} frames x {channels} channels, more than a FLAC file of {size} "
                    "bytes can hold; the file is corrupt (re-encode it)")
    declared, available = wav_data_bytes(path, size)
    if declared is not None and available is not None and declared > available:   # both None or both set
        raise error(f"{path}: truncated WAV (header declares {declared} data bytes, the file holds {available}); "
                    "re-copy the file")


def wav_data_bytes(path: Path | str, size: int) -> tuple[int, int] | tuple[None, None]:
    """(declared, available) bytes of a RIFF/WAVE file's data chunk, or (None, None) when not a WAV
    or when its writer left the size open (0 or 0xFFFFFFFF: a stream). libsndfile silently reads
    what is there, so a half-copied WAV would otherwise pass as a shorter clip."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None, None
        offset = 12
        while offset + 8 <= size:
            fh.seek(offset)
            chunk = fh.read(8)
            declared = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if 0 < declared < 0xFFFFFFFF:
                    return declared, size - offset - 8
                return None, None
            offset += 8 + declared + (declared & 1)
    return None, None


def open_checked(path: Path | str, *, error: type[Exception] = AudioFileError) -> Any:
    """A ``soundfile.SoundFile`` on ``path`` whose header passed :func:`check_header` (``error`` otherwise).

    Parameters
    ----------
    path : str or Path
    error : type
        The exception class raised for a missing, unreadable or inconsistent file.
    """
    import soundfile

    try:
        handle = soundfile.SoundFile(str(path))
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise error(f"{path}: cannot read audio ({exc}); convert it to WAV/FLAC") from exc
    try:
        check_header(path, handle, error=error)
    except BaseException:
        handle.close()
        raise
    return handle


def read_block_frames(sr: int, channels: int, *, samples: int | None = None) -> int:
    """Source frames per read: at most ``samples`` (default :data:`READ_BLOCK_FRAMES`) samples over
    all channels and ``samples / 48000`` seconds, so that a block resampled to any model rate up to
    48 kHz is bounded too, whatever the file's header says."""
    samples = int(samples or READ_BLOCK_FRAMES)
    return max(1, min(samples // max(1, int(channels)), -(-samples * int(sr) // 48000)))


def _frames_known(handle: Any) -> bool:
    """Whether ``handle.frames`` is the file's true length (containers and FLAC), not an estimate."""
    return handle.format in _PCM_CONTAINERS or handle.format == "FLAC"


def load_audio(path: Path | str) -> tuple[npt.NDArray[np.float32], int]:
    """Read an audio file as mono float32, block by block after :func:`check_header`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    audio : np.ndarray [shape=(n,), dtype=float32]
        Mono samples in [-1, 1] (mean over channels).
    sr : int
        Sample rate in Hz.
    """
    sr, blocks = read_blocks(path)
    parts = list(blocks)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), sr


def resampler_name() -> str:
    """The resampler this board uses: ``"soxr-hq"`` (the workstation's, in requirements-device.txt) or ``"numpy-fft"``."""
    try:
        import soxr  # noqa: F401
    except ImportError:
        return "numpy-fft"
    return "soxr-hq"


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> tuple[npt.NDArray[np.float32], str]:
    """Resample mono audio with soxr (HQ), the workstation's resampler; a numpy FFT fallback only without soxr.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
    sr_in, sr_out : int
        Rates in Hz.

    Returns
    -------
    audio : np.ndarray [shape=(round(n * sr_out / sr_in),), dtype=float32]
    method : str
        ``"none"``, ``"soxr-hq"`` or ``"numpy-fft"`` (reported so the user knows).
    """
    if sr_in == sr_out:
        return audio.astype(np.float32, copy=False), "none"
    try:
        import soxr
    except ImportError:
        warnings.warn("soxr is not installed: resampling with the numpy FFT fallback, which treats the clip as "
                      "periodic (its edges wrap around), so predictions differ from the workstation's; "
                      "install soxr from requirements-device.txt", DeviceWarning, stacklevel=2)
        return _fft_resample(audio, sr_in, sr_out), "numpy-fft"
    return soxr.resample(audio, sr_in, sr_out, quality="HQ").astype(np.float32), "soxr-hq"


def _fft_resample(audio: np.ndarray, sr_in: int, sr_out: int) -> npt.NDArray[np.float32]:
    # Hand-written because the board has no scipy: band-limited resampling by truncating or
    # zero-padding the spectrum (what scipy.signal.resample does), fine for clips of seconds.
    n_out = int(round(len(audio) * sr_out / sr_in))
    spectrum = np.fft.rfft(audio.astype(np.float64))
    n_bins = n_out // 2 + 1
    if n_bins <= len(spectrum):
        spectrum = spectrum[:n_bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(n_bins - len(spectrum), spectrum.dtype)])
    return (np.fft.irfft(spectrum, n=n_out) * (n_out / len(audio))).astype(np.float32)


def frame_audio(audio: npt.ArrayLike, frame_samples: int, hop_samples: int, *,
                center: bool = True) -> npt.NDArray[np.float32]:
    """Cut audio into overlapping windows (openl3/edgel3 framing).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
    frame_samples : int
        Window length in samples (1 s at the model's rate).
    hop_samples : int
        Hop between window starts in samples.
    center : bool
        Prepend ``frame_samples // 2`` zeros so that window k is centred on ``k * hop``.

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, frame_samples), dtype=float32]
    """
    stream, count = padded_stream(audio, frame_samples, hop_samples, center=center)
    view = np.lib.stride_tricks.sliding_window_view(stream, frame_samples)[::hop_samples]
    return np.ascontiguousarray(view[:count])


def padded_stream(audio: npt.ArrayLike, frame_samples: int, hop_samples: int, *,
                  center: bool = True) -> tuple[npt.NDArray[np.float32], int]:
    """The zero-padded signal whose windows ``[k*hop, k*hop + frame)`` are :func:`frame_audio`'s.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
    frame_samples, hop_samples : int
    center : bool
        Prepend ``frame_samples // 2`` zeros.

    Returns
    -------
    stream : np.ndarray [shape=(m,), dtype=float32]
    count : int
        Number of windows.
    """
    if hop_samples <= 0:
        raise AudioFileError(f"hop of {hop_samples} samples: the hop must be positive")
    audio = np.asarray(audio, dtype=np.float32)
    if center:
        audio = np.concatenate([np.zeros(frame_samples // 2, np.float32), audio])
    if len(audio) < frame_samples:
        pad = frame_samples - len(audio)
    else:
        extra = len(audio) - frame_samples
        pad = math.ceil(extra / hop_samples) * hop_samples - extra
    audio = np.concatenate([audio, np.zeros(pad, np.float32)])
    return audio, 1 + (len(audio) - frame_samples) // hop_samples


# -- Streaming: a long recording block by block (memory flat in its length) ----------------------
# A whole hour at 8 kHz framed every 0.1 s is 36,000 windows of 8,000 samples: 1.15 GB as one array.
# These read, downmix, resample and frame a file in blocks instead; the windows are frame_audio's.

#: Source frames per soundfile read (8 s at 8 kHz).
READ_BLOCK_FRAMES = 65536


def read_blocks(path: Path | str, *,
                block_frames: int | None = None) -> tuple[int, Iterator[npt.NDArray[np.float32]]]:
    """Open an audio file; return its rate and an iterator over mono float32 blocks.

    The header is checked first (:func:`check_header`). The samples are the file's, averaged
    over channels, read ``block_frames`` at a time. A file that ends before the frames its header
    declares (cut while being read, or a FLAC cut after its header) raises
    :class:`AudioFileError` once the samples that were there have been yielded.

    Parameters
    ----------
    path : str or Path
    block_frames : int, optional
        Source frames per block; default :func:`read_block_frames` of the file's rate and channels.

    Returns
    -------
    sr : int
        Sample rate in Hz.
    blocks : iterator of np.ndarray [shape=(<= block_frames,), dtype=float32]
    """
    import soundfile

    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: audio file not found; check the --audio paths")
    handle = open_checked(path)
    step = int(block_frames) if block_frames else read_block_frames(handle.samplerate, handle.channels)
    declared = handle.frames if _frames_known(handle) else None

    def blocks() -> Iterator[npt.NDArray[np.float32]]:
        total = 0
        with handle:
            while True:
                try:
                    block = handle.read(step, dtype="float32", always_2d=True)
                except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
                    raise AudioFileError(f"{path}: reading failed after {total} frames "
                                         f"({total / handle.samplerate:.2f} s) ({exc}); check the file") from exc
                if not len(block):
                    break
                mono = block.mean(axis=1, dtype=np.float32)
                if not np.all(np.isfinite(mono)):
                    raise AudioFileError(f"{path}: the audio contains NaN or infinite samples; re-encode the file")
                total += len(mono)
                yield mono
        if total == 0:
            raise AudioFileError(f"{path}: the file holds no samples; remove it from --audio")
        if declared is not None and total < declared:
            raise AudioFileError(f"{path}: the file ended after {total} of the {declared} frames its header "
                                 "declares (cut while being read?); re-copy it")

    return int(handle.samplerate), blocks()


def resample_blocks(blocks: Iterable[npt.NDArray[np.float32]], sr_in: int,
                    sr_out: int) -> tuple[Iterator[npt.NDArray[np.float32]], str]:
    """Resample a stream of mono blocks with soxr's streaming resampler (HQ, :func:`resample`'s samples).

    Without soxr the numpy FFT fallback needs the whole signal: the blocks are joined first (memory
    then grows with the file, as :func:`resample` does), with :func:`resample`'s warning.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,), dtype=float32]
    sr_in, sr_out : int
        Rates in Hz.

    Returns
    -------
    blocks : iterator of np.ndarray [dtype=float32]
        At ``sr_out``; joined, exactly ``resample(concatenate(blocks), sr_in, sr_out)[0]``.
    method : str
        ``"none"``, ``"soxr-hq"`` or ``"numpy-fft"``.
    """
    if sr_in == sr_out:
        return iter(blocks), "none"
    try:
        import soxr
    except ImportError:
        audio, method = resample(np.concatenate(list(blocks)), sr_in, sr_out)
        return iter([audio]), method

    def stream() -> Iterator[npt.NDArray[np.float32]]:
        resampler = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
        for block in blocks:
            yield resampler.resample_chunk(block)
        yield resampler.resample_chunk(np.empty(0, np.float32), last=True)  # soxr's filter delay

    return stream(), "soxr-hq"


def stream_windows(blocks: Iterable[npt.ArrayLike], frame_samples: int, hop_samples: int, *, center: bool = True,
                   pad_end: bool = True) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """The windows of :func:`frame_audio` over a signal given as blocks, one at a time.

    Holds one window plus one block of samples, whatever the length of the signal.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,), dtype=float32]
        Consecutive mono samples.
    frame_samples, hop_samples : int
    center : bool
        Prepend ``frame_samples // 2`` zeros.
    pad_end : bool
        False: the L3E downstream framing (``sea_tf.classify.features.frame_l3e``, docs/PROTOCOL.md
        §3.5; use with ``center=False``): only the windows wholly inside the signal, the tail after
        the last one dropped; a signal shorter than one window is one window, zero-padded on both
        sides (``(pad // 2, pad - pad // 2)``).

    Yields
    ------
    start : int
        Where the window starts in :func:`padded_stream`'s signal (``k * hop_samples``).
    window : np.ndarray [shape=(frame_samples,), dtype=float32]
        Valid until the next window is asked for (a view of an internal buffer).
    """
    if hop_samples <= 0:
        raise AudioFileError(f"hop of {hop_samples} samples: the hop must be positive")
    buf = np.zeros(frame_samples // 2 if center else 0, np.float32)
    buf_start, k, n_in = 0, 0, 0
    for block in blocks:
        block = np.asarray(block, np.float32)
        n_in += len(block)
        buf = np.concatenate([buf, block]) if len(buf) else block
        while k * hop_samples + frame_samples <= buf_start + len(buf):
            offset = k * hop_samples - buf_start
            yield k * hop_samples, buf[offset:offset + frame_samples]
            k += 1
        drop = min(k * hop_samples - buf_start, len(buf))
        buf, buf_start = buf[drop:], buf_start + drop
    if not pad_end:
        if k == 0:  # shorter than one window: centred in zeros, as librosa's framing of a padded clip
            pad = frame_samples - len(buf)
            yield 0, np.concatenate([np.zeros(pad // 2, np.float32), buf, np.zeros(pad - pad // 2, np.float32)])
        return
    # The end: zero padding up to a whole hop (or to one window), as padded_stream pads it.
    length = n_in + (frame_samples // 2 if center else 0)
    count = 1 if length <= frame_samples else 1 + math.ceil((length - frame_samples) / hop_samples)
    need = (count - 1) * hop_samples + frame_samples - (buf_start + len(buf))
    if need > 0:
        buf = np.concatenate([buf, np.zeros(need, np.float32)])
    while k < count:
        offset = k * hop_samples - buf_start
        yield k * hop_samples, buf[offset:offset + frame_samples]
        k += 1


class AudioStream:
    """One audio file as mono blocks at ``sample_rate`` (:func:`read_blocks` → :func:`resample_blocks`).

    Iterate it once. ``n_source`` counts the source frames read so far (after the iteration: the
    file's length), so the duration is ``n_source / sr`` without holding the file.

    Parameters
    ----------
    path : str or Path
    sample_rate : int
        Rate (Hz) of the blocks it yields.
    block_frames : int, optional
        Source frames per read (default :func:`read_block_frames`).
    """

    def __init__(self, path: Path | str, sample_rate: int, *, block_frames: int | None = None) -> None:
        self.sr, self._blocks = read_blocks(path, block_frames=block_frames)
        self.n_source = 0
        self._out, self.method = resample_blocks(self._counted(), self.sr, int(sample_rate))

    def _counted(self) -> Iterator[npt.NDArray[np.float32]]:
        for block in self._blocks:
            self.n_source += len(block)
            yield block

    def __iter__(self) -> Iterator[npt.NDArray[np.float32]]:
        return iter(self._out)
