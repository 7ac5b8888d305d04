"""Audio files: header checks, reading whole files in bounded blocks, downmixing, and listing inputs.

A file's header is checked (:func:`check_file_header`) before any sample is read, and samples are
read :func:`read_block_frames` at a time, so what is allocated follows what the file really holds.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

import numpy as np
import numpy.typing as npt
import soundfile as sf

from sea_tf.errors import AudioError

#: File extensions :func:`find_audio_files` picks up from directories (what libsndfile reads).
AUDIO_EXTENSIONS = frozenset(
    "." + ext.lower() for ext in sf.available_formats()) | {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


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

#: Source frames per soundfile read when no block size is asked for (~1.4 s at 48 kHz).
READ_BLOCK_FRAMES = 65536


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


def read_block_frames(sr: int, channels: int, *, samples: int | None = None) -> int:
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


def _open_checked(path: Path) -> sf.SoundFile:
    """soundfile's handle on ``path`` after :func:`check_file_header` (closed again on failure)."""
    handle = sf.SoundFile(str(path))
    try:
        check_file_header(path, handle)
    except BaseException:
        handle.close()
        raise
    return handle


def load_audio(path: Path | str) -> tuple[npt.NDArray[np.float32], int]:
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
    parts: list[npt.NDArray[np.float32]] = []
    try:
        with _open_checked(path) as handle:
            step = read_block_frames(handle.samplerate, handle.channels)
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


def _check_wav_complete(path: Path) -> None:
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


def to_mono(audio: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Downmix ``[n, channels]`` to ``[n]`` with the channel mean (as openl3); 1-D input is returned as is.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,) or (n, channels)]

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:
        return samples.mean(axis=1, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"audio has {samples.ndim} dimensions {samples.shape}; expected [n] or [n, channels]")
    return samples


def find_audio_files(inputs: Path | str | Iterable[Path | str], *, recursive: bool = False) -> list[Path]:
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
    items = [inputs] if isinstance(inputs, (str, Path)) else inputs
    found: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        folder = Path(item)
        if folder.is_dir():
            pattern = folder.rglob("*") if recursive else folder.glob("*")
            candidates = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        elif folder.is_file():
            candidates = [folder]
        else:
            raise AudioError(f"{folder}: no such file or directory; check the input path")
        for path in candidates:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    return found

