"""Board side streams long recordings: device.audio blocks give frame_audio's windows; device.bench memory is flat.

Equality is exact for the same reasons as on the host (tests/test_audio_stream.py): per-sample
downmix, framing copies samples, soxr's streaming resampler computes the one-shot one's samples.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from device import audio as daudio
from device.runner import load_artifact
from device_support import blocked_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def arts(device_artifacts):
    return device_artifacts  # conftest: the session's tiny artifacts, built once, read only


def _write(path, seconds, sr, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = (0.2 * rng.standard_normal((int(round(seconds * sr)), channels))).astype(np.float32)
    sf.write(path, x if channels > 1 else x[:, 0], sr, subtype="FLOAT")
    return path


@pytest.mark.parametrize("seconds, sr, channels", [(13.0007, 8000, 1), (0.4, 44100, 2), (1.0, 8000, 1),
                                                   (21.3, 16000, 3), (0.6, 8000, 1)])
@pytest.mark.parametrize("hop, center", [(800, True), (4000, False), (3333, True), (12000, True)])
def test_streamed_windows_equal_frame_audio(tmp_path, seconds, sr, channels, hop, center):
    path = _write(tmp_path / "x.wav", seconds, sr, channels)
    whole, sr_in = daudio.load_audio(path)
    whole, method = daudio.resample(whole, sr_in, 8000)
    reference = daudio.frame_audio(whole, 8000, hop, center=center)
    for block_frames in (1000, daudio.READ_BLOCK_FRAMES):
        sr_read, blocks = daudio.read_blocks(path, block_frames=block_frames)
        blocks, streamed_method = daudio.resample_blocks(blocks, sr_read, 8000)
        got = [(start, window.copy()) for start, window in daudio.stream_windows(blocks, 8000, hop, center=center)]
        assert streamed_method == method and [s for s, _ in got] == [k * hop for k in range(len(reference))]
        assert np.array_equal(np.stack([w for _, w in got]), reference)


def test_embed_audio_from_blocks_equals_the_whole_recording(arts, sea64_net_artifacts, tmp_path):
    """Both network paths (front end in the model; numpy streaming front end) give the same rows."""
    path = _write(tmp_path / "y.wav", 6.3, 8000)
    whole = daudio.load_audio(path)[0]
    student = sea64_net_artifacts  # conftest: the sea-64 network as fp32 .tflite, built once per run
    for model in (arts["emb_fp32"], student["net.fp32"]):
        emb = load_artifact(model)
        for batch in (1, 4):
            ref = emb.embed_frames(daudio.frame_audio(whole, 8000, 800, center=True), batch=batch)
            got = emb.embed_audio(daudio.AudioStream(path, 8000), 800, center=True, batch=batch)
            # Same windows through the same interpreter calls: the rows are bit-identical to the
            # whole-array embed_audio; against embed_frames (no STFT-row reuse) the numpy front end's
            # float64 rows agree to the interpreter's float32 input rounding.
            assert np.array_equal(got, emb.embed_audio(whole, 800, center=True, batch=batch))
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def _bench_run_increase(model, wav, tmp_path):
    out = tmp_path / f"{Path(wav).stem}.json"
    proc = subprocess.run([sys.executable, "-m", "device.bench", "--model", str(model), "--audio", str(wav),
                           "--runs", "3", "--warmup", "1", "--hop-size", "0.1", "--out-file", str(out), "--quiet"],
                          cwd=ROOT, env=blocked_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    return result["memory_mb"]["run_increase"], result["files"][0]["n_windows"]


def test_device_bench_memory_does_not_grow_with_file_length(arts, tmp_path):
    """10 minutes at 8 kHz, a window every 0.1 s, cost about what 5 seconds cost.

    Framed whole, the 6,000 windows of the 10 minutes are 6,000 x 8,000 x 4 B = 192 MB. Streamed, at
    most one read block (``READ_BLOCK_FRAMES`` frames, read, downmixed and resampled: 4 x 4 bytes
    each) and one chunk of 256 windows (gathered and stacked: 2 x 256 x 8,000 x 4 bytes) live at
    once; ``device.bench`` also keeps five timings per window for its report (well under 1 kB
    each); 16 MB cover the allocator's granularity.
    """
    short = _write(tmp_path / "short.wav", 5, 8000)
    long = tmp_path / "long.wav"
    with sf.SoundFile(str(long), "w", samplerate=8000, channels=1, subtype="PCM_16") as out:
        rng = np.random.default_rng(2)
        for _ in range(10):
            out.write((0.2 * rng.standard_normal(8000 * 60)).astype(np.float32))
    small, n_small = _bench_run_increase(arts["emb_fp32"], short, tmp_path)
    large, n_large = _bench_run_increase(arts["emb_fp32"], long, tmp_path)
    assert (n_small, n_large) == (46, 5996)   # centred: 1 + ceil((duration + 0.5 - 1) / 0.1)
    bound_mb = (4 * 4 * daudio.READ_BLOCK_FRAMES + 2 * 256 * 8000 * 4 + 1024 * n_large) / 2**20 + 16
    print(f"device.bench run increase: 5 s {small:.1f} MB, 10 min {large:.1f} MB, bound {bound_mb:.1f} MB")
    assert large - small < bound_mb, (small, large, bound_mb)
