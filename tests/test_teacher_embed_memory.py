"""teacher-embed's memory does not grow with the input's length (#21 item 10).

A long recording spanning several shards, embedded in a real process, may cost at most about one
shard buffer more peak RSS than a short clip: the rows of a shard are copied into columns allocated
once per shard. The old buffer kept the shard's blocks in a list and concatenated them, so every
shard was held twice at its flush (and up to two more waited for the disk).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest
import soundfile as sf

from stage_args_support import settings

# Settings of both runs. The student-rate audio is 64,000 of a row's ~64,300 bytes, so a shard's
# audio column is 576 x 64,000 B = 36.9 MB: over glibc's largest mmap threshold (32 MiB), as it was
# before the columns got their own memory maps (below 32 MiB, the defaults' 1024 x 8 kHz, glibc kept
# freed shards resident: the last test here).
SETTINGS = {"hop_size": 0.1, "student_sample_rate": 16000, "shard_rows": 576, "batch_size": 32,
            "block_windows": 8, "prefetch_blocks": 2, "decode_workers": 1}
SHORT_S, LONG_S = 5.0, 200.0      # 50 windows (< one shard) and ~2,000 windows (3 full shards + a part)

# The child: warm the teacher up, reset the peak RSS, embed, report the peak's growth.
_CHILD = r'''
import json, sys
import numpy as np
from sea_tf.models import load_model
from sea_tf.teacher import extract_files

def status_bytes(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))

inputs, out, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
teacher = load_model("sea-64", seed=1)
# TensorFlow grows over its first ~60 predict calls whatever the audio; a short clip makes few.
noise = np.random.default_rng(0).standard_normal((settings["batch_size"], teacher.sample_rate)).astype(np.float32)
for _ in range(60):
    teacher.embed_frames(noise, batch_size=settings["batch_size"])
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")           # VmHWM := VmRSS, so the peak below is the embedding's own
start = status_bytes("VmRSS")
summary = extract_files(inputs, out, teacher, **settings)
print(json.dumps({"growth": status_bytes("VmHWM") - start, "rows": summary["n_rows"]}))
'''


def _peak_growth(inputs, out):
    """Peak-RSS growth (bytes) of a fresh process embedding ``inputs`` into ``out``, and its summary."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    every = settings("teacher", progress=False, **SETTINGS)   # with teacher-embed's defaults for the rest
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(inputs), str(out), json.dumps(every)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _noise(path, seconds, rate, seed):
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc (peak RSS reset)")
def test_a_long_file_costs_at_most_one_shard_buffer_more_than_a_short_one(tmp_path):
    rate = SETTINGS["student_sample_rate"]
    for name, seconds in (("short", SHORT_S), ("long", LONG_S)):
        (tmp_path / name).mkdir()
        _noise(tmp_path / name / f"{name}.wav", seconds, rate, seed=len(name))
    # Shards go to a tmpfs where there is room: writing one is then a copy in memory, never a
    # disk's fsync that could last as long as embedding the next shard.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 1 << 30 else None
    with tempfile.TemporaryDirectory(dir=shm or tmp_path) as out:
        short = _peak_growth(tmp_path / "short", os.path.join(out, "short"))
        long = _peak_growth(tmp_path / "long", os.path.join(out, "long"))
        with h5py.File(os.path.join(out, "short", "shard-0of1-00000.h5"), "r") as fh:
            row_bytes = sum(fh[key].dtype.itemsize * int(np.prod(fh[key].shape[1:])) for key in fh
                            if fh[key].dtype.kind in "fiu")
    shard_bytes = SETTINGS["shard_rows"] * row_bytes
    growth = long["growth"] - short["growth"]
    print(f"shard {shard_bytes / 2**20:.1f} MiB; growth short {short['growth'] / 2**20:.1f} MiB, "
          f"long {long['growth'] / 2**20:.1f} MiB ({long['rows']} rows), long - short {growth / 2**20:.1f} MiB")
    assert long["rows"] >= 3 * SETTINGS["shard_rows"] > 10 * short["rows"]
    # The bound, S = shard_bytes: S for the shard being filled; S/2 for the overlap with the writer
    # thread, which holds the previous shard until it is written (on a tmpfs 5-15 % of the time the
    # next shard takes to embed, so that fraction of its rows) and copies one 64-row HDF5 chunk
    # (64/576 S); 4 MiB slack for the allocator's reuse of per-batch arrays (prefetched blocks and the
    # pending batch, 2 x 8 + 32 windows of 96 kB, which a short clip holds too). The old buffer held
    # every shard twice at its flush (its list of blocks and their concatenation: 2 S whatever the
    # timing; up to two more shards waited for a slow disk): at least S/2 - 4 MiB = 13.6 MiB over.
    bound = shard_bytes * 1.5 + (4 << 20)
    assert growth <= bound, (f"a {LONG_S:.0f}-s file cost {growth / 2**20:.1f} MiB more peak RSS than a "
                             f"{SHORT_S:.0f}-s one; at most {bound / 2**20:.1f} MiB expected")


# The child: fill one shard's columns as teacher-embed does, hand them over, drop them; report the
# RSS above the start when filled and after the drop.
_RELEASE_CHILD = r'''
import sys
import numpy as np
from sea_tf.teacher.extract import _Blocks

def rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))

rows, width = int(sys.argv[1]), int(sys.argv[2])
block = {"embedding": np.ones((rows, 64), np.float32), "audio": np.ones((rows, width), np.float32),
         "source": ["a.wav"] * rows}
start = rss()
shard = _Blocks(rows)
shard.extend(block)
filled = rss() - start
columns = shard.take()
del columns
print(filled, rss() - start)
'''


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc (RSS)")
def test_a_written_shards_columns_go_back_to_the_os_whatever_mallocs_thresholds():
    # The defaults' shard: 1024 rows of 8-kHz audio, a 31.25-MiB column. Once glibc has freed one
    # mapped block of that size it serves the next from the heap (mmap threshold raised to it, up to
    # 32 MiB; trim threshold twice that), and a freed shard stayed resident: an hour at 48 kHz cost
    # +109 MB over 10 s instead of +79 (benchmarks/bench_audio_memory.py). The child starts in that
    # state; the columns must still be unmapped when the shard is dropped.
    rows, width = 1024, 8000
    column = rows * width * 4
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
    proc = subprocess.run([sys.executable, "-c", _RELEASE_CHILD, str(rows), str(width)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    filled, dropped = map(int, proc.stdout.split())
    assert filled >= 0.95 * column, f"the shard's audio column was not resident ({filled / 2**20:.1f} MiB)"
    # What may stay: the list of 1024 strings and the interpreter's own noise, far below one column.
    assert dropped <= 2 << 20, (f"{dropped / 2**20:.1f} MiB of a dropped {column / 2**20:.2f}-MiB shard stayed "
                                "resident")
