"""Front ends: the Keras layer against the numpy twin, kapre-0.1.4 semantics, stored REF constants."""
import math

import h5py
import librosa
import numpy as np
import pytest

from device import frontends as twin
from sea_tf.models import frontends as F
from sea_tf.backend import keras
from sea_tf.errors import ModelError
from tolerance_support import db_interval, fft_relative_error, gamma, ulp32


def _spec(type_):
    if type_.endswith("-mel"):
        return F.frontend_spec(type_, sr=8000, n_dft=1024, n_hop=160, n_mels=64)
    return F.frontend_spec(type_, sr=8000, n_dft=512, n_hop=242)


def _image_bounds(frames, spec, dft, window=twin.periodic_hann):
    """Element-wise bounds (dB) on what any float32 run of the layer may output for ``frames``.

    The exact amplitude (float64) is widened by the worst-case float32 error of the DFT, then
    pushed through the filterbank and the dB step, which are monotone (see tolerance_support).
    The matmul DFT's error scales with the frame's ``Σ|x w|``, not with the bin's own size: a bin
    40 dB (a 1e-4 amplitude ratio on kapre's scale) below the frame's peak carries a relative error
    ~1e4 times larger than the peak does, which is why a flat dB tolerance cannot fit every bin.

    Returns
    -------
    lo, hi : np.ndarray [shape=(N, F, T, 1), float64]
    """
    n_dft, n_freq = spec["n_dft"], spec["n_dft"] // 2 + 1
    front, back, count = twin.padding_amounts(frames.shape[1], n_dft, spec["n_hop"], spec["padding"])
    padded = np.pad(frames.astype(np.float64), ((0, 0), (front, back)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_dft, axis=1)[:, ::spec["n_hop"]][:, :count]
    windows = windows * window(n_dft)                                               # [N, T, n_dft]
    amplitude = np.abs(np.fft.rfft(windows, axis=-1))                               # [N, T, n_freq]
    if dft == "matmul":
        # Re and Im are dot products of n_dft terms with float32 kernel entries |c| <= w (one more
        # rounding each): at most γ_{n+1} Σ|x w| in any summation order, √2 of that on |X|.
        err = math.sqrt(2) * gamma(n_dft + 1) * np.abs(windows).sum(-1, keepdims=True)
    else:
        # FFT: |δX_k| <= ||δX||_2 <= (FFT bound + γ_2 for the rounded window and product)
        # * ||X||_2, and ||X||_2 = sqrt(n_dft) ||x w||_2 (Parseval, full spectrum).
        err = ((fft_relative_error(n_dft) + gamma(2)) * math.sqrt(n_dft)
               * np.linalg.norm(windows, axis=-1, keepdims=True))
    lo, hi = np.maximum(amplitude - err, 0.0), amplitude + err
    if spec["n_mels"]:
        fb = twin.mel_filterbank(spec["sr"], n_dft, spec["n_mels"], fmin=spec["fmin"], fmax=spec["fmax"],
                                 htk=spec["htk"], norm=spec["norm"]).astype(np.float64)
        # Non-negative terms, so rounding is relative: square, add, the n_freq-term filterbank
        # product, the layer's and the twin's float32 filterbanks (1 ulp apart), sqrt.
        rho = gamma(n_freq + 5)
        if twin.filterbank_on_power(spec):
            lo, hi = np.sqrt((lo ** 2 @ fb) * (1 - rho)), np.sqrt((hi ** 2 @ fb) * (1 + rho))
        else:
            lo, hi = (lo @ fb) * (1 - rho), (hi @ fb) * (1 + rho)
    else:
        lo, hi = lo * (1 - gamma(2)), hi * (1 + gamma(2))                          # square, add, sqrt
    lo, hi = db_interval(lo, hi)
    # dB step in float32: log (≤ 2 ulp of |ln a| ≤ 23, × 4.34), scale, subtract max, and the
    # twin's float32 cast, each ≤ 1 ulp at the largest |value| 100 dB.
    slack = 4 * ulp32(100.0)
    return (np.transpose(lo, (0, 2, 1))[..., None] - slack, np.transpose(hi, (0, 2, 1))[..., None] + slack)


def _within(image, bounds):
    lo, hi = bounds
    return bool(np.all((lo <= image) & (image <= hi)))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    t = np.arange(8000) / 8000
    chirp = np.sin(2 * np.pi * (100 + 1500 * t) * t)
    x = np.stack([0.3 * rng.standard_normal(8000), chirp, 1e-4 * rng.standard_normal(8000), np.zeros(8000)])
    return x.astype(np.float32)


@pytest.mark.parametrize("dft", F.DFT_MODES)
@pytest.mark.parametrize("type_", F.FRONTEND_TYPES)
def test_layer_matches_numpy_twin(frames, type_, dft):
    spec = _spec(type_)
    ours = F.AudioFrontend(spec, dft=dft)(frames).numpy()
    ref = twin.compute_frontend(frames, spec)
    assert ours.shape == ref.shape == (4, *spec["output_shape"])
    assert twin.output_shape(spec, 8000) == spec["output_shape"]
    bounds = _image_bounds(frames, spec, dft)
    assert _within(ref, bounds) and _within(ours, bounds)
    # Negative controls: the bounds are tight enough that a one-sample shift (a padding mistake)
    # and the symmetric Hann window in place of kapre's periodic one both fall outside them.
    assert not _within(twin.compute_frontend(np.roll(frames, 1, axis=1), spec), bounds)
    assert not _within(ours, _image_bounds(frames, spec, dft, window=np.hanning))


def test_kapre_db_semantics(frames):
    image = F.AudioFrontend(_spec("kapre-0.1.4-mel"))(frames).numpy()
    assert image.min() >= -80.0 and np.all(image.max(axis=(1, 2, 3)) == 0.0)   # the max minus itself is exactly 0
    assert np.all(image[3] == 0.0)           # all-zero frame: -100 - (-100) = 0 dB, not -80 (docs/PROTOCOL.md §8.1)
    assert (image[0] == -80).mean() < 0.01 and image[1].min() < -70


def test_filterbank_twin_matches_librosa():
    for sr, n_dft, n_mels, fmax, htk in [(8000, 1024, 64, 4000, True), (48000, 2048, 256, None, False),
                                         (48000, 2048, 128, None, True)]:
        ours = twin.mel_filterbank(sr, n_dft, n_mels, fmin=0.0, fmax=fmax, htk=htk)
        ref = librosa.filters.mel(sr=sr, n_fft=n_dft, n_mels=n_mels, fmax=fmax, htk=htk, norm="slaney").T
        # Both round the same float64 triangles to float32: at most 1 ulp apart at the largest weight.
        assert np.abs(ours - ref).max() <= ulp32(np.abs(ref).max())


def test_same_padding_split_and_teacher_shapes():
    assert F.stft_geometry(8000, 1024, 160, "same") == (432, 432, 50)
    assert F.stft_geometry(48000, 2048, 242, "same") == (982, 982, 199)
    shapes = {r: F.teacher_frontend_spec(r)["output_shape"] for r in ("linear", "mel128", "mel256")}
    assert shapes == {"linear": [257, 197, 1], "mel128": [128, 199, 1], "mel256": [256, 199, 1]}
    assert F.teacher_frontend_spec("mel256", family="openl3-0.4-librosa")["output_shape"] == [256, 199, 1]


def test_padding_split_matters(frames):
    # Moving the padding to the end (openl3 0.4 style) changes the image by many dB.
    same = F.AudioFrontend(_spec("kapre-0.1.4-mel"))(frames[:2]).numpy()
    spec_end = dict(_spec("kapre-0.1.4-mel"), padding="end")
    end = twin.compute_frontend(frames[:2], spec_end)
    assert np.abs(same - end).max() > 10


def test_layer_config_roundtrip_and_bad_specs(frames):
    layer = F.AudioFrontend(_spec("kapre-0.1.4-mel"), dft="matmul")
    clone = F.AudioFrontend.from_config(layer.get_config())
    np.testing.assert_array_equal(layer(frames).numpy(), clone(frames).numpy())
    assert keras.utils.get_registered_object("sea_tf>AudioFrontend") is F.AudioFrontend
    with pytest.raises(ModelError, match="unknown front-end type"):
        F.frontend_spec("kapre-0.3-mel")
    with pytest.raises(ModelError, match="dft must be"):
        F.AudioFrontend(_spec("kapre-0.1.4-mel"), dft="fft")
    with pytest.raises(ModelError, match="fmin < fmax"):
        F.frontend_spec(fmax=9000)


def test_frontend_macs_matmul_vs_fft():
    spec = _spec("kapre-0.1.4-mel")
    assert F.frontend_macs(spec, dft="matmul") > 52_000_000          # 50 x 1024 x 1026 DFT (docs/PROTOCOL.md §2.3)
    assert F.frontend_macs(spec, dft="rfft") < 3_000_000


def test_stored_ref_constants_equal_ours(sea64_h5):
    with h5py.File(sea64_h5, "r") as handle:
        group = handle["model_weights/melspectrogram_1/melspectrogram_1"]
        real, imag, fb = (np.asarray(group[k]) for k in ("real_kernels:0", "imag_kernels:0", "Variable:0"))
    ours_real, ours_imag = F.dft_kernels(1024)
    # kapre stored float32 kernels of |value| <= 1 (two roundings of half an ulp each against our
    # float64) and a float32 filterbank (1 ulp at its largest weight against our float32 one).
    one_ulp = ulp32(1.0)
    assert np.abs(real[:, 0, 0] - ours_real).max() <= one_ulp and np.abs(imag[:, 0, 0] - ours_imag).max() <= one_ulp
    assert np.abs(fb - F.mel_filterbank(_spec("kapre-0.1.4-mel") | {"fmax": 4000.0})).max() <= ulp32(np.abs(fb).max())


def test_openl3_librosa_frontends_match_librosa(frames):
    # openl3 0.4 frontend='librosa' (docs/PROTOCOL.md §1.2 (c)): power_to_db(|.|, ref 1, amin 1e-10, top_db 80) - max.
    x = frames[0]
    mel = librosa.feature.melspectrogram(y=x, sr=8000, n_fft=1024, hop_length=160, n_mels=64, center=True,
                                         pad_mode="constant", power=1.0)
    lin = np.abs(librosa.stft(x, n_fft=512, hop_length=242, center=False))
    for type_, spectrum in (("openl3-0.4-librosa-mel", mel), ("openl3-0.4-librosa-linear", lin)):
        want = librosa.power_to_db(spectrum, ref=1.0, amin=1e-10, top_db=80.0)
        want -= want.max()
        got = F.AudioFrontend(_spec(type_))(frames[:1]).numpy()
        # librosa's float64 STFT rounded to complex64 and its float32 filterbank product lie
        # within the same worst-case float32 bounds as our rFFT layer does.
        bounds = _image_bounds(frames[:1], _spec(type_), "rfft")
        assert got.shape == (1, *want.shape, 1) and _within(got, bounds) and _within(want[None, ..., None], bounds)


def test_openl3_kapre_frontend_matches_tf_stft(frames):
    # openl3 0.4 frontend='kapre' (kapre 0.3.5): tf.signal.stft(pad_end=True) magnitude, Slaney mel on |X|.
    from sea_tf.backend import tf
    stft = tf.signal.stft(frames[:2], 1024, 160, 1024, window_fn=tf.signal.hann_window, pad_end=True)
    fb = librosa.filters.mel(sr=8000, n_fft=1024, n_mels=64, htk=False, norm="slaney").T
    amplitude = np.abs(stft.numpy()) @ fb
    want = 10 * np.log10(np.maximum(amplitude, 1e-10))
    want = np.maximum(want - want.max(axis=(1, 2), keepdims=True), -80.0).transpose(0, 2, 1)
    got = F.AudioFrontend(_spec("openl3-0.4-kapre-mel"))(frames[:2]).numpy()
    assert got.shape == (*want.shape, 1) == (2, 64, 50, 1)
    # Both are float32 rFFTs followed by a float32 filterbank product: the same worst-case bounds.
    bounds = _image_bounds(frames[:2], _spec("openl3-0.4-kapre-mel"), "rfft")
    assert _within(got, bounds) and _within(want[..., None], bounds)
