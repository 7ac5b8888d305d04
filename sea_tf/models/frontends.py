"""Audio front ends as a Keras layer: raw 1-s windows → dB time-frequency images ``[B, F, T, 1]``.

Which front end a model expects is stored in its card (``card["frontend"]``, a *front-end spec*
made by :func:`frontend_spec`). Types (docs/PROTOCOL.md §1.2, §2.3):

``kapre-0.1.4-mel`` (default) / ``kapre-0.1.4-linear``
    Exactly what the published SEA students and the original L3 teacher were trained with:
    periodic-Hann DFT, power, HTK mel filterbank with Slaney area norm applied to the *power*,
    square root, ``10*log10(max(x, 1e-10))``, minus the per-example max, floored at −80 dB,
    TF 'SAME' padding with ``floor(total/2)`` samples in front (linear: 'valid').
``openl3-0.4-kapre-{mel,linear}``, ``openl3-0.4-librosa-{mel,linear}``
    openl3 0.4.x's front ends (Slaney mel scale, filterbank on the magnitude, end or centred
    padding) for users who want to match openl3 0.4 numbers. They do *not* reproduce the
    original teacher (docs/PROTOCOL.md §1.2, "measured consequence").

The DFT is computed with ``tf.signal.rfft`` by default. ``dft="matmul"`` computes the same
numbers as one ``[n_dft, 2*(n_dft/2+1)]`` matrix product (what kapre does), for export targets
without an FFT kernel. ``device/frontends.py`` is the numpy twin the layer is tested against.
"""
import math
import warnings
from typing import Any, NamedTuple

import librosa
import numpy as np
import numpy.typing as npt

from sea_tf.backend import keras, tf
from sea_tf.errors import ModelError

DB_FLOOR = -80.0
AMIN = 1e-10
DFT_MODES = ("rfft", "matmul")


class _Traits(NamedTuple):
    """What sets one front-end type apart."""
    mel: bool  # a mel filterbank (else the linear-frequency magnitude)
    on_power: bool  # filterbank applied to the power (kapre 0.1.4), else to the magnitude
    htk: bool | None  # HTK mel scale (else Slaney); None without a filterbank
    padding: str  # default STFT padding


_TYPES = {
    "kapre-0.1.4-mel": _Traits(mel=True, on_power=True, htk=True, padding="same"),
    "kapre-0.1.4-linear": _Traits(mel=False, on_power=True, htk=None, padding="valid"),
    "openl3-0.4-kapre-mel": _Traits(mel=True, on_power=False, htk=False, padding="end"),
    "openl3-0.4-kapre-linear": _Traits(mel=False, on_power=False, htk=None, padding="valid"),
    "openl3-0.4-librosa-mel": _Traits(mel=True, on_power=False, htk=False, padding="center"),
    "openl3-0.4-librosa-linear": _Traits(mel=False, on_power=False, htk=None, padding="valid"),
}
FRONTEND_TYPES = tuple(_TYPES)
PADDINGS = ("same", "valid", "end", "center")


def stft_geometry(n_samples: int, n_dft: int, n_hop: int, padding: str) -> tuple[int, int, int]:
    """(front pad, back pad, n_frames) of the framed STFT; see ``device.frontends.padding_amounts``."""
    if padding == "same":
        frames = math.ceil(n_samples / n_hop)
        total = max((frames - 1) * n_hop + n_dft - n_samples, 0)
        return total // 2, total - total // 2, frames
    if padding == "valid":
        if n_samples < n_dft:
            raise ModelError(f"'valid' STFT padding needs at least n_dft={n_dft} samples, got {n_samples}")
        return 0, 0, 1 + (n_samples - n_dft) // n_hop
    if padding == "end":
        frames = math.ceil(n_samples / n_hop)
        return 0, max((frames - 1) * n_hop + n_dft - n_samples, 0), frames
    if padding == "center":
        return n_dft // 2, n_dft // 2, 1 + n_samples // n_hop
    raise ModelError(f"unknown STFT padding {padding!r}; use one of {', '.join(PADDINGS)}")


