"""Signal building blocks for the synthetic demo sounds: tones, noise, envelopes, filters, rooms.

Every function is pure: randomness comes from the ``numpy.random.Generator`` passed in, so a seed
reproduces a sound bit for bit. Signals are float64 ``[n]`` arrays at sample rate ``sr`` (Hz);
callers convert to float32 only when writing.

No audio-synthesis library covers these physically motivated sources (harmonic stacks with
time-varying pitch, impulse-excited resonators, exponentially decaying room tails), so they are
written here on top of numpy/scipy.
"""
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import fft as sp_fft
from scipy import signal

#: A signal: float64 samples ``[n]`` at sample rate ``sr``.
Signal = npt.NDArray[np.float64]


def harmonic_stack(f0: float | npt.ArrayLike, sr: float, *, n_harmonics: int = 10, rolloff: float = 0.7,
                   amplitudes: npt.ArrayLike | None = None, rng: np.random.Generator | None = None) -> Signal:
    """Sum of harmonics of a (possibly time-varying) fundamental.

    Parameters
    ----------
    f0 : float or np.ndarray [shape=(n,)]
        Fundamental frequency in Hz, per sample when an array.
    sr : int
        Sample rate in Hz.
    n_harmonics : int
        Number of harmonics (partials above Nyquist are muted sample by sample).
    rolloff : float
        Amplitude ratio between successive harmonics when ``amplitudes`` is None.
    amplitudes : np.ndarray [shape=(n_harmonics,)] or [shape=(n_harmonics, n)], optional
        Explicit harmonic amplitudes (static, or one row per harmonic over time).
    rng : np.random.Generator, optional
        Draws random starting phases; zero phases when None.

    Returns
    -------
    np.ndarray [shape=(n,)]
    """
    f0 = np.atleast_1d(np.asarray(f0, dtype=np.float64))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    if amplitudes is None:
        amplitudes = rolloff ** np.arange(n_harmonics)
    amplitudes = np.asarray(amplitudes, dtype=np.float32)
    # Harmonic k is Im(z**k * exp(i*start_k)) with z = exp(i*phase): one complex multiply per
    # harmonic instead of a sine (single precision is ample for audio and halves memory traffic).
    base = np.exp(1j * phase).astype(np.complex64)
    zk = np.ones_like(base)
    out = np.zeros(phase.shape, dtype=np.float32)
    top = 0.45 * sr  # partials above this are muted sample by sample (no aliasing)
    for k in range(1, n_harmonics + 1):
        zk *= base
        start = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
        amp = amplitudes[k - 1]
        if k * f0.min() >= top:
            continue
        if k * f0.max() >= top:
            amp = amp * ((k * f0) < top)
        out += (zk.imag * np.float32(np.cos(start)) + zk.real * np.float32(np.sin(start))) * amp
    return out.astype(np.float64)


def colored_noise(rng: np.random.Generator, n: int, *, exponent: float = 1.0) -> Signal:
    """Noise with power spectral density proportional to ``1 / f**exponent``.

    Parameters
    ----------
    rng : np.random.Generator
    n : int
        Length in samples.
    exponent : float
        0 = white, 1 = pink, 2 = brown.

    Returns
    -------
    np.ndarray [shape=(n,)]
        Unit-RMS noise.
    """
    size = sp_fft.next_fast_len(n, real=True)  # FFTs of prime-ish lengths are 100x slower
    # White Gaussian noise has i.i.d. complex Gaussian Fourier coefficients: draw them directly.
    n_bins = size // 2 + 1
    spectrum = rng.standard_normal(n_bins) + 1j * rng.standard_normal(n_bins)
    freqs = np.arange(n_bins, dtype=np.float64)
    freqs[0] = 1.0
    spectrum *= np.exp((-exponent / 2) * np.log(freqs))
    spectrum[0] = 0.0
    return normalise_rms(sp_fft.irfft(spectrum, size)[:n])


