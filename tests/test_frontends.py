"""Front ends: the Keras layer against the numpy twin, kapre-0.1.4 semantics, stored REF constants."""
import h5py
import librosa
import numpy as np
import pytest

from device import frontends as twin
from sea_tf import frontends as F
from sea_tf.backend import keras
from sea_tf.errors import ModelError


def _spec(type_):
    if type_.endswith("-mel"):
        return F.frontend_spec(type_, sr=8000, n_dft=1024, n_hop=160, n_mels=64)
    return F.frontend_spec(type_, sr=8000, n_dft=512, n_hop=242)


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
    # float32 TF vs float64 numpy: well under a thousandth of a dB. A pure chirp's far-off bins sit
    # near float32 DFT leakage (about -70 dB on kapre's 10*log10-of-amplitude scale), so its
    # image is compared down to -40 dB; the noise windows everywhere.
    assert np.abs(ours[[0, 2, 3]] - ref[[0, 2, 3]]).max() < 1e-3
    loud = ref[1] > -40
    assert loud.mean() > 0.1 and np.abs(ours[1][loud] - ref[1][loud]).max() < 1e-3


def test_kapre_db_semantics(frames):
    image = F.AudioFrontend(_spec("kapre-0.1.4-mel"))(frames).numpy()
    assert image.min() >= -80.0 and np.allclose(image.max(axis=(1, 2, 3)), 0.0)
    assert np.all(image[3] == 0.0)           # all-zero frame: -100 - (-100) = 0 dB, not -80 (docs/PROTOCOL.md §8.1)
    assert (image[0] == -80).mean() < 0.01 and image[1].min() < -70


def test_filterbank_twin_matches_librosa():
    for sr, n_dft, n_mels, fmax, htk in [(8000, 1024, 64, 4000, True), (48000, 2048, 256, None, False),
                                         (48000, 2048, 128, None, True)]:
        ours = twin.mel_filterbank(sr, n_dft, n_mels, 0.0, fmax, htk)
        ref = librosa.filters.mel(sr=sr, n_fft=n_dft, n_mels=n_mels, fmax=fmax, htk=htk, norm="slaney").T
        assert np.abs(ours - ref).max() < 1e-7


def test_same_padding_split_and_teacher_shapes():
    assert F.stft_geometry(8000, 1024, 160, "same") == (432, 432, 50)
    assert F.stft_geometry(48000, 2048, 242, "same") == (982, 982, 199)
    shapes = {r: F.teacher_frontend_spec(r)["output_shape"] for r in ("linear", "mel128", "mel256")}
    assert shapes == {"linear": [257, 197, 1], "mel128": [128, 199, 1], "mel256": [256, 199, 1]}
    assert F.teacher_frontend_spec("mel256", "openl3-0.4-librosa")["output_shape"] == [256, 199, 1]


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
    assert F.frontend_macs(spec, "matmul") > 52_000_000          # 50 x 1024 x 1026 DFT (issue §9)
    assert F.frontend_macs(spec, "rfft") < 3_000_000


def test_stored_ref_constants_equal_ours(sea64_h5):
    with h5py.File(sea64_h5, "r") as handle:
        group = handle["model_weights/melspectrogram_1/melspectrogram_1"]
        real, imag, fb = (np.asarray(group[k]) for k in ("real_kernels:0", "imag_kernels:0", "Variable:0"))
    ours_real, ours_imag = F.dft_kernels(1024)
    assert np.abs(real[:, 0, 0] - ours_real).max() < 1e-6 and np.abs(imag[:, 0, 0] - ours_imag).max() < 1e-6
    assert np.abs(fb - F.mel_filterbank(_spec("kapre-0.1.4-mel") | {"fmax": 4000.0})).max() < 1e-7


def test_openl3_librosa_frontends_match_librosa(frames):
    # openl3 0.4 frontend='librosa' (docs/PROTOCOL.md §1.2 (c)): power_to_db(|.|, ref 1, amin 1e-10, top_db 80) - max.
    x = frames[0]
    mel = librosa.feature.melspectrogram(y=x, sr=8000, n_fft=1024, hop_length=160, n_mels=64, center=True,
                                         pad_mode="constant", power=1.0)
    lin = np.abs(librosa.stft(x, n_fft=512, hop_length=242, center=False))
    for type_, spectrum in (("openl3-0.4-librosa-mel", mel), ("openl3-0.4-librosa-linear", lin)):
        want = librosa.power_to_db(spectrum, ref=1.0, amin=1e-10, top_db=80.0)
        want -= want.max()
        got = F.AudioFrontend(_spec(type_))(frames[:1]).numpy()[0, :, :, 0]
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-3


def test_openl3_kapre_frontend_matches_tf_stft(frames):
    # openl3 0.4 frontend='kapre' (kapre 0.3.5): tf.signal.stft(pad_end=True) magnitude, Slaney mel on |X|.
    from sea_tf.backend import tf
    stft = tf.signal.stft(frames[:2], 1024, 160, 1024, window_fn=tf.signal.hann_window, pad_end=True)
    fb = librosa.filters.mel(sr=8000, n_fft=1024, n_mels=64, htk=False, norm="slaney").T
    amplitude = np.abs(stft.numpy()) @ fb
    want = 10 * np.log10(np.maximum(amplitude, 1e-10))
    want = np.maximum(want - want.max(axis=(1, 2), keepdims=True), -80.0).transpose(0, 2, 1)
    got = F.AudioFrontend(_spec("openl3-0.4-kapre-mel"))(frames[:2]).numpy()[..., 0]
    assert got.shape == want.shape == (2, 64, 50)
    loud = want > -40          # the chirp's far-off bins are float32 leakage in both (see above)
    loud[0] = True
    assert np.abs(got - want)[loud].max() < 1e-3
