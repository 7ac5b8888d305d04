"""Resume: a distillation killed with SIGKILL continues from its latest checkpoint when re-run, and ends
where the same run without the kill ends."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from distill_fixtures import make_dataset, tiny_config
from sea_tf.backend import keras, tf
from sea_tf.distill import distill, runstate

HERE = Path(__file__).resolve().parent

CHILD = """
import sys, yaml
sys.path.insert(0, {tests!r})
from sea_tf.distill import distill, runstate
distill(yaml.safe_load(open({cfg!r})), log=lambda *a: None)
"""


class Probe(keras.callbacks.Callback):
    """Records what the resumed run starts from (it runs after the run's own callbacks)."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_train_begin(self, logs=None):
        opt = self.model.optimizer
        moments = [v for v in opt.variables if v.name.startswith("m/")]
        assert moments, [v.name for v in opt.variables][:5]
        self.seen = {"iterations": int(opt.iterations.numpy()), "lr": float(opt.learning_rate.numpy()),
                     "moment_norm": float(sum(np.abs(v.numpy()).sum() for v in moments))}

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.setdefault("first_epoch", epoch)


def test_killed_run_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data", n_sources=20)
    out = tmp_path / "run"
    cfg = tiny_config(data, out, epochs=40, steps_per_epoch=12, learning_rate=1e-2)
    cfg["train"]["reduce_lr"]["patience"] = 1  # so the LR and plateau state have moved by the kill
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(HERE), cfg=str(cfg_path))], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state_path = out / "state.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if state_path.exists() and json.loads(state_path.read_text())["epoch"] >= 3:
                break
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    state = json.loads(state_path.read_text())
    done = state["epoch"]
    assert 3 <= done < 40, "the child should have been killed mid-run"
    assert state["iterations"] == done * 12

    # The checkpoint on disk holds the optimizer state the resumed run must start from.
    reader = tf.train.load_checkpoint(str(out / state["latest_checkpoint"]))
    saved_iterations = int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"))
    assert saved_iterations == done * 12

    cfg["train"]["epochs"] = done + 2  # a resumable change: train two more epochs
    restored = {}
    original = runstate.RunState.on_train_begin

    def spy(self, logs=None):
        original(self, logs)
        restored["es"] = {"wait": self.es.wait, "best": self.es.best}
        restored["rlr"] = {"wait": self.rlr.wait, "best": self.rlr.best, "cooldown_counter": self.rlr.cooldown_counter}

    monkeypatch.setattr(runstate.RunState, "on_train_begin", spy)
    probe = Probe()
    report = distill(cfg, log=lambda *_: None, callbacks=[probe])
    seen = probe.seen
    assert seen["first_epoch"] == done                      # epoch counter restored
    assert seen["iterations"] == done * 12                  # optimizer step restored
    assert seen["moment_norm"] > 0                          # Adam moments restored, not fresh zeros
    assert seen["lr"] == np.float32(state["history"][-1]["lr"])  # LR (after any plateau cuts) restored
    final = json.loads(state_path.read_text())
    assert [h["epoch"] for h in final["history"]] == list(range(1, done + 3))
    assert final["iterations"] == (done + 2) * 12
    assert final["history"][:done] == state["history"]      # nothing before the kill was redone
    # EarlyStopping / ReduceLROnPlateau continue from their saved counters (Keras resets them to zero).
    assert restored["es"]["wait"] == state["early_stopping"]["wait"]
    assert restored["es"]["best"] == state["early_stopping"]["best"] < np.inf
    assert restored["rlr"] == state["reduce_lr"]
    assert report["epochs_run"] == done + 2

    # The same training without the kill: the resumed run saw the same batches in the same order
    # (the input order is a function of the seed and the position, not of when the run started),
    # so on this machine every operation had the same operands: equal bit for bit, not "close".
    straight_cfg = {**cfg, "out": str(tmp_path / "straight")}
    straight = distill(straight_cfg, log=lambda *_: None)
    straight_state = json.loads((tmp_path / "straight" / "state.json").read_text())
    assert [h["loss"] for h in final["history"]] == [h["loss"] for h in straight_state["history"]]
    assert [h["val_loss"] for h in final["history"]] == [h["val_loss"] for h in straight_state["history"]]
    resumed_weights = _checkpoint_tensors(out / final["latest_checkpoint"])
    straight_weights = _checkpoint_tensors(tmp_path / "straight" / straight_state["latest_checkpoint"])
    assert resumed_weights.keys() == straight_weights.keys()
    differ = [k for k in resumed_weights if not np.array_equal(resumed_weights[k], straight_weights[k])]
    assert not differ, differ[:5]
    assert report["held_out"]["mse"] == straight["held_out"]["mse"]


def _checkpoint_tensors(prefix):
    """Every model and optimizer tensor of a checkpoint (name -> array)."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_training_stream_restarts_at_any_position(tmp_path):
    """Batch k of a stream started at ``rows_done = j·B`` is batch j + k of the stream from the start.

    Positions inside a group, at a group boundary and past a pass boundary (the pass has 128 rows,
    not a multiple of the batch of 24), with groups of 4 blocks of 16 rows.
    """
    from sea_tf.distill import pairs as pairs_mod, pipeline

    data = make_dataset(tmp_path / "data", n_sources=20)
    pairs = pairs_mod.open_pairs([str(data["shards"])], str(data["targets"]), reducer_dir=None, check_rows=0, seed=0,
                                 allow_partial=False)
    split = pairs_mod.split_by_source(pairs.shards, valid_fraction=0.2, seed=0)
    blocks = pipeline.make_blocks(pairs.shards, split.train_rows, block_rows=16)
    assert len(split.train_rows) == 128 and pipeline.blocks_per_group(blocks, 64) == 4
    batch, n = 24, 20
    reader = pipeline.BlockReader(pairs.shards)
    full = [t.numpy() for _, t in
            pipeline.train_dataset(pairs.shards, blocks, batch_size=batch, seed=7, shuffle="blocks", shuffle_buffer=64,
                                   cycle_length=4,
                                   reader=reader).take(n)]
    # One pass holds every training row once, in an order that is not the row order.
    first_pass = np.concatenate(full)[:128]
    expected = pairs.shards.read("target", split.train_rows)
    assert sorted(map(bytes, first_pass)) == sorted(map(bytes, expected))
    assert not np.array_equal(first_pass, expected)
    for j in (1, 2, 5, 6, 11):  # rows 24, 48, 120, 144 (pass 2), 264 (pass 3)
        resumed = pipeline.train_dataset(pairs.shards, blocks, batch_size=batch, seed=7, shuffle="blocks",
                                         shuffle_buffer=64,
                                         cycle_length=4, rows_done=j * batch, reader=reader)
        for k, (_, target) in enumerate(resumed.take(n - j)):
            assert np.array_equal(target.numpy(), full[j + k]), (j, k)
    reader.close()
