"""A distillation killed at any point of its end-of-epoch sequence resumes (runstate.py's module docstring).

The sequence: write the new checkpoints under new names → replace ``state.json`` naming them →
delete what it no longer names. One run directory is killed (SIGKILL, by the process itself at
the chosen point: a real kill of a real process) at each point in turn, each run resuming the
previous one, and after every kill ``state.json`` must name checkpoints that are all on disk.
The points are armed in an epoch where the best checkpoint changes, so an old best exists to be
deleted: the order the old code got wrong (it deleted the old best before ``state.json`` named
the new one).
"""
import json
import os
import subprocess
import sys

import yaml

from distill_fixtures import make_dataset, tiny_config
from sea_tf.distill import distill, runstate

# Runs distill and SIGKILLs itself at a point of POINTS in the first epoch ≥ first_epoch where the
# validation loss reaches a new best (mid-delete: in any epoch ≥ first_epoch, the old latest
# checkpoint is deleted every epoch). The sequence's steps are runstate's module functions: the
# child wraps them (and Path.unlink) to kill itself there.
CHILD = """
import os, pathlib, signal, sys, yaml
from sea_tf.distill import distill, runstate
point, first_epoch = sys.argv[2], int(sys.argv[3])
epoch = {"n": 0, "best_changed": False}

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def armed():
    return epoch["n"] >= first_epoch and epoch["best_changed"]

write_state = runstate.write_state
def wrapped_write_state(run_dir, state):
    best = state.get("best") or {}
    epoch["best_changed"] = best.get("epoch") == state["epoch"] and state["epoch"] >= first_epoch
    epoch["n"] = state["epoch"]
    if point == "before-state" and armed():
        die()
    write_state(run_dir, state)
    if point == "state-written" and armed():
        die()
runstate.write_state = wrapped_write_state

# Mid-deletion: killed after the first of the old checkpoint's files is gone.
unlink = pathlib.Path.unlink
def wrapped_unlink(self, *args, **kwargs):
    unlink(self, *args, **kwargs)
    if point == "mid-delete" and epoch["n"] >= first_epoch and self.name.startswith("ckpt-"):
        die()
pathlib.Path.unlink = wrapped_unlink

distill(yaml.safe_load(open(sys.argv[1])), log=lambda *a: None)
print("finished")
"""

# best-written (the new best on disk, state.json not yet replaced) leaves the same files as before-state.
POINTS = ("before-state", "state-written", "mid-delete")


def named_checkpoints(run_dir):
    """The checkpoint prefixes ``state.json`` names (list of Path) and the state."""
    state = json.loads((run_dir / "state.json").read_text())
    names = [state["latest_checkpoint"], (state.get("best") or {}).get("checkpoint")]
    return [run_dir / n for n in names if n], state


def assert_named_checkpoints_complete(run_dir):
    prefixes, state = named_checkpoints(run_dir)
    assert state["best"] is not None
    for prefix in prefixes:
        files = [p.name for p in prefix.parent.iterdir()]
        assert f"{prefix.name}.index" in files, f"state.json names {prefix}, which is gone (files: {sorted(files)})"
        assert any(f.startswith(f"{prefix.name}.data-") for f in files), (prefix, sorted(files))
    return state


def unnamed_files(run_dir):
    prefixes, _ = named_checkpoints(run_dir)
    keep = {f for p in prefixes for f in runstate.checkpoint_files(p)}
    return sorted(str(f.relative_to(run_dir)) for kind in ("latest", "best")
                  for f in (run_dir / "checkpoints" / kind).iterdir() if f not in keep)


def run_child(cfg_path, point, first_epoch):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", CHILD, str(cfg_path), point, str(first_epoch)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_killed_at_every_step_of_the_checkpoint_sequence_resumes(tmp_path):
    data = make_dataset(tmp_path / "data", n_sources=20)
    out = tmp_path / "run"
    epochs = 12
    cfg = tiny_config(data, out, epochs=epochs, steps_per_epoch=4, validation_steps=2)
    cfg["train"]["early_stopping"]["patience"] = epochs  # no early stop: every point must be reached
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    history = []
    for point in POINTS:
        resumed_from = json.loads((out / "state.json").read_text())["epoch"] if history else 0
        done = run_child(cfg_path, point, first_epoch=max(2, resumed_from + 1))
        assert done.returncode == -9, f"{point}: the child was not killed ({done.returncode}): {done.stderr[-2000:]}"
        state = assert_named_checkpoints_complete(out)
        assert state["epoch"] >= resumed_from, point
        history.append((point, state["epoch"], unnamed_files(out)))
    # What the kills left unnamed: the new best before state.json named it, the old one before deletion.
    assert any(left for _, _, left in history), history
    assert max(e for _, e, _ in history) < epochs, "the kills should all come before the last epoch"

    # The last resume, in this process: orphans removed at start, training finishes, files agree.
    report = distill(cfg, log=lambda *_: None)
    state = assert_named_checkpoints_complete(out)
    assert state["epoch"] == epochs and report["epochs_run"] == epochs
    assert [h["epoch"] for h in state["history"]] == list(range(1, epochs + 1))
    assert state["iterations"] == epochs * 4
    assert unnamed_files(out) == []
    assert report["best"]["checkpoint"] == state["best"]["checkpoint"]
    assert (out / "student.keras").is_file()


def test_start_removes_what_a_kill_left_unnamed(tmp_path):
    """Leftovers of a kill during TensorFlow's own write (partial files, its ``*_temp`` folder) go too."""
    data = make_dataset(tmp_path / "data", n_sources=20)
    out = tmp_path / "run"
    cfg = tiny_config(data, out, epochs=1, steps_per_epoch=2, validation_steps=1)
    distill(cfg, log=lambda *_: None)
    latest = out / "checkpoints" / "latest"
    (latest / "ckpt-2.index").write_bytes(b"")                     # a killed write's partial files
    (latest / "ckpt-2_temp").mkdir()
    (latest / "ckpt-2_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 10)
    (latest / "notes.txt").write_text("mine")                       # not a checkpoint: kept
    cfg["train"]["epochs"] = 2
    distill(cfg, log=lambda *_: None)
    assert unnamed_files(out) == ["checkpoints/latest/notes.txt"]
    assert json.loads((out / "state.json").read_text())["latest_checkpoint"] == "checkpoints/latest/ckpt-2"
