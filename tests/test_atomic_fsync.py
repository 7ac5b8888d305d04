"""Durable writes, seen by the kernel: fsync(file) < rename < fsync(directory), traced with strace.

A rename without the fsyncs survives a killed process but not a crashed node (a zero-length
manifest after the reboot); which system calls a write makes is only visible from outside the
process, so the test runs the real functions in a child under ``strace -f -y`` and reads the order.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace)")

# `-y` prints the path behind every descriptor: fsync(3</tmp/x/.a.json.abc.tmp>) = 0
_FSYNC = re.compile(r"^\d+\s+f(?:data)?sync\(\d+<(?P<path>[^>]*)>\)\s+=\s+0")
_RENAME = re.compile(r'^\d+\s+rename(?:at2?)?\((?:[^,]+,\s*)?"(?P<src>[^"]+)",\s*(?:[^,]+,\s*)?"(?P<dst>[^"]+)"')
_UNLINK = re.compile(r'^\d+\s+unlink(?:at)?\((?:[^,]+,\s*)?"(?P<path>[^"]+)"')


def trace(tmp_path, code):
    """Run ``code`` in a child under strace; returns its fsync/rename/unlink events in order.

    Returns
    -------
    list of tuple
        ``("fsync", path)``, ``("rename", src, dst)``, ``("unlink", path)``; paths absolute.
    """
    log = tmp_path / "strace.log"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    # --seccomp-bpf: the child stops only at the traced calls, not at every one (TensorFlow's import makes
    # many): the same lines, the file's tests in 6 s instead of 14 s. Without seccomp, strace stops at all.
    done = subprocess.run([STRACE, "-f", "--seccomp-bpf", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,"
                           "renameat2,unlink,unlinkat", "-o", str(log), sys.executable, "-c", code],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr[-3000:]
    events = []
    for line in _whole_calls(log.read_text().splitlines()):
        if m := _FSYNC.match(line):
            events.append(("fsync", m["path"]))
        elif (m := _RENAME.match(line)) and " = 0" in line:
            events.append(("rename", str(tmp_path / m["src"]) if not m["src"].startswith("/") else m["src"],
                           str(tmp_path / m["dst"]) if not m["dst"].startswith("/") else m["dst"]))
        elif (m := _UNLINK.match(line)) and " = 0" in line:
            events.append(("unlink", m["path"] if m["path"].startswith("/") else str(tmp_path / m["path"])))
    return events


def _whole_calls(lines):
    """strace's lines with every call that another thread interrupted joined back into one line.

    Under ``-f`` a call that overlaps another thread's is printed as ``PID fsync(3</a> <unfinished ...>``
    and later ``PID <... fsync resumed>) = 0``; the joined line stands where the call returned, so an
    event's place in the list is its completion (what "flushed before the rename" needs).
    """
    pending = {}
    for line in lines:
        pid, _, rest = line.partition(" ")
        if rest.rstrip().endswith("<unfinished ...>"):
            pending[pid] = line.rstrip()[:-len("<unfinished ...>")].rstrip()
        elif (m := re.match(r"\s*<\.\.\. \w+ resumed>\s?(.*)", rest)) and pid in pending:
            yield pending.pop(pid) + m[1]
        else:
            yield line


def test_atomic_writes_fsync_the_file_then_rename_then_fsync_the_directory(tmp_path):
    target = tmp_path / "out" / "manifest-0of1.json"
    events = trace(tmp_path, f"from sea_tf import atomic; atomic.write_json({str(target)!r}, {{'rows': 3}})")
    renames = [e for e in events if e[0] == "rename" and e[2] == str(target)]
    assert len(renames) == 1, events
    rename = events.index(renames[0])
    tmp = renames[0][1]
    assert ("fsync", tmp) in events[:rename], f"no fsync of {tmp} before its rename: {events}"
    assert ("fsync", str(target.parent)) in events[rename + 1:], f"no fsync of {target.parent} after the rename: {events}"
    assert target.read_text().strip().startswith("{")


def test_checkpoint_files_are_flushed_before_the_state_names_them(tmp_path):
    """runstate's step 1 → 2 → 3: fsync(checkpoint files) < rename(state.json) < unlink(old checkpoint)."""
    run = tmp_path / "run"
    code = f"""
from pathlib import Path
from sea_tf.backend import tf
from sea_tf.distill import runstate
run = Path({str(run)!r})
ckpt = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
state = runstate.new_state()
for epoch in (1, 2):
    state["epoch"] = epoch
    state["latest_checkpoint"] = f"checkpoints/latest/ckpt-{{epoch}}"
    runstate.write_checkpoint(ckpt, run / state["latest_checkpoint"])
    runstate.write_state(run, state)
    runstate.remove_unnamed_checkpoints(run, state)
"""
    events = trace(tmp_path, code)
    latest = run / "checkpoints" / "latest"
    state_rename = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(run / "state.json")]
    assert len(state_rename) == 2, events
    second = state_rename[1]
    for name in ("ckpt-2.index", "ckpt-2.data-00000-of-00001"):
        flushed = [i for i, e in enumerate(events) if e == ("fsync", str(latest / name))]
        assert flushed and flushed[-1] < second, f"{name} not flushed before state.json named it: {events}"
    assert ("fsync", str(latest)) in events[:second]     # the checkpoint's new names are durable too
    deleted = [i for i, e in enumerate(events) if e == ("unlink", str(latest / "ckpt-1.index"))]
    assert deleted and deleted[0] > second, f"the old checkpoint went before state.json stopped naming it: {events}"
    assert sorted(p.name for p in latest.iterdir()) == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]


