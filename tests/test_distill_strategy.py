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
    assert report["replicas"] == 2 and report["global_batch"] == 16   # per-replica batch 8, scaled
    assert json.loads((out / "state.json").read_text())["iterations"] == 2 * 6

    # The saved student and the raw best checkpoint both load in this one-device process.
    assert len(tf.config.list_logical_devices("CPU")) == 1
    student = load_model(out / "student.keras")
    audio = np.random.default_rng(0).standard_normal((4, 8000)).astype(np.float32) * 0.1
    expected = student.embed_frames(audio)
    fresh = student_mod.build("sea-64", cfg["student"]["overrides"], 8, 8000, seed=1)
    model, _ = student_mod.training_model(fresh)
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
