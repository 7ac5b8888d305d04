"""Audio I/O and openl3/edgel3 framing (docs/PROTOCOL.md §1.3), with every bad-input case."""
import warnings

import numpy as np
import pytest
import soundfile as sf

from sea_tf import audio as A
from sea_tf.errors import AudioError, SeaTFWarning
from tolerance_support import ulp32


def _expected_count(n, sr, hop, center):
    length = n + (sr // 2 if center else 0)
    return 1 if length <= sr else 1 + int(np.ceil((length - sr) / int(hop * sr)))


@pytest.mark.parametrize("n", [8000, 8001, 12345, 4000, 20000])
@pytest.mark.parametrize("center", [True, False])
def test_frame_counts_contents_and_timestamps(n, center):
    sr, hop = 8000, 0.1
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeaTFWarning)
        frames, ts = A.frame_audio(x, sr, hop_size=hop, center=center)
    count = _expected_count(n, sr, hop, center)
    assert frames.shape == (count, sr) and frames.dtype == np.float32
    np.testing.assert_allclose(ts, np.arange(count) * hop)
    assert A.n_frames(n, sr, hop_size=hop, center=center) == count
    padded = np.concatenate([np.zeros(sr // 2 if center else 0, np.float32), x, np.zeros(sr * 3, np.float32)])
    for k in (0, count - 1):
        np.testing.assert_array_equal(frames[k], padded[k * 800:k * 800 + sr])


def test_edgel3_examples():
    # E3 tests: 1 s with center -> 6 windows at hop 0.1; shorter than 1 s without center -> 1 window at t=0.
    frames, ts = A.frame_audio(np.full(8000, 0.1, np.float32), 8000)
    assert len(frames) == 6 and ts[-1] == pytest.approx(0.5)
    with pytest.warns(SeaTFWarning, match="shorter than the 1-s window"):
        frames, ts = A.frame_audio(np.full(3000, 0.1, np.float32), 8000, center=False)
    assert frames.shape == (1, 8000) and ts.tolist() == [0.0]
    assert np.all(frames[0, 3000:] == 0) and np.all(frames[0, :3000] == np.float32(0.1))


@pytest.mark.parametrize("bad, match", [
    (np.zeros(0, np.float32), "empty"),
    (np.full(100, np.nan, np.float32), "NaN or infinite"),
    (np.array([0.1, np.inf] * 50, np.float32), "NaN or infinite"),
    (np.zeros((10, 2, 2), np.float32), "3 dimensions"),
    (np.array(["a", "b"]), "numeric"),
])
def test_bad_audio(bad, match):
    with pytest.raises(AudioError, match=match):
        A.prepare_frames(bad, 8000, 8000)


@pytest.mark.parametrize("sr", [0, -8000, 8000.5, "8000", True, float("nan"), None])
def test_bad_sample_rates(sr):
    with pytest.raises(AudioError, match="positive integer"):
        A.prepare_frames(np.ones(8000, np.float32), sr, 8000)


@pytest.mark.parametrize("hop", [0, -0.1, float("nan"), "0.1"])
def test_bad_hop(hop):
    with pytest.raises(AudioError, match="hop_size"):
        A.frame_audio(np.ones(8000, np.float32), 8000, hop_size=hop)
    with pytest.raises(AudioError, match="shorter than one sample"):
        A.frame_audio(np.ones(8000, np.float32), 8000, hop_size=1e-5)


def test_all_zero_warns_once():
    with pytest.warns(SeaTFWarning, match="every sample is zero") as record:
        A.prepare_frames(np.zeros(9000, np.float32), 8000, 8000)
    assert len([r for r in record if "zero" in str(r.message)]) == 1


def test_resample_keeps_frequency_and_level():
    sr_in, sr_out = 44100, 8000
    t = np.arange(sr_in) / sr_in
    y = A.resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), sr_in, sr_out)
    assert y.shape == (8000,) and y.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(y[1000:7000] * np.hanning(6000)))
    assert np.argmax(spectrum) * sr_out / 6000 == pytest.approx(1000, abs=2)
    assert np.sqrt(np.mean(y[1000:7000] ** 2)) == pytest.approx(1 / np.sqrt(2), rel=1e-3)


def test_prepare_frames_downmixes_and_resamples():
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (16000, 2)).astype(np.float32)
    frames, ts = A.prepare_frames(stereo, 16000, 8000, hop_size=0.25, center=False)
    mono = A.resample(stereo.mean(axis=1), 16000, 8000)
    assert frames.shape == (1, 8000)
    np.testing.assert_allclose(frames[0], mono[:8000], atol=1e-7)


def test_load_audio_and_unreadable_files(tmp_path):
    stereo = np.random.default_rng(1).uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    audio, sr = A.load_audio(path)
    assert sr == 16000 and audio.shape == (4000, 2)
    np.testing.assert_array_equal(audio, stereo)
    truncated = tmp_path / "t.wav"
    truncated.write_bytes(path.read_bytes()[:30])
    with pytest.raises(AudioError, match="t.wav: cannot read audio"):
        A.load_audio(truncated)
    with pytest.raises(AudioError, match="no such audio file"):
        A.load_audio(tmp_path / "missing.wav")


def test_window_loudness():
    t = np.arange(8000) / 8000
    frames = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros(8000), 0.01 * np.sin(2 * np.pi * 440 * t)])
    db = A.window_loudness_db(frames)
    assert db.dtype == np.float32
    # Over 440 whole periods the mean of sin² is exactly 1/2; the float64 sums are good to ~1e-12, so
    # only the float32 result's rounding (half an ulp at 43 dB) remains.
    want = [10 * np.log10(0.5), -120.0, 10 * np.log10(0.5) - 40]
    np.testing.assert_allclose(db, want, rtol=0, atol=ulp32(43.0) / 2)


def test_find_audio_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.wav", "a.flac", "notes.txt", "sub/c.wav"):
        sf.write(tmp_path / name, np.zeros(10), 8000, format="WAV") if name.endswith(".txt") else \
            sf.write(tmp_path / name, np.zeros(10), 8000)
    assert [p.name for p in A.find_audio_files(tmp_path)] == ["a.flac", "b.wav"]
    assert [p.name for p in A.find_audio_files([tmp_path, tmp_path / "b.wav"], recursive=True)] == \
        ["a.flac", "b.wav", "c.wav"]
    with pytest.raises(AudioError, match="no such file or directory"):
        A.find_audio_files(tmp_path / "nope")


def test_integer_pcm_is_scaled():
    pcm = (np.array([0, 16384, -32768] * 3000, np.int16))
    frames, _ = A.prepare_frames(pcm, 8000, 8000, center=False)
    np.testing.assert_allclose(frames[0, :3], [0.0, 0.5, -1.0])


def test_channels_first_warns():
    with pytest.warns(SeaTFWarning) as record:
        A.prepare_frames(np.full((2, 9000), 0.1, np.float32), 8000, 8000)
    assert any("more channels than samples" in str(r.message) for r in record)


def test_truncated_wav_is_an_audio_error(tmp_path):
    import soundfile as sf

    from sea_tf.audio import load_audio
    from sea_tf.errors import AudioError
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(8000, dtype=np.float32), 8000, subtype="PCM_16")
    audio, sr = load_audio(whole)
    assert audio.shape == (8000,) and sr == 8000
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:5000])
    with pytest.raises(AudioError, match="truncated WAV"):
        load_audio(cut)
