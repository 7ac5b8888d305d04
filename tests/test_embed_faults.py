"""``sea-tf embed`` / ``embed_files`` under faults: memory flat in a file's length, one file's failure
(a file cut mid-stream, running out of memory) is that file's alone and the batch goes on.

Each case runs in a child process (a real ``RLIMIT_AS`` allocation limit, a real peak-RSS
high-water mark), on real files: a 5-minute WAV, two 2-s WAVs and a FLAC cut in the middle.
"""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sea_tf.audio import READ_BLOCK_FRAMES

ROOT = Path(__file__).resolve().parent.parent
SR = 8000              # sea-64's rate: no resampling, so the bounds below count windows only
BATCH = 256

# The child: warm the model (TensorFlow's threads and traces) on one short file, note the peak
# RSS / the address space, then run the case. VmHWM is the high-water mark: a spike counts.
_CHILD = r"""
import io, json, resource, sys, warnings
from contextlib import redirect_stdout
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
from sea_tf.cli import main as cli_main
from sea_tf.embed import embed_files, get_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

case, model, out = sys.argv[2], sys.argv[3], sys.argv[4]
files = sys.argv[5:]
m = get_model(model)
embed_files([files[0]], model=m, output_dir=out + "/warm", batch_size=256)
result = {}
if case == "rss":
    embed_files([files[0]], model=m, output_dir=out, batch_size=256)
    base = status("VmHWM")
    s = embed_files([files[1]], model=m, output_dir=out, batch_size=256)
    result = {"delta_mb": (status("VmHWM") - base) / 2**20, "failed": s.failed}
elif case == "rss-array":
    import soundfile as sf
    from sea_tf.embed import get_embedding
    long, sr = sf.read(files[1], dtype="float32")
    get_embedding(long[:30 * sr], sr, model=m, batch_size=256)
    base = status("VmHWM")
    emb, ts = get_embedding(long, sr, model=m, batch_size=256)
    result = {"delta_mb": (status("VmHWM") - base) / 2**20, "shape": list(emb.shape)}
else:
    extra_mb, batch = float(case.split(":")[1]), case.split(":")[2]
    limit = status("VmSize") + int(extra_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    text = io.StringIO()
    with redirect_stdout(text):
        code = cli_main.main(["embed", *files, "--model", model, "-o", out, "--batch-size", batch])
    result = {"code": code, "stdout": text.getvalue()}
print(json.dumps(result, default=str))
"""


