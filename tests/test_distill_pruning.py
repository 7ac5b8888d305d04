"""Pruning during distillation reaches its per-layer targets after strip_pruning; QAT keeps the zeros."""
import json

import numpy as np
import pytest

from distill_fixtures import make_dataset, tiny_config
from sea_tf.distill import distill
from sea_tf.errors import TrainError


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    root = tmp_path_factory.mktemp("prune")
    data = make_dataset(root / "data", n_sources=20)
    cfg = tiny_config(data, root / "run", epochs=4, steps_per_epoch=8, learning_rate=3e-3)
    cfg["pruning"].update(enabled=True, target_sparsity=0.6, end_fraction=0.5, frequency=2,
                          per_layer=[{"layer": "audio_embedding_layer", "sparsity": 0.8}])
    cfg["qat"].update(enabled=True, epochs=1)
    return root / "run", distill(cfg, log=lambda *_: None)


def test_pruning_reaches_target_sparsity_after_strip(pruned):
    from sea_tf.models import load_model

    out, report = pruned
    card = json.loads((out / "student.card.json").read_text())
    layers = card["sparsity"]["layers"]
    assert card["sparsity"]["pruned"] is True
    assert layers["conv2d_1"]["target"] == 0.0 and layers["conv2d_1"]["sparsity"] < 0.05  # excluded by default
    assert layers["audio_embedding_layer"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    for name in ("conv2d_2", "conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6", "conv2d_7"):
        assert layers[name]["sparsity"] == pytest.approx(0.6, abs=0.01), name
    # Only epochs at full sparsity (end step 16 = end of epoch 2) may be the best checkpoint.
    assert report["best"]["epoch"] >= 2
    # The saved student is stripped (plain Conv2D) and really holds the zeros.
    student = load_model(out / "student.keras")
    kernel = student.network().get_layer("conv2d_4").get_weights()[0]
    assert type(student.network().get_layer("conv2d_4")).__name__ == "Conv2D"
    assert np.mean(kernel == 0) == pytest.approx(0.6, abs=0.01)


def test_qat_fine_tune_keeps_sparsity_and_loads(pruned):
    from sea_tf.distill import qat

    out, report = pruned
    model, card = qat.load(out / "student-qat.h5")
    assert "prune-preserving" in card["qat"]["scheme"] and card["embedding_size"] == 8
    body = model.get_layer(index=2)
    kernel = [w for w in body.weights if "conv2d_4" in w.name and "kernel" in w.name and "min" not in w.name
              and "max" not in w.name][0].numpy()
    assert np.mean(kernel == 0) == pytest.approx(0.6, abs=0.01)
    audio = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    assert model(audio).shape == (2, 8)
    assert np.isfinite(report["qat"]["held_out"]["mse"])


def test_unknown_pruned_layer_is_refused(tmp_path):
    data = make_dataset(tmp_path / "data", n_sources=6, windows=8)
    cfg = tiny_config(data, tmp_path / "run")
    cfg["pruning"].update(enabled=True, exclude=["conv9"])
    with pytest.raises(TrainError, match=r"unknown layer\(s\) \['conv9'\]"):
        distill(cfg, log=lambda *_: None)
