"""Transient read errors are retried with backoff before a file counts as failed; malformed files fail at once.

The fault is real, not mocked: the input list names ``mnt/x.wav`` where ``mnt`` is a symbolic link
to a directory that does not exist yet (an NFS or automounted share that is not up), so opening the
file fails with the kernel's ENOENT. The moment the first retry is logged, a background thread
renames the prepared directory into place, as a mount appearing between two attempts.
"""
import logging
import os
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from sea_tf.teacher import extract_files
from sea_tf.audio import TransientAudioError, read_mono_blocks
from sea_tf.shards import ShardSet
from stage_args_support import settings


class _MountOnRetry(logging.Handler):
    """Makes ``staging`` appear as ``target`` (a rename, from another thread) at the first retry logged."""

    def __init__(self, staging, target):
        super().__init__(logging.WARNING)
        self.staging, self.target = staging, target
        self.retries, self.thread = [], None

    def emit(self, record):
        if "retry" not in record.getMessage():
            return
        self.retries.append(record.getMessage())
        if self.thread is None:
            self.thread = threading.Thread(target=os.rename, args=(self.staging, self.target))
            self.thread.start()


@pytest.fixture
def late_mount(tmp_path):
    """``tmp/list.txt`` naming ``mnt/x.wav`` (``mnt`` → ``nfs``, absent) and a good ``here.wav``."""
    staging = tmp_path / "staging"
    staging.mkdir()
    rng = np.random.default_rng(0)
    sf.write(staging / "x.wav", (0.1 * rng.standard_normal(8000 * 3)).astype(np.float32), 16000)
    sf.write(tmp_path / "here.wav", (0.1 * rng.standard_normal(8000 * 2)).astype(np.float32), 8000)
    (tmp_path / "mnt").symlink_to(tmp_path / "nfs", target_is_directory=True)
    (tmp_path / "list.txt").write_text("mnt/x.wav\nhere.wav\n")
    return tmp_path, staging, tmp_path / "nfs"


@pytest.fixture
def handler():
    handlers = []

    def attach(staging, target, logger):
        h = _MountOnRetry(staging, target)
        logging.getLogger(logger).addHandler(h)
        handlers.append((logger, h))
        return h
    yield attach
    for logger, h in handlers:
        logging.getLogger(logger).removeHandler(h)
        if h.thread is not None:
            h.thread.join()


@pytest.fixture(scope="module")
def teacher():
    from sea_tf.models import load_model
    return load_model("sea-64", seed=3)


def _extract(inputs, out, teacher, **kw):
    return extract_files(inputs, out, teacher,
                         **settings("teacher", shard_rows=8, batch_size=4, progress=False, decode_workers=1, **kw))


def test_a_mount_that_comes_up_between_attempts_is_read(late_mount, handler, teacher):
    root, staging, target = late_mount
    mount = handler(staging, target, "sea_tf.teacher")
    summary = _extract(root / "list.txt", root / "out", teacher, read_retries=3, read_backoff_s=0.2)
    assert summary["failed"] == [] and len(mount.retries) >= 1
    assert "mnt/x.wav" in mount.retries[0] and "No such file" in mount.retries[0]
    # The rows are those of a run that never saw the fault.
    reference = _extract(root / "list.txt", root / "reference", teacher, read_retries=0)
    assert reference["failed"] == [] and reference["n_rows"] == summary["n_rows"]
    got, want = ShardSet(root / "out"), ShardSet(root / "reference")
    rows = np.arange(got.n_rows)
    for key in ("embedding", "audio", "timestamp", "loudness_db"):
        assert np.array_equal(got.read(key, rows), want.read(key, rows)), key
    assert list(got.read("source", rows)) == list(want.read("source", rows))


def test_without_retries_the_file_is_recorded_as_failed(late_mount, handler, teacher):
    root, staging, target = late_mount
    mount = handler(staging, target, "sea_tf.teacher")
    summary = _extract(root / "list.txt", root / "out", teacher, read_retries=0)
    assert [f["source"] for f in summary["failed"]] == ["mnt/x.wav"] and mount.retries == []
    assert "TransientAudioError" in summary["failed"][0]["error"] and "1 time(s)" in summary["failed"][0]["error"]


def test_retries_run_out_with_backoff(late_mount):
    root, _, _ = late_mount   # nothing ever mounts
    log = logging.getLogger("test_read_retries.exhaust")
    seen = []
    log.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: seen.append(time.perf_counter())})())
    start = time.perf_counter()
    with pytest.raises(TransientAudioError, match=r"failed 3 time\(s\)"):
        read_mono_blocks(root / "mnt" / "x.wav", retries=2, backoff_s=0.1, log=log)
    elapsed = time.perf_counter() - start
    # Two retries, after 0.1 s and 0.2 s: the waits double.
    assert len(seen) == 2 and elapsed >= 0.3
    assert seen[1] - seen[0] >= 0.1


def test_a_malformed_file_fails_at_once(tmp_path, teacher):
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really audio")
    sf.write(tmp_path / "good.wav", np.full(8000, 0.1, np.float32), 8000)
    start = time.perf_counter()
    summary = _extract(tmp_path, tmp_path / "out", teacher, read_retries=3, read_backoff_s=120.0)
    # A retry would have slept 120 s, far above a loaded machine's run of two tiny files: the
    # malformed file was not retried.
    assert time.perf_counter() - start < 120.0
    assert [f["source"] for f in summary["failed"]] == ["junk.wav"]
    assert "Format not recognised" in summary["failed"][0]["error"]


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_a_read_that_fails_mid_file_resumes_where_it_stopped(tmp_path, monkeypatch, ext):
    """An errno in the middle of a file (injected here: a real one needs a failing disk) reopens
    the file at the frame where the read failed, so the blocks are those of an undisturbed read;
    opening and reading share one budget of retries per file."""
    path = tmp_path / f"x.{ext}"
    sf.write(path, (0.1 * np.random.default_rng(2).standard_normal((50001, 2))).astype(np.float32), 22050)
    reference = list(read_mono_blocks(path, block_frames=4096)[1])
    read, calls = sf.SoundFile.read, []

    def flaky(self, *args, **kwargs):
        calls.append(None)
        if len(calls) in (3, 7):    # the 3rd and the 7th read of the run fail
            raise OSError(5, "Input/output error")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", flaky)
    log = logging.getLogger("test_read_retries.mid_file")
    _, blocks = read_mono_blocks(path, block_frames=4096, retries=2, backoff_s=0.01, log=log)
    got = list(blocks)
    assert len(got) == len(reference) and all(np.array_equal(g, r) for g, r in zip(got, reference))
    calls.clear()
    _, blocks = read_mono_blocks(path, block_frames=4096, retries=1, backoff_s=0.01, log=log)
    with pytest.raises(TransientAudioError, match=r"reading failed 2 time\(s\)"):
        list(blocks)
