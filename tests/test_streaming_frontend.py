"""The streaming front end (device.frontends.StreamingFrontend) against compute_frontend, window by window.

Every front-end type, the SEA-64 and teacher geometries, hops that are multiples of the STFT hop
(frames reused) and hops that are not (the frame grid moves: everything recomputed), on generated
audio with silence, impulses and level changes, and on the recorded chirp fixture.
"""
import numpy as np
import pytest

from device import frontends as twin
from device.runner import _Quantizer
from sea_tf.models import frontends as F

# Both paths compute each frame's log-amplitude with the same float64 code; only the BLAS/FFT
# batch size differs (11 frames vs 50), which may change the last bit of a float64 sum. After the
# cast to float32 that is at most one float32 step of the largest value, |-80 dB|.
ATOL = float(np.spacing(np.float32(80.0)))


def _spec(type_, geometry):
    if geometry == "sea":
        if type_.endswith("-mel"):
            return F.frontend_spec(type_, sr=8000, n_dft=1024, n_hop=160, n_mels=64)
        return F.frontend_spec(type_, sr=8000, n_dft=512, n_hop=242)
    family, repr_ = type_.rsplit("-", 1)
    return F.teacher_frontend_spec("linear" if repr_ == "linear" else "mel128", family=family)


def generated_audio(sr, seconds, seed=0):
    """Noise, a sweep, silence (all-zero windows), clicks and a 60 dB level jump, float32."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    audio = 0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    audio[int(0.3 * n):int(0.3 * n) + 2 * sr] = 0.0                      # two seconds of digital silence
    audio[rng.integers(0, n, 12)] = 0.9                                    # clicks
    audio[int(0.7 * n):] *= 1e-3
    return audio.astype(np.float32)


def stream_images(spec, audio, hop, n_windows, quantize=None):
    fe = twin.StreamingFrontend(spec, spec["sr"])
    starts = list(range(0, len(audio) - spec["sr"] + 1, hop))[:n_windows]
    images = np.stack([fe(audio[s:s + spec["sr"]], s, quantize=quantize).copy() for s in starts])
    return fe, starts, images


def reference(spec, audio, starts):
    return twin.compute_frontend(np.stack([audio[s:s + spec["sr"]] for s in starts]), spec)


@pytest.mark.parametrize("type_", twin.FRONTEND_TYPES)
@pytest.mark.parametrize("hop", [800, 160, 480, 100, 243, 1, 4000, 8000, 11000])
def test_streaming_equals_per_window_sea_geometry(type_, hop):
    spec = _spec(type_, "sea")
    audio = generated_audio(8000, 12.0)
    fe, starts, got = stream_images(spec, audio, hop, 30)
    ref = reference(spec, audio, starts)
    assert got.shape == ref.shape == (len(starts), *spec["output_shape"])
    np.testing.assert_allclose(got, ref, rtol=0, atol=ATOL)
    if hop % spec["n_hop"] == 0 and hop < spec["sr"] - spec["n_dft"]:
        assert fe.frames_reused > 0


@pytest.mark.parametrize("type_", twin.FRONTEND_TYPES)
@pytest.mark.parametrize("hop", [4840, 4800])   # 20 STFT hops of 242 samples, and 0.1 s (not a multiple)
def test_streaming_equals_per_window_teacher_geometry(type_, hop):
    spec = _spec(type_, "teacher")
    audio = generated_audio(48000, 4.0, seed=1)
    fe, starts, got = stream_images(spec, audio, hop, 8)
    np.testing.assert_allclose(got, reference(spec, audio, starts), rtol=0, atol=ATOL)
    assert (fe.frames_reused > 0) == (hop % 242 == 0)


def test_frames_are_reused_at_a_0_1_s_hop():
    """SEA-64 at hop 0.1 s: 5 new frames + 6 that touch the 'same' padding per window, 39 reused."""
    spec = _spec("kapre-0.1.4-mel", "sea")
    fe, starts, _ = stream_images(spec, generated_audio(8000, 5.0), 800, 20)
    assert (fe.j_lo, fe.j_hi, fe.count) == (3, 47, 50)                    # 432 samples of padding each side
    assert fe.frames_computed == 50 + 19 * 11 and fe.frames_reused == 19 * 39


def test_cache_is_really_used_and_reset_forgets_it():
    """Negative control: a window whose samples disagree with the cached stream gives the old
    frames back (so the reuse is real); after reset() it is computed afresh."""
    spec = _spec("kapre-0.1.4-mel", "sea")
    audio = generated_audio(8000, 3.0)
    fe = twin.StreamingFrontend(spec, 8000)
    fe(audio[:8000], 0)
    other = np.random.default_rng(5).standard_normal(8000).astype(np.float32)
    stale = fe(other, 800).copy()
    fresh = twin.compute_frontend(other[None], spec)[0]
    assert np.abs(stale - fresh).max() > 1.0
    fe.reset()
    np.testing.assert_allclose(fe(other, 800), fresh, rtol=0, atol=ATOL)


def test_real_recording(chirp_wav):
    """The recorded chirp fixture, looped with a gap, at hop 0.1 s and at a hop of 113 samples."""
    import soundfile

    clip, sr = soundfile.read(str(chirp_wav[0]), dtype="float32")
    audio = np.concatenate([clip, np.zeros(3000, np.float32), clip[::-1], clip * 0.01])
    spec = _spec("kapre-0.1.4-mel", "sea")
    assert sr == spec["sr"]
    for hop in (800, 113):
        _, starts, got = stream_images(spec, audio, hop, 25)
        np.testing.assert_allclose(got, reference(spec, audio, starts), rtol=0, atol=ATOL)


def test_fused_quantization_equals_the_runner_quantizer():
    """int8 codes written by the front end's last pass = device.runner's quantizer on the dB image."""
    spec = _spec("kapre-0.1.4-mel", "sea")
    audio = generated_audio(8000, 4.0)
    details = {"dtype": np.int8, "quantization": (0.3137, 127), "name": "features"}
    q = _Quantizer(details)
    _, starts, codes = stream_images(spec, audio, 800, 20, quantize=(q.inv_scale, q.zero, np.int8))
    ref = np.stack([q(x).copy() for x in reference(spec, audio, starts)])
    assert codes.dtype == np.int8 and codes.shape == ref.shape
    # a dB value one float32 step away (see ATOL) can round to the neighbouring code
    assert np.abs(codes.astype(int) - ref.astype(int)).max() <= 1
    assert (codes == ref).mean() > 0.999


def test_window_of_the_wrong_length_is_refused():
    fe = twin.StreamingFrontend(_spec("kapre-0.1.4-mel", "sea"), 8000)
    with pytest.raises(ValueError, match=r"\(8000,\)"):
        fe(np.zeros(4000, np.float32), 0)
