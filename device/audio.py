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
