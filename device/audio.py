"""Audio on the board: read with soundfile, downmix to mono, resample, cut into 1-s windows.

Framing follows openl3/edgel3 (docs/PROTOCOL.md §1.3) so that windows match the workstation's
``sea_tf.audio.frame_audio``: optional half-window zero padding in front (``center``), zero
padding at the end up to a whole hop, windows every ``hop_s`` seconds.
"""
import math
import warnings

import numpy as np

from device.errors import AudioFileError, DeviceWarning


def load_audio(path):
    """Read an audio file as mono float32.

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
    import os

    import soundfile

    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: audio file not found; check the --audio paths")
    try:
        audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: cannot read audio ({exc}); convert it to WAV/FLAC") from exc
    if audio.size == 0:
        raise AudioFileError(f"{path}: the file holds no samples; remove it from --audio")
    audio = audio.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(f"{path}: the audio contains NaN or infinite samples; re-encode the file")
    return audio, int(sr)


def resampler_name():
    """The resampler this board uses: ``"soxr-hq"`` (the workstation's, in requirements-device.txt) or ``"numpy-fft"``."""
    try:
        import soxr  # noqa: F401
    except ImportError:
        return "numpy-fft"
    return "soxr-hq"


def resample(audio, sr_in, sr_out):
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


def _fft_resample(audio, sr_in, sr_out):
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


def frame_audio(audio, frame_samples, hop_samples, center=True):
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
    stream, count = padded_stream(audio, frame_samples, hop_samples, center)
    view = np.lib.stride_tricks.sliding_window_view(stream, frame_samples)[::hop_samples]
    return np.ascontiguousarray(view[:count])


def padded_stream(audio, frame_samples, hop_samples, center=True):
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


def read_blocks(path, block_frames=READ_BLOCK_FRAMES):
    """Open an audio file; return its rate and an iterator over mono float32 blocks.

    The samples are :func:`load_audio`'s (mean over channels), read ``block_frames`` at a time.

    Parameters
    ----------
    path : str or Path
    block_frames : int
        Source frames per block.

    Returns
    -------
    sr : int
        Sample rate in Hz.
    blocks : iterator of np.ndarray [shape=(<= block_frames,), dtype=float32]
    """
    import os

    import soundfile

    if not os.path.isfile(path):
        raise AudioFileError(f"{path}: audio file not found; check the --audio paths")
    try:
        handle = soundfile.SoundFile(str(path))
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"{path}: cannot read audio ({exc}); convert it to WAV/FLAC") from exc

    def blocks():
        total = 0
        with handle:
            while True:
                try:
                    block = handle.read(block_frames, dtype="float32", always_2d=True)
                except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
                    raise AudioFileError(f"{path}: reading failed after {total} frames ({exc}); check the file") \
                        from exc
                if not len(block):
                    break
                mono = block.mean(axis=1, dtype=np.float32)
                if not np.all(np.isfinite(mono)):
                    raise AudioFileError(f"{path}: the audio contains NaN or infinite samples; re-encode the file")
                total += len(mono)
                yield mono
        if total == 0:
            raise AudioFileError(f"{path}: the file holds no samples; remove it from --audio")

    return int(handle.samplerate), blocks()


def resample_blocks(blocks, sr_in, sr_out):
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

    def stream():
        resampler = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
        for block in blocks:
            yield resampler.resample_chunk(block)
        yield resampler.resample_chunk(np.empty(0, np.float32), last=True)  # soxr's filter delay

    return stream(), "soxr-hq"


def stream_windows(blocks, frame_samples, hop_samples, center=True, pad_end=True):
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
    block_frames : int
        Source frames per read.
    """

    def __init__(self, path, sample_rate, block_frames=READ_BLOCK_FRAMES):
        self.sr, self._blocks = read_blocks(path, block_frames)
        self.n_source = 0
        self._out, self.method = resample_blocks(self._counted(), self.sr, int(sample_rate))

    def _counted(self):
        for block in self._blocks:
            self.n_source += len(block)
            yield block

    def __iter__(self):
        return iter(self._out)
