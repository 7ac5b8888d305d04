"""Numpy twin of sea-tf's audio front ends (no TensorFlow, no sea_tf imports).

The device harness computes the front end here when an exported model takes features instead
of raw audio; the tests check the Keras layers in ``sea_tf.models.frontends`` against it. The spec dict
is the ``frontend`` entry of a model card (``type``, ``sr``, ``n_dft``, ``n_hop``, ``n_mels``,
``fmin``, ``fmax``, ``htk``, ``norm``, ``padding``).

Front-end types (docs/PROTOCOL.md §1.2, §2.3):

``kapre-0.1.4-mel`` / ``kapre-0.1.4-linear``
    What the published SEA students and the original L3 teacher were trained with: periodic-Hann
    DFT, power, HTK mel filterbank with Slaney area norm applied to the power, square root,
    ``10*log10(max(x, 1e-10))``, minus the per-example max, floored at −80 dB. TF 'SAME'
    padding (front = floor(total/2)) or 'valid'.
``openl3-0.4-kapre-mel`` / ``openl3-0.4-kapre-linear``
    openl3 0.4.x ``frontend='kapre'``: magnitude STFT with end padding ('end') for mel, Slaney
    mel scale and norm applied to the magnitude; same dB step.
``openl3-0.4-librosa-mel`` / ``openl3-0.4-librosa-linear``
    openl3 0.4.x ``frontend='librosa'``: centred STFT with zero padding ('center') for mel,
    'valid' for linear; magnitude; Slaney mel; same dB step.

The mel filterbank is written out here (rather than taken from librosa) because ``device/``
must run with numpy alone on the target board.
"""
import functools
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

DB_FLOOR = -80.0
AMIN = 1e-10

FRONTEND_TYPES = (
    "kapre-0.1.4-mel", "kapre-0.1.4-linear",
    "openl3-0.4-kapre-mel", "openl3-0.4-kapre-linear",
    "openl3-0.4-librosa-mel", "openl3-0.4-librosa-linear",
)


def is_mel(spec: dict[str, Any]) -> bool:
    """True when the front end ends in a mel filterbank."""
    return spec["type"].endswith("-mel")


def filterbank_on_power(spec: dict[str, Any]) -> bool:
    """True for kapre 0.1.4 (``sqrt(FB @ |X|^2)``); False for openl3 0.4 (``FB @ |X|``)."""
    return spec["type"].startswith("kapre-0.1.4")