def bandpass(x: Signal, sr: float, *, low: float | None = None, high: float | None = None,
             order: int = 4) -> Signal:
    """Butterworth low-, high- or band-pass filter (``low``/``high`` in Hz; None = open)."""
    nyquist = sr / 2
    low = None if low is None or low <= 0 else min(low, 0.95 * nyquist)
    high = None if high is None or high >= 0.95 * nyquist else high
    if low is None and high is None:
        return x
    if low is None:
        sos = signal.butter(order, high, btype="lowpass", fs=sr, output="sos")
    elif high is None:
        sos = signal.butter(order, low, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, [low, max(high, low * 1.05)], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def control_rate(values: npt.ArrayLike, n: int, *, hop: int = 64) -> Signal:
    """Linear interpolation of ``values [..., ceil(n / hop)]`` (one per ``hop`` samples) to ``[..., n]``.

    Spectral envelopes change slowly, so they are computed at a control rate and interpolated.
    """
    values = np.asarray(values, dtype=np.float64)
    grid = np.arange(values.shape[-1]) * hop
    flat = values.reshape(-1, values.shape[-1])
    out = np.stack([np.interp(np.arange(n), grid, row) for row in flat])
    return out.reshape(values.shape[:-1] + (n,))


def formant_gains(freqs: npt.ArrayLike, formants: Iterable[float], bandwidths: Iterable[float]) -> Signal:
    """Spectral-envelope gain at ``freqs`` (Hz, any shape) for Gaussian formant peaks (Hz)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    gain = np.full(freqs.shape, 0.02)
    for centre, width in zip(formants, bandwidths):
        gain = gain + np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    return gain


def damped_modes(sr: float, freqs: Sequence[float], decays_s: Sequence[float], amplitudes: Sequence[float],
                 length_s: float) -> Signal:
    """Impulse response of damped sinusoidal modes (a struck object).

    Parameters
    ----------
    sr : int
    freqs, decays_s, amplitudes : sequence of float
        Mode frequencies (Hz), 1/e decay times (s) and amplitudes.
    length_s : float
        Length of the response in seconds.

    Returns
    -------
    np.ndarray [shape=(round(length_s * sr),)]
    """
    t = np.arange(max(1, int(round(length_s * sr)))) / sr
    out = np.zeros_like(t)
    for freq, decay, amp in zip(freqs, decays_s, amplitudes):
        if freq < 0.45 * sr:
            out += amp * np.exp(-t / decay) * np.sin(2 * np.pi * freq * t)
    return out


def place(events: Iterable[tuple[float, float]], kernel: np.ndarray, n: int) -> Signal:
    """Signal of length ``n`` with ``kernel`` added at each ``(sample, gain)`` in ``events``."""
    out = np.zeros(n + kernel.size)
    for start, gain in events:
        start = int(start)
        if 0 <= start < n:
            out[start:start + kernel.size] += gain * kernel
    return out[:n]


def pulse_times(rng: np.random.Generator, duration_s: float, rate_hz: float, *, jitter: float = 0.05,
                start_s: float = 0.0) -> Signal:
    """Onset times (s) of a jittered periodic pulse train at ``rate_hz`` within ``duration_s``."""
    times: list[float] = []
    t = start_s
    while t < duration_s:
        times.append(t)
        t += (1.0 / rate_hz) * (1.0 + jitter * rng.standard_normal())
    return np.asarray(times)


def ramp_envelope(n: int, sr: float, segments: Iterable[tuple[float, float]], *, attack_s: float = 0.01,
                  release_s: float = 0.03) -> Signal:
    """0/1 envelope that is on during ``segments`` ((start_s, end_s) pairs) with linear ramps."""
    env = np.zeros(n)
    for start_s, end_s in segments:
        a, b = int(start_s * sr), min(n, int(end_s * sr))
        if b <= a:
            continue
        seg = np.ones(b - a)
        n_att, n_rel = min(int(attack_s * sr), seg.size), min(int(release_s * sr), seg.size)
        if n_att:
            seg[:n_att] *= np.linspace(0, 1, n_att)
        if n_rel:
            seg[-n_rel:] *= np.linspace(1, 0, n_rel)
        env[a:b] = np.maximum(env[a:b], seg)
    return env


def smooth_random(rng: np.random.Generator, n: int, sr: float, rate_hz: float) -> Signal:
    """Slowly varying random curve (zero mean, unit std) changing about ``rate_hz`` times a second."""
    n_knots = max(2, int(np.ceil(n / sr * rate_hz)) + 2)
    knots = rng.standard_normal(n_knots)
    return np.interp(np.linspace(0, n_knots - 1, n), np.arange(n_knots), knots)


def reverb(x: Signal, sr: float, rng: np.random.Generator, *, rt60_s: float = 0.5, wet: float = 0.3,
           brightness_hz: float = 6000.0) -> Signal:
    """Add a room tail: convolve with exponentially decaying, low-passed noise.

    Parameters
    ----------
    x : np.ndarray [shape=(n,)]
    sr : int
    rng : np.random.Generator
    rt60_s : float
        Time for the tail to decay by 60 dB, in seconds.
    wet : float
        Wet/dry balance in [0, 1] (RMS of the tail relative to the dry signal).
    brightness_hz : float
        Low-pass cut-off of the tail (absorption of high frequencies).

    Returns
    -------
    np.ndarray [shape=(n,)]
        Same length as ``x``: the tail past the end is cut, as in a recording.
    """
    t = np.arange(int(rt60_s * sr)) / sr
    ir = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60_s)
    ir = bandpass(ir, sr, high=brightness_hz, order=2)
    tail = signal.fftconvolve(x, ir)[: x.size]
    dry_rms, tail_rms = rms(x), rms(tail)
    if tail_rms == 0 or dry_rms == 0:
        return x
    return (1 - wet) * x + wet * tail * (dry_rms / tail_rms)


def rms(x: npt.ArrayLike) -> float:
    """Root mean square of ``x`` (0 for empty input)."""
    return float(np.sqrt(np.mean(np.square(x)))) if np.size(x) else 0.0


def normalise_rms(x: Signal, *, target: float = 1.0) -> Signal:
    """``x`` scaled to RMS ``target`` (unchanged when silent)."""
    level = rms(x)
    return x * (target / level) if level > 0 else x
