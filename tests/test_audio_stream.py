"""Block streaming of long files (host ``sea_tf.audio.stream_windows``): the whole-file windows, flat memory.

Equality is exact, not within a tolerance: the downmix is a per-sample channel mean (the same
numbers in a block as in the whole array), framing only copies samples, and soxr's streaming
resampler feeds a FIFO into the very filter blocks the one-shot ``soxr.resample`` runs, so how the
input is chunked never reaches the arithmetic. Loudness is a per-row float64 mean.
"""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sea_tf import config
from sea_tf.audio import (READ_BLOCK_FRAMES, WindowFramer, frame_audio, load_audio, prepare_frames,
                          n_frames, read_mono_blocks, stream_windows, window_loudness_db)
from sea_tf.errors import AudioError

ROOT = Path(__file__).resolve().parent.parent


def _write(path, seconds, sr, channels=1, seed=0, subtype="FLOAT"):
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    x = (0.2 * rng.standard_normal((n, channels))).astype(np.float32)
    x[:, 0] += (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
    sf.write(path, x if channels > 1 else x[:, 0], sr, subtype=subtype)
    return path


def _whole(path, rates, hop, center):
    """What teacher-embed framed before: the whole file, each rate, the smaller window count."""
    audio, sr = load_audio(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_rate = [prepare_frames(audio, sr, r, hop_size=hop, center=center) for r in rates]
    n = min(len(ts) for _, ts in per_rate)
    return [f[:n] for f, _ in per_rate], per_rate[0][1][:n]


def _streamed(path, rates, hop, center, block_windows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks = list(stream_windows(path, rates, hop_size=hop, center=center, block_windows=block_windows))
    starts = [b.start for b in blocks]
    sizes = [len(b.timestamps) for b in blocks]
    assert starts == list(np.cumsum([0] + sizes)[:-1]) and all(s == block_windows for s in sizes[:-1])
    frames = [np.concatenate([b.frames[j] for b in blocks]) for j in range(len(rates))]
    return frames, np.concatenate([b.timestamps for b in blocks]), np.concatenate([b.loudness_db for b in blocks])


# (seconds, source rate, channels): odd lengths, a file shorter than one window (with and without
# the centring pad), exactly one window, multichannel, and longer than several read blocks.
FILES = [(7.0003, 48000, 1), (0.31, 44100, 2), (1.0, 8000, 1), (0.7, 16000, 1), (3.1, 22050, 3),
         (2 * READ_BLOCK_FRAMES / 16000 + 0.123, 16000, 2)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    return [_write(root / f"f{i}_{sr}_{ch}.wav", s, sr, ch, seed=i) for i, (s, sr, ch) in enumerate(FILES)]


@pytest.mark.parametrize("rates", [[48000, 8000], [16000], [8000, 44100]])
@pytest.mark.parametrize("hop, center", [(0.1, True), (0.5, True), (0.37, False), (1.5, True), (0.5, False)])
def test_streamed_windows_equal_whole_file_framing(files, rates, hop, center):
    for path in files:
        for block_windows in (1, 7, 32):
            (whole, ts), (streamed, sts, loud) = _whole(path, rates, hop, center), \
                _streamed(path, rates, hop, center, block_windows)
            for j in range(len(rates)):
                assert streamed[j].shape == whole[j].shape, (path.name, rates[j], block_windows)
                assert np.array_equal(streamed[j], whole[j]), (path.name, rates[j], block_windows)
            assert np.array_equal(sts, ts) and np.array_equal(loud, window_loudness_db(whole[0]))


@pytest.mark.parametrize("subtype, ext", [("PCM_16", "flac"), ("VORBIS", "ogg")])
def test_compressed_formats_stream_too(tmp_path, subtype, ext):
    """FLAC and Ogg Vorbis decode sequentially: the blocks are the whole file's samples."""
    path = _write(tmp_path / f"x.{ext}", 9.3, 44100, channels=2, subtype=subtype)
    whole, _ = _whole(path, [48000, 8000], 0.5, True)
    streamed, _, _ = _streamed(path, [48000, 8000], 0.5, True, 16)
    assert all(np.array_equal(a, b) for a, b in zip(streamed, whole))


def test_framer_matches_frame_audio_whatever_the_push_sizes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(52_345).astype(np.float32)
    ref, _ = frame_audio(x, 8000, hop_size=0.3, center=True)
    for sizes in ([52_345], [1] * 50 + [52_295], list(rng.integers(1, 9000, 30))):
        framer, out, done = WindowFramer(8000, hop_size=0.3, center=True), [], 0
        for n in sizes:
            out.append(framer.push(x[done:done + n]))
            done += n
        out.append(framer.push(x[done:]))
        out.append(framer.finish())
        assert np.array_equal(np.concatenate(out), ref)
    # Negative control: the other centring gives other windows, so the comparison can fail.
    framer = WindowFramer(8000, hop_size=0.3, center=False)
    other = np.concatenate([framer.push(x), framer.finish()])
    assert other.shape != ref.shape or not np.array_equal(other, ref)


def test_bad_input_is_an_audio_error(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(AudioError, match="junk.wav"):
        list(stream_windows(tmp_path / "junk.wav", [8000]))
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match="empty"):
        list(stream_windows(tmp_path / "empty.wav", [8000]))
    x = np.zeros(20000, np.float32)
    x[15000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(read_mono_blocks(tmp_path / "nan.wav", block_frames=4096)[1])


# A child that frames one file with sea-tf teacher-embed's decoder and prints its peak RSS over the
# peak after imports (VmHWM: the high-water mark, so a short spike counts).
_CHILD = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
from pathlib import Path
from sea_tf import config
from sea_tf.teacher.decode import _decode
from sea_tf.teacher.inputs import InputFile
cfg = config.load("teacher")   # teacher-embed's decoding settings
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
item = InputFile(Path(sys.argv[2]), "x.wav")
base = peak()
n = 0
blocks = _decode(item, 48000, 8000, hop_size=0.5, center=True, resampler=cfg["resampler"],
                 block_windows=cfg["block_windows"], read_retries=0, read_backoff_s=cfg["read_backoff_s"])
for block in [blocks] if isinstance(blocks, dict) else blocks:   # a dict: the whole file at once
    n += len(block["timestamp"])
print(json.dumps({"delta_mb": peak() - base, "windows": n}))
"""


def _peak_delta(path):
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_file_length(tmp_path):
    """20 minutes at 48 kHz cost what 10 s cost, within a bound computed from the block size.

    Framing the 20 minutes whole holds the source (230 MB as float32) and 2,400 windows at 48 kHz
    (460 MB). Streamed, at most these live at once: the windows of a few blocks at both rates (the
    one being filled, the one being yielded, its concatenation and the float64 loudness rows: 4 x
    ``block_windows`` x (48,000 + 8,000) x 4 bytes) and a read block of ``READ_BLOCK_FRAMES`` frames
    with its resampled and framed copies (8 x 4 bytes per frame); 16 MB cover the allocator's
    granularity and soxr's filter state.
    """
    block_windows = config.load("teacher")["block_windows"]   # the child's decoding blocks
    short = _write(tmp_path / "short.wav", 10, 48000, subtype="PCM_16")
    long = tmp_path / "long.wav"
    with sf.SoundFile(str(long), "w", samplerate=48000, channels=1, subtype="PCM_16") as out:
        rng = np.random.default_rng(1)
        for _ in range(20):   # a minute at a time: the test itself never holds the file
            out.write((0.2 * rng.standard_normal(48000 * 60)).astype(np.float32))
    bound_mb = (4 * block_windows * (48000 + 8000) * 4 + 8 * 4 * READ_BLOCK_FRAMES) / 2**20 + 16
    small, large = _peak_delta(short), _peak_delta(long)
    assert (large["windows"], small["windows"]) == (n_frames(1200 * 48000, 48000, hop_size=0.5),
                                                    n_frames(480000, 48000, hop_size=0.5))
    print(f"peak RSS over imports: 10 s {small['delta_mb']:.1f} MB, 20 min {large['delta_mb']:.1f} MB, "
          f"bound on the difference {bound_mb:.1f} MB")
    assert large["delta_mb"] - small["delta_mb"] < bound_mb, (small, large, bound_mb)