def frontend_spec(type: str = "kapre-0.1.4-mel", *, sr: int = 8000, n_dft: int = 1024, n_hop: int = 160,
                  n_mels: int | None = 64, fmin: float = 0.0, fmax: float | None = None, padding: str | None = None,
                  frame_samples: int | None = None) -> dict[str, Any]:
    """The front-end description stored as ``card["frontend"]``.

    Parameters
    ----------
    type : str
        One of ``FRONTEND_TYPES``.
    sr : int
        Sample rate in Hz.
    n_dft, n_hop : int
        DFT length and hop in samples.
    n_mels : int or None
        Mel bands (ignored, stored as None, for linear types).
    fmin, fmax : float
        Mel band edges in Hz; ``fmax=None`` means ``sr / 2``.
    padding : {"same", "valid", "end", "center"}, optional
        STFT padding; the type's own default when None.
    frame_samples : int, optional
        Window length in samples (default ``sr``, i.e. 1 s); sets ``output_shape``.

    Returns
    -------
    dict
        ``type, sr, n_dft, n_hop, n_mels, fmin, fmax, htk, norm, padding, decibel, output_shape``.
    """
    if type not in _TYPES:
        raise ModelError(f"unknown front-end type {type!r}; known: {', '.join(FRONTEND_TYPES)}")
    traits = _TYPES[type]
    sr, n_dft, n_hop = int(sr), int(n_dft), int(n_hop)
    if min(sr, n_dft, n_hop) <= 0:
        raise ModelError(f"front end needs positive sr, n_dft and n_hop; got {sr}, {n_dft}, {n_hop}")
    padding = padding or traits.padding
    frame_samples = int(frame_samples or sr)
    _, _, frames = stft_geometry(frame_samples, n_dft, n_hop, padding)
    mel = traits.mel
    fmax = float(sr / 2 if fmax is None else fmax)
    if mel and not (0 <= fmin < fmax <= sr / 2):
        raise ModelError(f"mel band edges must satisfy 0 <= fmin < fmax <= sr/2; got {fmin}, {fmax} at sr={sr}")
    if mel and n_mels is None:
        raise ModelError(f"front-end type {type!r} needs n_mels (mel bands), got None")
    n_freq = int(n_mels) if mel and n_mels is not None else n_dft // 2 + 1
    return {
        "type": type, "sr": sr, "n_dft": n_dft, "n_hop": n_hop,
        "n_mels": int(n_mels) if mel and n_mels is not None else None,
        "fmin": float(fmin) if mel else None, "fmax": fmax if mel else None,
        "htk": traits.htk, "norm": "slaney" if mel else None,
        "padding": padding, "decibel": True, "output_shape": [n_freq, frames, 1],
    }


def teacher_frontend_spec(input_repr: str, *, family: str = "kapre-0.1.4") -> dict[str, Any]:
    """Front end of the L3 teacher for ``input_repr`` in {linear, mel128, mel256} (48 kHz, docs/PROTOCOL.md §1.2).

    ``family`` is "kapre-0.1.4" (the original training front end, default), "openl3-0.4-kapre"
    or "openl3-0.4-librosa".
    """
    if input_repr not in ("linear", "mel128", "mel256"):
        raise ModelError(f"input_repr must be linear, mel128 or mel256; got {input_repr!r}")
    if input_repr == "linear":
        return frontend_spec(f"{family}-linear", sr=48000, n_dft=512, n_hop=242)
    return frontend_spec(f"{family}-mel", sr=48000, n_dft=2048, n_hop=242, n_mels=int(input_repr[3:]))


