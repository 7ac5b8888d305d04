"""MirroredStrategy on 2 logical CPU devices (the only multi-device setup on this machine).

Logical devices must be configured before TensorFlow creates its context, so training runs in a
fresh process through the CLI (``--cpu-devices 2``); its checkpoint is then loaded here, on one device.
"""
import json
import os
import subprocess
import sys

import numpy as np
import yaml

from distill_fixtures import make_dataset, tiny_config
from tolerance_support import forward_atol


def test_two_device_mirrored_training_loads_on_one_device(tmp_path):
    from sea_tf.backend import tf
    from sea_tf.distill import student as student_mod
    from sea_tf.models import load_model

    data = make_dataset(tmp_path / "data", n_sources=20)
    out = tmp_path / "run"
    cfg = tiny_config(data, out, epochs=2, steps_per_epoch=6, batch_size=8)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "sea_tf", "distill", "--config", str(cfg_path), "--cpu-devices", "2",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    # The published recipe: one global batch of 8 split across the 2 replicas, not 8 each.
    assert report["replicas"] == 2 and report["global_batch"] == 8 and report["per_replica_batch"] == [4, 4]
    assert json.loads((out / "state.json").read_text())["iterations"] == 2 * 6

    # The saved student and the raw best checkpoint both load in this one-device process.
    assert len(tf.config.list_logical_devices("CPU")) == 1
    student = load_model(out / "student.keras")
    audio = np.random.default_rng(0).standard_normal((4, 8000)).astype(np.float32) * 0.1
    expected = student.embed_frames(audio)
    fresh = student_mod.build("sea-64", overrides=cfg["student"]["overrides"], head="published", d=8,
                              frame_samples=8000, seed=1)
    model, _ = student_mod.training_model(fresh, mixed_precision=False)
    best = json.loads((out / "state.json").read_text())["best"]["checkpoint"]
    tf.train.Checkpoint(model=model).restore(str(out / best)).expect_partial()
    # The same weights in another graph (the training model): only the kernels' sum order may differ.
    np.testing.assert_allclose(model(audio, training=False).numpy(), expected, rtol=0,
                               atol=forward_atol(student.keras, expected))
    assert not np.allclose(expected, 0)


def test_mixed_precision_trains_and_saves_a_float32_student(tmp_path):
    from sea_tf.backend import keras
    from sea_tf.distill import distill
    from sea_tf.models import load_model

    data = make_dataset(tmp_path / "data", n_sources=10)
    cfg = tiny_config(data, tmp_path / "run", epochs=1, steps_per_epoch=4)
    cfg["strategy"]["mixed_precision"] = True
    report = distill(cfg, log=lambda *_: None)
    assert keras.mixed_precision.global_policy().name == "float32"   # left as it was
    assert np.isfinite(report["held_out"]["mse"])
    student = load_model(tmp_path / "run" / "student.keras")
    assert {w.dtype for w in student.keras.get_weights()} == {np.dtype("float32")}
    assert all(layer.dtype == "float32" for layer in student.network().layers)


# Runs in a fresh process with 2 logical CPU devices: one epoch's batches as the 2 replicas receive
# them, next to the same stream on one device (as a 1-GPU run reads it).
_EPOCH_SCRIPT = """
import json, sys
import numpy as np
from sea_tf.distill import pairs as pairs_mod, pipeline, strategy as strategy_mod
from sea_tf.distill.train import global_batch
data, steps = json.loads(sys.argv[1]), int(sys.argv[2])
strategy = strategy_mod.make_strategy("auto", cpu_devices=2)
pairs = pairs_mod.open_pairs([data["shards"]], data["targets"], reducer_dir=data["reducer"], check_rows=2, seed=0,
                             allow_partial=False)
split = pairs_mod.split_by_source(pairs.shards, valid_fraction=0.2, seed=0)
blocks = pipeline.make_blocks(pairs.shards, split.train_rows, block_rows=32)
batch = global_batch(8, strategy.num_replicas_in_sync)
one = [a.numpy() for a, _ in
       pipeline.train_dataset(pairs.shards, blocks, batch_size=batch, seed=0, shuffle="blocks", shuffle_buffer=256,
                              cycle_length=4).take(steps)]
dist = strategy.experimental_distribute_dataset(pipeline.train_dataset(pairs.shards, blocks, batch_size=batch, seed=0,
                                                                       shuffle="blocks", shuffle_buffer=256,
                                                                       cycle_length=4))
sizes, rows = [], []
for _, (audio, _) in zip(range(steps), dist):
    parts = [t.numpy() for t in strategy.experimental_local_results(audio)]
    sizes.append([len(p) for p in parts])
    rows.append(np.concatenate(parts))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "sizes": sizes,
                  "same_rows": all(np.array_equal(a, b) for a, b in zip(one, rows))}))
"""


def test_one_epoch_on_two_replicas_sees_the_rows_of_one_device(tmp_path):
    from sea_tf.distill.train import global_batch, per_replica_batches

    data = make_dataset(tmp_path / "data", n_sources=20)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    arg = json.dumps({k: str(data[k]) for k in ("shards", "targets", "reducer")})
    done = subprocess.run([sys.executable, "-c", _EPOCH_SCRIPT, arg, "5"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["replicas"] == 2 and seen["sizes"] == [[4, 4]] * 5
    assert seen["same_rows"]   # replica 0 + replica 1 of each step = that step's batch on one device
    assert global_batch(64, 2) == 64 and global_batch(64, 2, scale_with_replicas=True) == 128
    assert per_replica_batches(64, 3) == [22, 21, 21]