def hz_to_mel(freqs: npt.ArrayLike, htk: bool) -> npt.NDArray[np.float64]:
    """Hz → mel, HTK (``2595 log10(1 + f/700)``) or Slaney (linear below 1 kHz, log above)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freqs / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(freqs, min_log_hz)
    return np.where(freqs >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, freqs / f_sp)


def mel_to_hz(mels: npt.ArrayLike, htk: bool) -> npt.NDArray[np.float64]:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(sr: int, n_dft: int, n_mels: int, *, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = True, norm: str | int | None = "slaney") -> npt.NDArray[np.float32]:
    """Triangular mel filterbank, laid out for ``power @ fb``.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    n_dft : int
        DFT length; the filterbank has ``n_dft // 2 + 1`` rows.
    n_mels : int
    fmin, fmax : float
        Band edges in Hz (``fmax=None`` → ``sr / 2``).
    htk : bool
        HTK mel formula (kapre 0.1.4) or Slaney's (librosa default, kapre 0.3).
    norm : {"slaney", None}
        "slaney" (kapre's ``norm=1``) scales each triangle by ``2 / (f[i+2] - f[i])``.

    Returns
    -------
    np.ndarray [shape=(n_dft // 2 + 1, n_mels), dtype=float32]
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sr / 2.0, n_dft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2)
    edges = mel_to_hz(mel_points, htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm in ("slaney", 1):
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    elif norm is not None:
        raise ValueError(f"unsupported filterbank norm {norm!r}; use 'slaney' or None")
    return weights.T.astype(np.float32)


@functools.lru_cache(maxsize=8)
def periodic_hann(n: int) -> npt.NDArray[np.float64]:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi k / n)``, ``k = 0..n-1`` (float64, read-only)."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    window.flags.writeable = False
    return window


@functools.lru_cache(maxsize=8)
def _cached_filterbank(sr: int, n_dft: int, n_mels: int, fmin: float, fmax: float | None, htk: bool,
                       norm: str | int | None) -> npt.NDArray[np.float64]:
    # Building the filterbank costs ~0.8 ms, as much as the int8 network itself: build it once per spec.
    fb = mel_filterbank(sr, n_dft, n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm).astype(np.float64)
    fb.flags.writeable = False
    return fb


def padding_amounts(n_samples: int, n_dft: int, n_hop: int, padding: str) -> tuple[int, int, int]:
    """(front, back, n_frames) of the STFT for one padding mode.

    ``same``: TF 'SAME' (kapre 0.1.4), T = ceil(n/hop), front = floor(total/2).
    ``valid``: no padding, T = 1 + (n - n_dft) // hop.
    ``end``: tf.signal.stft(pad_end=True), T = ceil(n/hop), zeros at the end only.
    ``center``: librosa center=True with zeros, n_dft//2 on both sides, T = 1 + n // hop.
    """
    if padding == "same":
        frames = -(-n_samples // n_hop)
        total = max((frames - 1) * n_hop + n_dft - n_samples, 0)
        return total // 2, total - total // 2, frames
    if padding == "valid":
        return 0, 0, 1 + (n_samples - n_dft) // n_hop
    if padding == "end":
        frames = -(-n_samples // n_hop)
        return 0, max((frames - 1) * n_hop + n_dft - n_samples, 0), frames
    if padding == "center":
        return n_dft // 2, n_dft // 2, 1 + n_samples // n_hop
    raise ValueError(f"unknown STFT padding {padding!r}; use same, valid, end or center")


def output_shape(spec: dict[str, Any], n_samples: int) -> list[int]:
    """``[F, T, 1]`` of the front end for windows of ``n_samples`` samples."""
    _, _, frames = padding_amounts(n_samples, spec["n_dft"], spec["n_hop"], spec["padding"])
    n_freq = spec["n_mels"] if is_mel(spec) else spec["n_dft"] // 2 + 1
    return [int(n_freq), int(frames), 1]


def to_decibel(amplitude: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """kapre 0.1.4 dB: ``10 log10(max(a, 1e-10))`` minus the per-example max, floored at −80.

    Parameters
    ----------
    amplitude : np.ndarray [shape=(N, ...)]

    Returns
    -------
    np.ndarray [same shape, float32]; an all-zero example maps to all 0 dB (docs/PROTOCOL.md §8.1).
    """
    log = 10.0 * np.log10(np.maximum(amplitude, AMIN))
    axes = tuple(range(1, log.ndim))
    log = log - log.max(axis=axes, keepdims=True)
    return np.maximum(log, DB_FLOOR).astype(np.float32)


def _check_spec(spec: dict[str, Any]) -> None:
    if spec["type"] not in FRONTEND_TYPES:
        raise ValueError(f"unknown front-end type {spec['type']!r}; known: {', '.join(FRONTEND_TYPES)}")


def _band_groups(fb: npt.NDArray[np.float64], *, call_cost: float = 1000.0,
                 max_width: int = 64) -> list[tuple[int, int, int, int]]:
    """Split a banded filterbank ``[rows, bands]`` into blocks ``(r0, r1, m0, m1)`` to multiply.

    A mel triangle is non-zero on a few contiguous rows only, so the dense product ``x @ fb`` is
    mostly multiplications by zero (the teacher's ``[199, 1025] @ [1025, 256]``: 52 M multiply-adds
    for ~0.4 M non-zero terms, 1.8 ms of a 2.5 ms front end). Bands ``m0:m1`` only need rows
    ``r0:r1`` (the union of their supports); the partition minimises ``Σ (r1 - r0)(m1 - m0)``
    plus ``call_cost`` per block (one BLAS call's overhead, ~3 µs, in row-band products of one
    frame's row), exactly by dynamic programming over band boundaries. Every non-zero weight lies in its band's block, so
    the product is the dense one summed in another order (float64 rounding only).
    """
    n_rows, n_bands = fb.shape
    nonzero = fb != 0
    used = nonzero.any(axis=0)
    lo = np.where(used, nonzero.argmax(axis=0), n_rows)
    hi = np.where(used, n_rows - nonzero[::-1].argmax(axis=0), 0)
    best, cut = [0.0] + [np.inf] * n_bands, [0] * (n_bands + 1)
    for j in range(1, n_bands + 1):
        r0, r1 = n_rows, 0
        for i in range(j - 1, max(-1, j - 1 - max_width), -1):
            r0, r1 = min(r0, int(lo[i])), max(r1, int(hi[i]))
            cost = best[i] + max(r1 - r0, 0) * (j - i) + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[tuple[int, int, int, int]] = []
    j = n_bands
    while j > 0:
        i = cut[j]
        r0, r1 = int(lo[i:j].min()), int(hi[i:j].max())
        groups.append((r0, max(r0, r1), i, j))
        j = i
    return groups[::-1]


class _FrameRows:
    """``10 log10(max(amplitude, 1e-10))`` of STFT frames for one spec, with reused buffers.

    The steps, each one pass over a reused buffer: window, rFFT (``out=``), square the
    interleaved real and imaginary parts in place and add them (the power, as ``re**2 + im**2``);
    the filterbank as the blocks of :func:`_band_groups` (on the power for kapre 0.1.4, on its
    square root for openl3 0.4); then sqrt, floor at ``AMIN``, log10, × 10. Folding the power
    into the product (``[Re², Im²] @ [fb; fb]``) doubles its rows and measured slower than the
    one add pass (SEA-64: 60 µs against 5 + 24 µs). Scratch buffers are per thread (the cached
    instance is shared).
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.n_dft = int(spec["n_dft"])
        self.n_bins = self.n_dft // 2 + 1
        self.window = periodic_hann(self.n_dft)
        self.mel, self.on_power = is_mel(spec), filterbank_on_power(spec)
        self.n_out = int(spec["n_mels"]) if self.mel else self.n_bins
        self.fb: npt.NDArray[np.float64] | None = None
        self.fb_t: npt.NDArray[np.float64] | None = None
        self.groups: list[tuple[int, int, int, int]] = []
        if self.mel:
            fb = _cached_filterbank(int(spec["sr"]), self.n_dft, int(spec["n_mels"]), float(spec.get("fmin", 0.0)),
                                    spec.get("fmax"), bool(spec.get("htk", True)), spec.get("norm", "slaney"))
            self.fb, self.fb_t = fb, np.ascontiguousarray(fb.T)
            # A BLAS call costs as much as ~50 000 multiply-adds; per frame row that is 50 000 / T
            # for the T frames of a 1-s window (SEA-64: 50 frames, the teacher: 199).
            frames = padding_amounts(int(spec["sr"]), self.n_dft, int(spec["n_hop"]), spec["padding"])[2]
            self.groups = _band_groups(fb, call_cost=50_000 / max(frames, 1))
        self._local = threading.local()

    def _scratch(self, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.complex128], npt.NDArray[np.float64]]:
        cache: dict[int, Any] | None = getattr(self._local, "buffers", None)
        if cache is None:
            cache = self._local.buffers = {}
        bufs = cache.get(n)
        if bufs is None:
            if len(cache) > 8:          # a streaming front end asks for a few sizes; never let it grow
                cache.clear()
            bufs = cache[n] = (np.empty((n, self.n_dft)), np.empty((n, self.n_bins), np.complex128),
                               np.empty((n, self.n_bins)))
        return bufs

    def __call__(self, frames: npt.NDArray[np.float64], out: npt.NDArray[np.float64], *,
                 bands_first: bool = False) -> npt.NDArray[np.float64]:
        """Rows of ``frames`` [..., n_dft] (any strides) into ``out`` [n, F], or [F, n] if ``bands_first``."""
        n = int(np.prod(frames.shape[:-1]))
        windowed, spectrum, magnitude = self._scratch(n)
        np.multiply(frames, self.window, out=windowed.reshape(frames.shape))
        np.fft.rfft(windowed, axis=-1, out=spectrum)
        parts = spectrum.view(np.float64)                                    # [n, 2 * n_bins]: Re, Im, Re, ...
        np.square(parts, out=parts)
        np.add(parts[:, 0::2], parts[:, 1::2], out=magnitude)               # power |X|²
        if self.mel and self.on_power:
            self._filterbank(magnitude, out, bands_first)
            # 10 log10(max(sqrt(m), AMIN)) = 5 log10(max(m, AMIN²)): one pass fewer, same value
            # up to float64 rounding
            np.maximum(out, AMIN * AMIN, out=out)
            np.log10(out, out=out)
            np.multiply(out, 5.0, out=out)
            return out
        else:
            np.sqrt(magnitude, out=magnitude)
            if self.mel:
                self._filterbank(magnitude, out, bands_first)
            else:
                out[...] = magnitude.T if bands_first else magnitude
        np.maximum(out, AMIN, out=out)
        np.log10(out, out=out)
        np.multiply(out, 10.0, out=out)
        return out

    def _filterbank(self, x: npt.NDArray[np.float64], out: npt.NDArray[np.float64], bands_first: bool) -> None:
        assert self.fb is not None and self.fb_t is not None
        for r0, r1, m0, m1 in self.groups:
            if r1 == r0:                                # bands without a single frequency bin
                (out[m0:m1] if bands_first else out[:, m0:m1]).fill(0.0)
            elif bands_first:
                np.matmul(self.fb_t[m0:m1, r0:r1], x[:, r0:r1].T, out=out[m0:m1])
            else:
                np.matmul(x[:, r0:r1], self.fb[r0:r1, m0:m1], out=out[:, m0:m1])


#: What a front end's numbers depend on (the other keys of a card's ``frontend`` describe them).
_SPEC_KEYS = ("type", "sr", "n_dft", "n_hop", "n_mels", "fmin", "fmax", "htk", "norm", "padding")


def _spec_key(spec: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((k, spec[k]) for k in _SPEC_KEYS if k in spec)


@functools.lru_cache(maxsize=8)
def _rows_for(key: tuple[tuple[str, Any], ...]) -> _FrameRows:
    return _FrameRows(dict(key))


def _frame_rows(spec: dict[str, Any]) -> _FrameRows:
    """The shared (cached) :class:`_FrameRows` of ``spec``."""
    return _rows_for(_spec_key(spec))


def frame_log_amplitude(windows: npt.NDArray[np.float64], spec: dict[str, Any]) -> npt.NDArray[np.float64]:
    """``10 log10(max(amplitude, 1e-10))`` of STFT frames, before the per-example normalisation.

    The part of the front end that depends on one STFT frame only, shared by
    :func:`compute_frontend`, :class:`FusedFrontend` and :class:`StreamingFrontend` so that all
    compute the same numbers.

    Parameters
    ----------
    windows : np.ndarray [shape=(..., n_dft), dtype=float64]
        Unwindowed STFT frames (the periodic Hann window is applied here).
    spec : dict
        A model card's ``frontend`` entry.

    Returns
    -------
    np.ndarray [shape=(..., F), dtype=float64]
        F = ``n_mels`` (mel types) or ``n_dft // 2 + 1``.
    """
    rows = _frame_rows(spec)
    windows = np.asarray(windows, np.float64)
    out = np.empty((int(np.prod(windows.shape[:-1])), rows.n_out))
    return rows(windows, out).reshape(*windows.shape[:-1], rows.n_out)


def compute_frontend(frames: npt.ArrayLike, spec: dict[str, Any]) -> npt.NDArray[np.float32]:
    """Time-frequency image of each 1-s window, as the model's front-end layer computes it.

    Parameters
    ----------
    frames : np.ndarray [shape=(N, n_samples)]
        Raw audio windows at ``spec["sr"]`` Hz.
    spec : dict
        A model card's ``frontend`` entry.

    Returns
    -------
    np.ndarray [shape=(N, F, T, 1), dtype=float32]
        dB values in [−80, 0]; F = ``n_mels`` or ``n_dft // 2 + 1``; T as :func:`output_shape`.
    """
    _check_spec(spec)
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise ValueError(f"frames must be [N, n_samples]; got shape {frames.shape}")
    return _fused_for(spec, frames.shape[1])(frames)


_LOCAL = threading.local()


def _fused_for(spec: dict[str, Any], n_samples: int) -> "FusedFrontend":
    """A per-thread :class:`FusedFrontend` for ``spec`` (its buffers are reused from call to call)."""
    cache: dict[tuple[Any, ...], FusedFrontend] | None = getattr(_LOCAL, "fused", None)
    if cache is None:
        cache = _LOCAL.fused = {}
    key = (*_spec_key(spec), int(n_samples))
    fused = cache.get(key)
    if fused is None:
        if len(cache) >= 4:
            cache.clear()
        fused = cache[key] = FusedFrontend(spec, int(n_samples))
    return fused


class FusedFrontend:
    """:func:`compute_frontend` of whole windows, fused into few passes over preallocated buffers.

    All STFT frames of up to ``chunk`` windows go through one windowing pass, one rFFT call and the
    banded power-and-mel product (:class:`_FrameRows`), written bands-first so the image needs no
    transpose; then the dB normalisation in place and, when asked, the quantization straight into
    the caller's buffer (e.g. the interpreter's input array). The numbers are those of
    :func:`frame_log_amplitude`, which :class:`StreamingFrontend` uses too.

    Parameters
    ----------
    spec : dict
        A model card's ``frontend`` entry.
    frame_samples : int
        Window length in samples.
    chunk : int
        Windows per pass: bounds the scratch memory (a teacher window's frames are 3 MB in float64).
    """

    def __init__(self, spec: dict[str, Any], frame_samples: int, *, chunk: int = 16) -> None:
        _check_spec(spec)
        self.spec = dict(spec)
        self.frame_samples = int(frame_samples)
        self.n_dft, self.n_hop = int(spec["n_dft"]), int(spec["n_hop"])
        self.front, self.back, self.count = padding_amounts(self.frame_samples, self.n_dft, self.n_hop,
                                                            spec["padding"])
        if self.count < 1:
            raise ValueError(f"windows of {frame_samples} samples are shorter than one {self.n_dft}-sample STFT frame")
        self.rows = _frame_rows(spec)
        self.n_freq = self.rows.n_out
        self.chunk = max(1, int(chunk))
        self._bufs: dict[int, tuple[Any, ...]] = {}

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(F, T, 1)`` of one window's image."""
        return (self.n_freq, self.count, 1)

    def _buffers(self, n: int) -> tuple[Any, ...]:
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) > 4:
                self._bufs.clear()
            padded = np.zeros((n, self.front + self.frame_samples + self.back))
            frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_dft, axis=1)[:, ::self.n_hop][:, :self.count]
            log = np.empty((self.n_freq, n * self.count))                     # bands first: [F, n * T]
            image = np.empty((n, self.n_freq, self.count), np.float32)
            bufs = self._bufs[n] = (padded, frames, log, image)
        return bufs

    def __call__(self, frames: npt.ArrayLike, *, quantize: tuple[Any, Any, npt.DTypeLike] | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The front-end images of ``frames``, equal to ``compute_frontend(frames, spec)``.

        Parameters
        ----------
        frames : np.ndarray [shape=(N, frame_samples)]
        quantize : tuple (inv_scale, zero_point, dtype), optional
            Write the model's quantized input instead of dB: ``rint(clip(db * inv_scale + zero))``
            in float32, as ``device.runner`` quantizes.
        out : np.ndarray [shape=(N, F, T, 1)], optional
            Where to write; float32, or ``dtype`` when quantizing.

        Returns
        -------
        np.ndarray [shape=(N, F, T, 1)]
            ``out`` when given, else a new array.
        """
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_samples:
            raise ValueError(f"frames must be [N, {self.frame_samples}]; got shape {frames.shape}")
        n_total = len(frames)
        dtype = np.dtype(quantize[2]) if quantize is not None else np.dtype(np.float32)
        if out is None:
            out = np.empty((n_total, self.n_freq, self.count, 1), dtype)
        for begin in range(0, n_total, self.chunk):
            part = frames[begin:begin + self.chunk]
            self._chunk(part, out[begin:begin + len(part)], quantize)
        return out

    def _chunk(self, frames: np.ndarray, out: np.ndarray, quantize: tuple[Any, Any, npt.DTypeLike] | None) -> None:
        n, t = len(frames), self.count
        padded, windows, log, image = self._buffers(n)
        padded[:, self.front:self.front + self.frame_samples] = frames
        self.rows(windows, log, bands_first=True)                           # [F, n * T]
        per_window = log.reshape(self.n_freq, n, t)
        # each window's own max (one window: the whole buffer's, the faster reduction)
        peak = log.max() if n == 1 else per_window.max(axis=(0, 2), keepdims=True)
        np.subtract(per_window, peak, out=per_window)
        np.maximum(per_window, DB_FLOOR, out=per_window)
        if quantize is None:
            out[..., 0] = per_window.transpose(1, 0, 2)                     # float64 -> float32, [n, F, T]
            return
        image[...] = per_window.transpose(1, 0, 2)
        inv_scale, zero, dtype = quantize
        lo, hi = _code_range(np.dtype(dtype))
        np.multiply(image, inv_scale, out=image)
        np.add(image, zero, out=image)
        np.maximum(image, lo, out=image)            # = np.clip, without its Python-level wrapper
        np.minimum(image, hi, out=image)
        np.rint(image, out=out[..., 0], casting="unsafe")


@functools.lru_cache(maxsize=8)
def _code_range(dtype: np.dtype[Any]) -> tuple[np.float32, np.float32]:
    """(min, max) of an integer input dtype as float32, the bounds quantized codes are clipped to."""
    info = np.iinfo(dtype)
    return np.float32(info.min), np.float32(info.max)


class StreamingFrontend:
    """The front end of consecutive windows of one audio stream, reusing the STFT frames they share.

    Window k of a stream starts at stream sample ``start_k``. STFT frame j of a window covers
    stream samples ``[start_k - front + j*n_hop, ... + n_dft)`` (``front`` from
    :func:`padding_amounts`). A frame that lies wholly inside the window is the same in every
    window that contains those samples, so its log-amplitude row is kept and reused; frames that
    touch the window's zero padding ('same', 'end', 'center' padding) depend on where the window
    ends and are recomputed for every window. The per-window dB normalisation (max subtraction,
    −80 dB floor) then runs on the whole image, as :func:`compute_frontend` does.

    Reuse needs the frame grids of two windows to coincide, i.e. ``start`` differences that are
    multiples of ``n_hop``; at any other hop the grid moves, nothing is reused and every frame is
    recomputed (still exact). Rows are cached for the last window's grid only, so memory is one
    window's image whatever the stream length.

    Parameters
    ----------
    spec : dict
        A model card's ``frontend`` entry.
    frame_samples : int
        Window length in samples (1 s at ``spec["sr"]``).

    Attributes
    ----------
    frames_computed, frames_reused : int
        STFT frames computed and taken from the cache so far.

    Examples
    --------
    >>> fe = StreamingFrontend(spec, 8000)                              # doctest: +SKIP
    >>> images = [fe(audio[s:s + 8000], s) for s in range(0, len(audio) - 7999, 800)]   # doctest: +SKIP
    """

    def __init__(self, spec: dict[str, Any], frame_samples: int) -> None:
        _check_spec(spec)
        self.spec = dict(spec)
        self.frame_samples = int(frame_samples)
        self.n_dft, self.n_hop = int(spec["n_dft"]), int(spec["n_hop"])
        self.front, back, self.count = padding_amounts(self.frame_samples, self.n_dft, self.n_hop, spec["padding"])
        if self.count < 1:
            raise ValueError(f"windows of {frame_samples} samples are shorter than one {self.n_dft}-sample STFT frame")
        self.n_freq = int(spec["n_mels"]) if is_mel(spec) else self.n_dft // 2 + 1
        starts = np.arange(self.count) * self.n_hop - self.front         # frame starts within the window
        inside = np.flatnonzero((starts >= 0) & (starts + self.n_dft <= self.frame_samples))
        # frames inside the window are contiguous in j: [j_lo, j_hi)
        self.j_lo, self.j_hi = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
        self.edges = np.array([j for j in range(self.count) if not self.j_lo <= j < self.j_hi], np.intp)
        self._padded = np.zeros(self.front + self.frame_samples + back, np.float64)
        self._frames = np.lib.stride_tricks.sliding_window_view(self._padded, self.n_dft)[::self.n_hop][:self.count]
        self._log = np.empty((self.count, self.n_freq), np.float64)        # this window's rows [T, F]
        self._work = np.empty((self.count, self.n_freq), np.float64)
        self._image = np.empty((self.n_freq, self.count, 1), np.float32)
        self._rows = _frame_rows(spec)
        self._rows_buf: dict[int, npt.NDArray[np.float64]] = {}
        self._cap = max(self.j_hi - self.j_lo, 1)
        # Ring of the inside rows by grid index, every row written twice (at g % cap and g % cap + cap)
        # so that any run of up to cap consecutive rows is one slice: no modulo gather per window.
        self._store = np.empty((2 * self._cap, self.n_freq), np.float64)
        # (reuse_lo, reuse_hi) -> frames to compute
        self._plans: dict[tuple[int, int], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = {}
        self.reset()

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``(F, T, 1)`` of one window's image."""
        return self._image.shape

    def _rows_out(self, n: int) -> npt.NDArray[np.float64]:
        buf = self._rows_buf.get(n)
        if buf is None:
            buf = self._rows_buf[n] = np.empty((n, self.n_freq))
        return buf

    def reset(self) -> None:
        """Forget the cached frames (e.g. after a gap in the stream)."""
        self._grid: tuple[int, int, int] | None = None   # (phase, first, end) grid indices of the cached rows
        self.frames_computed = 0
        self.frames_reused = 0

    def log_amplitude(self, window: npt.ArrayLike, start: int) -> npt.NDArray[np.float64]:
        """Per-frame log-amplitude rows of one window (before normalisation), with frame reuse.

        Parameters
        ----------
        window : np.ndarray [shape=(frame_samples,)]
            The window's samples.
        start : int
            Stream index of ``window[0]``; the caller guarantees equal indices hold equal samples.

        Returns
        -------
        np.ndarray [shape=(T, F), dtype=float64]
            A buffer owned by this object, overwritten by the next call.
        """
        window = np.asarray(window)
        if window.shape != (self.frame_samples,):
            raise ValueError(f"window must have shape ({self.frame_samples},); got {window.shape}")
        first = int(start) - self.front                                  # stream start of frame 0
        phase, g0 = first % self.n_hop, first // self.n_hop              # frame j has grid index g0 + j
        lo, hi = g0 + self.j_lo, g0 + self.j_hi                          # grid range of the inside frames
        reuse_lo = reuse_hi = lo
        if self._grid is not None and self._grid[0] == phase:
            reuse_lo, reuse_hi = max(lo, self._grid[1]), min(hi, self._grid[2])
            if reuse_lo >= reuse_hi:
                reuse_lo = reuse_hi = lo
        self._padded[self.front:self.front + self.frame_samples] = window
        a, b = reuse_lo - g0, reuse_hi - g0                              # reused frames j in [a, b)
        plan = self._plans.get((a, b))
        if plan is None:
            todo = np.concatenate([self.edges, np.arange(self.j_lo, a), np.arange(b, self.j_hi)]).astype(np.intp)
            plan = self._plans[(a, b)] = (todo, todo[(todo >= self.j_lo) & (todo < self.j_hi)])
        todo, inside_new = plan
        if b > a:
            r = reuse_lo % self._cap
            self._log[a:b] = self._store[r:r + b - a]
        if todo.size:
            self._log[todo] = self._rows(self._frames[todo], self._rows_out(todo.size))
        if inside_new.size:
            slots = (inside_new + g0) % self._cap
            rows = self._log[inside_new]
            self._store[slots] = rows
            self._store[slots + self._cap] = rows
        self._grid = (phase, lo, hi)
        self.frames_computed += int(todo.size)
        self.frames_reused += b - a
        return self._log

    def __call__(self, window: npt.ArrayLike, start: int, *,
                 quantize: tuple[Any, Any, npt.DTypeLike] | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """The front-end image of one window, equal to ``compute_frontend(window[None], spec)[0]``.

        Parameters
        ----------
        window : np.ndarray [shape=(frame_samples,)]
        start : int
            Stream index of ``window[0]`` (see :meth:`log_amplitude`).
        quantize : tuple (inv_scale, zero_point, dtype), optional
            Write the model's quantized input instead of dB: ``rint(clip(db * inv_scale + zero))``
            in float32, as ``device.runner`` quantizes, fused into the last pass.
        out : np.ndarray [shape=(F, T, 1)], optional
            Where to write (e.g. the interpreter's input buffer); float32, or ``dtype`` when quantizing.

        Returns
        -------
        np.ndarray [shape=(F, T, 1)]
            dB in [−80, 0] (float32) or quantized codes; ``out`` when given, else a buffer owned
            by this object (overwritten by the next call).
        """
        log = self.log_amplitude(window, start)
        work = self._work
        np.subtract(log, log.max(), out=work)
        np.maximum(work, DB_FLOOR, out=work)
        image = self._image if quantize is not None or out is None else out
        image[..., 0] = work.T                                            # float64 -> float32, [F, T]
        if quantize is None:
            return image
        inv_scale, zero, dtype = quantize
        info = np.iinfo(dtype)
        np.multiply(image, inv_scale, out=image)
        np.add(image, zero, out=image)
        np.clip(image, np.float32(info.min), np.float32(info.max), out=image)
        if out is None:
            out = np.empty(image.shape, dtype)
        np.rint(image, out=out, casting="unsafe")
        return out