def dft_kernels(n_dft: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Periodic-Hann-windowed DFT kernels as kapre 0.1.4 stores them.

    Returns
    -------
    real, imag : np.ndarray [shape=(n_dft, n_dft // 2 + 1), dtype=float64]
        ``cos(2 pi k n / N) w[n]`` and ``-sin(2 pi k n / N) w[n]``.
    """
    n = np.arange(n_dft)[:, None]
    k = np.arange(n_dft // 2 + 1)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_dft) / n_dft)
    angle = 2 * np.pi * ((n * k) % n_dft) / n_dft
    return np.cos(angle) * window[:, None], -np.sin(angle) * window[:, None]


def mel_filterbank(spec: dict[str, Any]) -> npt.NDArray[np.float32]:
    """Mel filterbank of a front-end spec, ``[n_dft // 2 + 1, n_mels]`` float32 (librosa)."""
    with warnings.catch_warnings():
        # 256 HTK mels on 1025 bins (the mel256 teacher) leave a few low bands empty, as they
        # were in the original model; librosa warns about it.
        warnings.filterwarnings("ignore", message="Empty filters detected")
        fb = librosa.filters.mel(sr=spec["sr"], n_fft=spec["n_dft"], n_mels=spec["n_mels"], fmin=spec["fmin"],
                                 fmax=spec["fmax"], htk=bool(spec["htk"]), norm="slaney", dtype=np.float64)
    return fb.T.astype(np.float32)


def frontend_macs(spec: dict[str, Any], *, dft: str = "rfft") -> int:
    """Multiply-accumulates of the front end per window.

    The matmul DFT costs ``T * n_dft * 2 * (n_dft/2+1)``; the rFFT is estimated as
    ``T * n_dft * log2(n_dft)`` (a radix-2 real FFT does about half that many real multiplies,
    so this is an upper estimate). Power, filterbank and dB steps are added.
    """
    n_freq_bins = spec["n_dft"] // 2 + 1
    frames = spec["output_shape"][1]
    if dft == "matmul":
        dft_cost = frames * spec["n_dft"] * 2 * n_freq_bins
    else:
        dft_cost = int(frames * spec["n_dft"] * math.log2(spec["n_dft"]))
    cost = dft_cost + frames * (spec["n_dft"] + 2 * n_freq_bins)  # window + power
    if spec["n_mels"]:
        cost += frames * n_freq_bins * spec["n_mels"]
    return int(cost)


@keras.utils.register_keras_serializable(package="sea_tf")
class AudioFrontend(keras.layers.Layer):
    """Raw audio windows ``[B, n_samples]`` → dB image ``[B, F, T, 1]`` (no trainable weights).

    Parameters
    ----------
    spec : dict
        A front-end spec from :func:`frontend_spec` (the model card's ``frontend``).
    dft : {"rfft", "matmul"}
        How to compute the DFT; both give the same numbers within float32 rounding.
    """

    def __init__(self, spec: dict[str, Any], *, dft: str = "rfft", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if spec.get("type") not in _TYPES:
            raise ModelError(f"unknown front-end type {spec.get('type')!r}; known: {', '.join(FRONTEND_TYPES)}")
        if dft not in DFT_MODES:
            raise ModelError(f"dft must be one of {DFT_MODES}; got {dft!r}")
        self.spec = dict(spec)
        self.dft = dft
        traits = _TYPES[spec["type"]]
        self._mel, self._on_power = traits.mel, traits.on_power
        n_dft = spec["n_dft"]
        self._window = tf.constant(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_dft) / n_dft), tf.float32)
        if dft == "matmul":
            real, imag = dft_kernels(n_dft)
            self._kernel = tf.constant(np.concatenate([real, imag], axis=1), tf.float32)
        if self._mel:
            self._fb = tf.constant(mel_filterbank(self.spec), tf.float32)

    def call(self, audio: tf.Tensor) -> tf.Tensor:
        spec = self.spec
        n_samples = audio.shape[-1]
        front, back, count = stft_geometry(n_samples, spec["n_dft"], spec["n_hop"], spec["padding"])
        audio = tf.pad(audio, [[0, 0], [front, back]])
        # Framing as a gather with constant indices (rather than tf.signal.frame) keeps the graph
        # free of shape arithmetic, so TFLite converts it to a single GATHER.
        index = np.arange(count)[:, None] * spec["n_hop"] + np.arange(spec["n_dft"])[None, :]
        frames = tf.gather(audio, tf.constant(index, tf.int32), axis=1)         # [B, T, n_dft]
        if self.dft == "matmul":
            both = tf.matmul(frames, self._kernel)                               # [B, T, 2*n_freq]
            real, imag = tf.split(both, 2, axis=-1)
        else:
            spectrum = tf.signal.rfft(frames * self._window)
            real, imag = tf.math.real(spectrum), tf.math.imag(spectrum)
        power = tf.square(real) + tf.square(imag)                                # [B, T, n_freq]
        if not self._mel:
            amplitude = tf.sqrt(power)
        elif self._on_power:
            amplitude = tf.sqrt(tf.matmul(power, self._fb))
        else:
            amplitude = tf.matmul(tf.sqrt(power), self._fb)
        log = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(amplitude, AMIN))
        log = log - tf.reduce_max(log, axis=[1, 2], keepdims=True)
        log = tf.maximum(log, DB_FLOOR)
        return tf.expand_dims(tf.transpose(log, [0, 2, 1]), -1)                  # [B, F, T, 1]

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        n_samples = input_shape[-1]
        _, _, frames = stft_geometry(n_samples, self.spec["n_dft"], self.spec["n_hop"], self.spec["padding"])
        return tf.TensorShape([input_shape[0], self.spec["output_shape"][0], frames, 1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "spec": self.spec, "dft": self.dft}
