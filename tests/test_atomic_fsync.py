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
    done = subprocess.run([STRACE, "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,"
                           "unlink,unlinkat", "-o", str(log), sys.executable, "-c", code],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr[-3000:]
    events = []
    for line in log.read_text().splitlines():
        if m := _FSYNC.match(line):
            events.append(("fsync", m["path"]))
        elif (m := _RENAME.match(line)) and " = 0" in line:
            events.append(("rename", str(tmp_path / m["src"]) if not m["src"].startswith("/") else m["src"],
                           str(tmp_path / m["dst"]) if not m["dst"].startswith("/") else m["dst"]))
        elif (m := _UNLINK.match(line)) and " = 0" in line:
            events.append(("unlink", m["path"] if m["path"].startswith("/") else str(tmp_path / m["path"])))
    return events


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
