"""A run folder is held by one process at a time; a second one is refused with the holder's pid and host.

The holder is a real second process (:func:`sea_tf.runlock.hold`, as every run folder's command
takes it) that keeps the lock until it ends; killing it with SIGKILL frees the folder (the kernel
drops an ``flock`` with its process), so a crash never leaves a folder locked.
"""
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from distill_fixtures import make_dataset, tiny_config
from sea_tf.cli import main as cli_main
from sea_tf.errors import OutputError

_HOLDER = """
import sys
from sea_tf import runlock
runlock.hold(sys.argv[1], command=sys.argv[2], name=sys.argv[3])
print("held", flush=True)
sys.stdin.read()   # until the test closes stdin or kills this process
"""


@pytest.fixture
def holder():
    """Start a process holding ``folder``'s lock; yields a function that starts it."""
    procs = []

    def start(folder, command, name=".lock"):
        proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), command, name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _holder_named(message, proc):
    return f"pid {proc.pid} on {socket.gethostname()}" in message


def test_a_second_teacher_embed_on_a_held_job_is_refused(tmp_path, holder, capsys):
    sf.write(tmp_path / "a.wav", (0.1 * np.random.default_rng(0).standard_normal(8000 * 2)).astype(np.float32), 8000)
    out = tmp_path / "out"
    proc = holder(out, "teacher-embed job 0of1", ".lock-0of1")
    argv = ["teacher-embed", "--input", str(tmp_path), "--out", str(out), "--teacher", "sea-64",
            "--shard-rows", "4", "--batch-size", "4", "--no-progress"]
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by teacher-embed job 0of1" in err[0] and _holder_named(err[0], proc), err
    assert not list(out.glob("manifest-*")) and not list(out.glob("shard-*"))   # nothing written

    os.kill(proc.pid, signal.SIGKILL)   # a holder that dies frees the folder
    proc.wait()
    assert cli_main.main(argv) == 0 and list(out.glob("manifest-0of1.json"))


def test_a_second_distill_on_a_held_out_is_refused(tmp_path, holder):
    from sea_tf.distill.train import distill

    data = make_dataset(tmp_path / "data", n_sources=10)
    out = tmp_path / "run"
    proc = holder(out, "distill")
    with pytest.raises(OutputError) as err:
        distill(tiny_config(data, out, epochs=1, steps_per_epoch=2))
    assert "in use by distill" in str(err.value) and _holder_named(str(err.value), proc)
    assert "\n" not in str(err.value)
    assert not (out / "state.json").exists() and not list(out.glob("**/*.index"))
    proc.stdin.close()   # the holder ends normally
    proc.wait()
    report = distill(tiny_config(data, out, epochs=1, steps_per_epoch=2))
    assert report["epochs_run"] == 1


def test_classify_refuses_a_held_out(tmp_path, holder, capsys):
    out = tmp_path / "bench"
    proc = holder(out, "classify us8k")
    assert cli_main.main(["classify", "us8k", "--data", str(tmp_path / "nowhere"), "--model", "sea-64",
                          "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in use by classify us8k" in err and _holder_named(err, proc)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]   # no resolved config written
