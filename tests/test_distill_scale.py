"""distill at any shard count: at most ``data.max_open_files`` HDF5 files open, whatever the table's size.

One open file per shard (teacher shard + target file) ran out of descriptors under
``ulimit -n 1024`` at shard 509; here the same fault is provoked with a few hundred tiny shards
under ``ulimit -n 128``, in a real training run in a subprocess.
"""
import json
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from distill_fixtures import make_dataset, tiny_config
from sea_tf.distill import pairs as pairs_mod, pipeline
from sea_tf.errors import TrainError
from sea_tf.shards import ShardSet

FD_LIMIT = 128


def open_h5_files():
    """How many of this process's file descriptors point at ``.h5`` files (int; Linux /proc)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").endswith(".h5")
        except OSError:  # closed between listdir and readlink
            pass
    return count


@pytest.fixture(scope="module")
def many_shards(tmp_path_factory):
    # 75 sources × 8 windows in shards of 2 rows: 300 teacher shards + 300 target files, so the
    # training stream (shuffle buffer 256 rows = 128 shards) touches far more files than FD_LIMIT.
    data = make_dataset(tmp_path_factory.mktemp("scale"), n_sources=75, windows=8, shard_rows=2)
    assert len(ShardSet(data["shards"]).shards) == 300
    return data


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through Linux /proc")
def test_block_reader_keeps_at_most_max_open_files_from_many_threads(many_shards):
    pairs = pairs_mod.open_pairs([str(many_shards["shards"])], str(many_shards["targets"]), reducer_dir=None,
                                 check_rows=0, seed=0, allow_partial=False)
    shards = pairs.shards
    reader = pipeline.BlockReader(shards, max_open_files=6)
    before = open_h5_files()
    blocks = pipeline.make_blocks(shards, np.arange(shards.n_rows), block_rows=2)
    rng = np.random.default_rng(0)
    work = [blocks[rng.permutation(len(blocks))[:120]] for _ in range(4)]
    peak, errors, got = [0], [], {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], open_h5_files() - before)

    def run(part):
        try:
            for i, a, b in part:
                got[(int(i), int(a))] = reader.read(i, a, b)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=run, args=(part,)) for part in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    assert reader.n_open == 6                    # the cache is used, and full
    assert 2 <= peak[0] <= 6, peak[0]            # never more than the bound, as the OS sees it
    # Evicted and reopened files still give the right rows.
    for (i, a), (audio, target) in list(got.items())[:40]:
        rows = shards.shards[i].offset + np.arange(a, a + len(audio))
        np.testing.assert_array_equal(audio, shards.read("audio", rows))
        np.testing.assert_array_equal(target, shards.read("target", rows))
    reader.close()
    assert reader.n_open == 0 and open_h5_files() == before


def test_max_open_files_below_two_is_refused(many_shards):
    shards = ShardSet(many_shards["shards"], targets=many_shards["targets"])
    with pytest.raises(TrainError, match="max_open_files"):
        pipeline.BlockReader(shards, max_open_files=1)


# Trains under RLIMIT_NOFILE = FD_LIMIT and prints the peak number of open .h5 descriptors, sampled
# by a thread while tf.data reads blocks from its own threads.
CHILD = """
import json, os, sys, threading, yaml
from sea_tf.distill import distill, pipeline
calls, read_rows = [0], pipeline.BlockReader.read_rows
def counted(self, i, rows):  # the iid stream's (shard, row) reads
    calls[0] += 1
    return read_rows(self, i, rows)
pipeline.BlockReader.read_rows = counted
def open_h5_files():
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{{fd}}").endswith(".h5")
        except OSError:
            pass
    return count
peak, stop = [0], threading.Event()
def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], open_h5_files())
        stop.wait(0.001)
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
report = distill(yaml.safe_load(open({cfg!r})), log=lambda *a: None)
stop.set(); watcher.join()
print(json.dumps({{"peak_h5": peak[0], "epochs": report["epochs_run"], "read_rows": calls[0]}}))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through Linux /proc")
@pytest.mark.parametrize("shuffle", ["blocks", "iid"])  # iid: every batch of 16 touches up to 16 shards
def test_distill_over_300_shards_under_ulimit_128(many_shards, tmp_path, shuffle):
    cfg = tiny_config(many_shards, tmp_path / "run", epochs=1, steps_per_epoch=10)
    cfg["data"].update(block_rows=2, max_open_files=16, shuffle=shuffle)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def limit_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    done = subprocess.run([sys.executable, "-c", CHILD.format(cfg=str(cfg_path))], env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=limit_fds)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1
    assert (result["read_rows"] > 0) == (shuffle == "iid"), result
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["iterations"] == 10
    # The run's one reader holds ≤ 16; ShardSet's own short reads (the pairing check, the target
    # width) open one file at a time outside it.
    assert 2 <= result["peak_h5"] <= 16 + 1, result
