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


def frame_log_amplitude(windows: npt.NDArray[np.float64], spec: dict[str, Any]) -> npt.NDArray[np.float64]:
    """``10 log10(max(amplitude, 1e-10))`` of STFT frames, before the per-example normalisation.

    The part of the front end that depends on one STFT frame only, shared by
    :func:`compute_frontend` and :class:`StreamingFrontend` so that both compute the same numbers.

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
    n_dft = int(spec["n_dft"])
    spectrum = np.fft.rfft(windows * periodic_hann(n_dft), axis=-1)          # [..., n_dft/2+1]
    power = spectrum.real ** 2 + spectrum.imag ** 2
    if is_mel(spec):
        fb = _cached_filterbank(int(spec["sr"]), n_dft, int(spec["n_mels"]), float(spec.get("fmin", 0.0)),
                                spec.get("fmax"), bool(spec.get("htk", True)), spec.get("norm", "slaney"))
        if filterbank_on_power(spec):
            amplitude = np.sqrt(power @ fb)
        else:
            amplitude = np.sqrt(power) @ fb
    else:
        amplitude = np.sqrt(power)
    return 10.0 * np.log10(np.maximum(amplitude, AMIN))


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
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2:
        raise ValueError(f"frames must be [N, n_samples]; got shape {frames.shape}")
    n_dft, n_hop = int(spec["n_dft"]), int(spec["n_hop"])
    front, back, count = padding_amounts(frames.shape[1], n_dft, n_hop, spec["padding"])
    padded = np.pad(frames, ((0, 0), (front, back)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_dft, axis=1)[:, ::n_hop][:, :count]
    log = frame_log_amplitude(windows, spec)                                  # [N, T, F]
    log = log - log.max(axis=(1, 2), keepdims=True)
    image = np.transpose(np.maximum(log, DB_FLOOR).astype(np.float32), (0, 2, 1))   # [N, F, T]
    return image[..., None]


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
            self._log[todo] = frame_log_amplitude(self._frames[todo], self.spec)
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