def _child(case, model, out, files):
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), case, str(model), str(out), *map(str, files)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sea_tf.models import build_student

    d = tmp_path_factory.mktemp("embed_faults")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_student("sea-64", seed=5).save(d / "sea64.keras")
    rng = np.random.default_rng(7)
    for name in ("a", "b"):
        sf.write(d / f"short_{name}.wav", (0.1 * rng.standard_normal(2 * SR)).astype(np.float32), SR, subtype="PCM_16")
    with sf.SoundFile(str(d / "long.wav"), "w", samplerate=SR, channels=1, subtype="PCM_16") as fh:
        for _ in range(5):            # 5 minutes, a minute at a time
            fh.write((0.1 * rng.standard_normal(60 * SR)).astype(np.float32))
    sf.write(d / "whole.flac", (0.1 * rng.standard_normal(20 * SR)).astype(np.float32), SR, subtype="PCM_16")
    data = (d / "whole.flac").read_bytes()
    (d / "cut.flac").write_bytes(data[:len(data) // 2])     # the decoder loses sync half-way
    sf.write(d / "short_30s.wav", (0.1 * rng.standard_normal(30 * SR)).astype(np.float32), SR, subtype="PCM_16")
    # 2 KB of samples under a header that says 1 Hz (the old reader resampled it to 8 kHz: 16 M samples)
    from test_audio_headers import riff_wav
    riff_wav(d / "rate_1hz.wav", 1, (3000 * rng.standard_normal(1000)).astype("<i2").tobytes())
    return {"model": model, "dir": d, **{p.stem: p for p in d.iterdir() if p.suffix in (".wav", ".flac")}}


def test_a_long_file_costs_what_a_short_one_costs(files, tmp_path):
    """5 minutes at 8 kHz, a window every 0.1 s: 2,996 windows (91 MiB framed whole, and the old
    code concatenated them again: +179 MiB measured). Streamed, at most these live at once: the
    queue of windows waiting for a forward pass (under 2 x ``BATCH``) and its concatenation, one
    decoded block of ``BATCH`` windows and its float64 loudness rows (2 x ``BATCH``): 6 x ``BATCH``
    x 8,000 x 4 bytes, plus a read block of ``READ_BLOCK_FRAMES`` frames with its copies (8 x 4
    bytes each); 16 MiB cover the allocator's granularity. The baseline is a 30-s file (296
    windows, more than a batch): TensorFlow's activations for a full batch are in both."""
    bound_mb = (6 * BATCH * SR * 4 + 8 * 4 * READ_BLOCK_FRAMES) / 2**20 + 16
    got = _child("rss", files["model"], tmp_path, [files["short_30s"], files["long"]])
    print(f"embed_files peak RSS, 5 min over 30 s: +{got['delta_mb']:.1f} MiB (bound {bound_mb:.1f} MiB)")
    assert not got["failed"], got
    assert got["delta_mb"] < bound_mb, got
    emb = np.load(tmp_path / "long.npz")
    assert emb["embedding"].shape == (2996, 64) and emb["timestamps"][-1] == pytest.approx(299.5)


def test_get_embedding_of_a_long_array_holds_one_block_of_windows(files, tmp_path):
    """``get_embedding`` on the 5-minute signal already in memory: the old code framed it whole
    (91 MiB of windows); now one block of windows at a time, the same bound as for a file."""
    bound_mb = (6 * BATCH * SR * 4 + 8 * 4 * READ_BLOCK_FRAMES) / 2**20 + 16
    got = _child("rss-array", files["model"], tmp_path, [files["short_30s"], files["long"]])
    print(f"get_embedding peak RSS, 5 min over 30 s: +{got['delta_mb']:.1f} MiB (bound {bound_mb:.1f} MiB)")
    assert got["shape"] == [2996, 64]
    assert got["delta_mb"] < bound_mb, got


def test_under_a_memory_limit_the_long_file_streams_and_the_batch_goes_on(files, tmp_path):
    """48 MiB of address space over the warm model, batch 16: the old code framed the 5-minute
    file whole (a 91 MiB allocation), died with a MemoryError traceback and lost short_a's pending
    output; now every file but the cut FLAC and the WAV whose header says 1 Hz is written, and the
    summary names those two, one line each (exit 1)."""
    got = _child("limit:48:16", files["model"], tmp_path,
                 [files["short_a"], files["long"], files["rate_1hz"], files["short_b"], files["cut"]])
    lines = got["stdout"].splitlines()
    assert got["code"] == 1, got
    assert lines[0] == "processed 3, skipped 0, failed 2", lines
    assert len(lines) == 3 and "rate_1hz.wav" in lines[1] and "sample rate of 1 Hz" in lines[1]
    assert "cut.flac" in lines[2] and "cannot read audio" in lines[2]
    assert np.load(tmp_path / "long.npz")["embedding"].shape == (2996, 64)
    for name in ("short_a", "short_b"):
        assert np.load(tmp_path / f"{name}.npz")["embedding"].shape == (16, 64)   # 1 + ceil((2 + 0.5 - 1) / 0.1)
    assert not (tmp_path / "cut.npz").exists()


def test_a_file_that_runs_out_of_memory_fails_alone(files, tmp_path):
    """48 MiB over the warm model, batch 4,096: a forward pass waits for 4,096 windows (128 MiB of
    them), which the long file's windows cannot fill within the limit: numpy's MemoryError there is
    that file's failure, one line, and the files before and after it are written (short_a's
    windows, queued with the long file's, are embedded after it failed). The old code died with
    the MemoryError's traceback and wrote nothing. The allocation that fails is numpy's, far from
    TensorFlow's: a tighter limit at batch 256 can fail inside TensorFlow's kernels instead (a
    segfault, not an exception), which no Python code can report."""
    got = _child("limit:48:4096", files["model"], tmp_path,
                 [files["short_a"], files["long"], files["short_b"], files["cut"]])
    lines = got["stdout"].splitlines()
    assert got["code"] == 1, got
    assert lines[0] == "processed 2, skipped 0, failed 2", lines
    (oom,) = [line for line in lines if "long.wav" in line]
    assert "out of memory" in oom and "re-run, which resumes" in oom
    assert any("cut.flac" in line for line in lines[1:])
    for name in ("short_a", "short_b"):
        assert np.load(tmp_path / f"{name}.npz")["embedding"].shape == (16, 64)
    assert not (tmp_path / "long.npz").exists()