def _reduce_inputs(root):
    """Teacher shards (3 x 128 rows, 24-d) and a PCA-4 reducer fitted on every row, in ``root``."""
    import numpy as np

    from sea_tf import reduce, sampling
    from sea_tf.shards import write_table
    from stage_args_support import settings

    emb = np.random.default_rng(0).normal(size=(384, 24)).astype(np.float32)
    write_table(root / "shards", {"embedding": emb, "audio": np.zeros((384, 4), np.float32)}, {"name": "t"},
                shard_rows=128)
    sampling.sample_shards(root / "shards", root / "sample", 300, **settings("sampling", strategy="random",
                                                                              progress=False))
    reduce.fit_sample(root / "shards", root / "sample", root / "reducer",
                      **settings("reduce/fit", method="pca", d=4, quality=None))


def _apply_code(root):
    return (f"from sea_tf.reduce import apply_reducer; apply_reducer({str(root / 'reducer')!r}, "
            f"{str(root / 'shards')!r}, {str(root / 'targets')!r}, chunk_rows=100, progress=False, "
            "allow_partial=False)")


def _check_targets_flushed_before_the_card(events, out, names):
    """Every target fsynced (by its name), then its folder and ``out``, all before the card saying complete."""
    card = str(out / "card.json")
    card_renames = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == card]
    assert len(card_renames) == 2, events      # the card naming the reducer first, the complete one last
    last = card_renames[-1]
    for name in names:
        target = str(out / name)
        flushed = [i for i, e in enumerate(events) if e == ("fsync", target)]
        assert flushed and flushed[-1] < last, f"{name} not flushed before the card named it: {events}"
        renamed = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] == target]
        assert all(i < flushed[-1] for i in renamed), f"{name} renamed after its flush: {events}"
    for folder in {str((out / name).parent) for name in names} | {str(out)}:
        synced = [i for i, e in enumerate(events[:last]) if e == ("fsync", folder)]
        renames_into = [i for i, e in enumerate(events[:last]) if e[0] == "rename" and e[2].startswith(folder + "/")
                        and e[2] != card]
        assert synced and synced[-1] > max(renames_into, default=-1), \
            f"{folder}'s new names not flushed before the card: {events}"
    tmp = events[last][1]
    assert ("fsync", tmp) in events[:last] and ("fsync", str(out)) in events[last + 1:]   # the card itself: durable


def test_reduce_apply_flushes_every_target_before_the_card_names_them(tmp_path):
    """reduce apply writes each target atomically (temp file + rename) and flushes them as one batch:
    fsync(target) for each (on background threads), their folders, and only then the complete card.
    A resumed run whose targets a killed run wrote (not known to be on disk) flushes those before its card too."""
    import json

    from sea_tf.shards import ShardSet

    _reduce_inputs(tmp_path)
    out = tmp_path / "targets"
    names = ShardSet(tmp_path / "shards").target_names()
    events = trace(tmp_path, _apply_code(tmp_path))
    _check_targets_flushed_before_the_card(events, out, names)
    target_renames = [e for e in events if e[0] == "rename" and e[2] in {str(out / n) for n in names}]
    assert len(target_renames) == 3, events
    # renamed at once, flushed by their names afterwards (in the background), never one by one before the rename
    assert not [e for e in events if e[0] == "fsync" and e[1] in {r[1] for r in target_renames}], events
    # Over a finished run whose shard 1 was re-embedded since: the card stops saying complete, durably,
    # before its target is replaced (a crash in between must not leave "complete" over a lost target).
    import h5py
    with h5py.File(ShardSet(tmp_path / "shards").shards[1].path, "r+") as fh:
        fh["embedding"][...] = -fh["embedding"][...]
    events = trace(tmp_path, _apply_code(tmp_path))
    _check_targets_flushed_before_the_card(events, out, names[1:2])   # the others: flushed by the finished run
    replaced = [i for i, e in enumerate(events) if e[0] == "rename" and e[2] in {str(out / n) for n in names}]
    assert len(replaced) == 1, events
    first_card = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == str(out / "card.json"))
    assert ("fsync", events[first_card][1]) in events[:first_card], events
    assert ("fsync", str(out)) in events[first_card + 1:replaced[0]], f"the old complete card outlived the flush: {events}"
    # A killed run: its targets are whole (renamed) but its card never said complete.
    card = json.loads((out / "card.json").read_text())
    (out / "card.json").write_text(json.dumps({**card, "complete": False}))
    events = trace(tmp_path, _apply_code(tmp_path))
    assert not [e for e in events if e[0] == "rename" and e[2] in {str(out / n) for n in names}]   # all reused
    _check_targets_flushed_before_the_card(events, out, names)
