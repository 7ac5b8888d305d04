"""EdgeL3 as published: one-shot per-layer magnitude-percentile masks from the pretrained body, frozen while retraining."""
import json

import numpy as np
import pytest

from sea_tf import config
from sea_tf.distill import DEFAULTS
from sea_tf.errors import TrainError

from distill_fixtures import make_dataset, tiny_config

PUBLISHED = ("53.5", "63.5", "72.3", "87.0", "95.45")
KD_LAYERS = {"conv2d_2": 0.70, "conv2d_3": 0.70, "conv2d_4": 0.75, "conv2d_5": 0.60, "conv2d_6": 0.80,
             "conv2d_7": 0.80, "audio_embedding_layer": 0.85}


@pytest.mark.parametrize("sparsity", PUBLISHED)
def test_published_sparsity_presets(sparsity):
    cfg = config.resolve(DEFAULTS, f"distill/edgel3-sparse-{sparsity}")
    assert cfg["student"]["preset"] == "edgel3-sparse" and cfg["student"]["init"] == "openl3/mel256-env"
    assert cfg["pruning"]["schedule"] == "one-shot" and cfg["pruning"]["target_sparsity"] == float(sparsity) / 100
    kd = config.resolve(DEFAULTS, "distill/edgel3-sparse-kd")
    assert kd["student"]["init"] == "openl3/mel256-env" and kd["pruning"]["schedule"] == "one-shot"


def test_masks_from_an_l3_body_hit_each_layers_percentile(tmp_path):
    from sea_tf.distill import pruning, student as student_mod
    from sea_tf.models.builders import build_preset

    teacher = build_preset("l3-mel256-512", seed=3)       # stands in for the pretrained L3 (not cached here)
    teacher.save(tmp_path / "l3.keras")
    sparse = student_mod.build("edgel3-sparse", overrides={}, d=512, frame_samples=48000, seed=1)
    warm = student_mod.warm_start(sparse, str(tmp_path / "l3.keras"))
    assert warm["name"] == teacher.name
    network = sparse.network()
    targets = pruning.layer_targets(network, 0.9545,
                                    per_layer=[{"layer": k, "sparsity": v} for k, v in KD_LAYERS.items()],
                                    exclude=["conv2d_1"])
    before = {layer.name: np.abs(layer.get_weights()[0]) for layer in network.layers if layer.name in targets}
    masks = pruning.magnitude_masks(network, targets)
    pruning.apply_masks(network, masks)
    measured = pruning.measure_sparsity(network, targets)["layers"]
    assert "conv2d_1" not in masks and measured["conv2d_1"]["sparsity"] == 0.0
    for name, target in targets.items():
        if target == 0:
            continue
        size = before[name].size
        # The s-th percentile splits the sorted |W| at rank s·(size − 1): one weight either way of s·size.
        assert abs(measured[name]["sparsity"] - target) <= 1.0 / size + 1e-12, name
        kept = before[name][masks[name]]
        assert kept.min() > before[name][~masks[name]].max()   # the largest magnitudes are the ones kept
    assert set(masks) == set(KD_LAYERS)


def test_uncached_pretrained_l3_is_refused_with_what_to_do():
    from sea_tf.distill import student as student_mod

    sparse = student_mod.build("edgel3-sparse", overrides={}, d=512, frame_samples=48000, seed=1)
    with pytest.raises(TrainError, match=r"student.init: .*openl3/mel256-env.*sea-tf models fetch openl3/mel256-env"):
        student_mod.warm_start(sparse, "openl3/mel256-env")


def test_one_shot_masks_stay_frozen_while_retraining(tmp_path):
    from sea_tf.distill import distill
    from sea_tf.distill import pruning, student as student_mod
    from sea_tf.models import load_model

    data = make_dataset(tmp_path / "data", n_sources=10)
    cfg = tiny_config(data, tmp_path / "run", epochs=2, steps_per_epoch=4)
    cfg["pruning"].update(enabled=True, schedule="one-shot", target_sparsity=0.6, exclude=["conv2d_1"])
    start = student_mod.build(cfg["student"]["preset"], overrides=cfg["student"]["overrides"], d=data["d"],
                              frame_samples=8000, seed=int(cfg["seed"]))
    targets = pruning.layer_targets(start.network(), 0.6, per_layer=[], exclude=["conv2d_1"])
    masks = pruning.magnitude_masks(start.network(), targets)
    report = distill(cfg, log=lambda *_: None)
    assert report["sparsity"]["schedule"] == "one-shot"
    trained = load_model(tmp_path / "run" / "student.keras").network()
    for layer in trained.layers:
        if layer.name in masks:
            kernel = layer.get_weights()[0]
            assert np.all(kernel[~masks[layer.name]] == 0), layer.name        # pruned weights never came back
            assert np.count_nonzero(kernel[masks[layer.name]]) == masks[layer.name].sum()
    card = json.loads((tmp_path / "run" / "student.card.json").read_text())
    assert card["sparsity"]["schedule"] == "one-shot" and card["sparsity"]["pruned"]
    assert abs(card["sparsity"]["pruned_total"] - 0.6) < 0.02
    bad = tiny_config(data, tmp_path / "bad")
    bad["pruning"].update(enabled=True, schedule="sometimes")
    with pytest.raises(TrainError, match="pruning.schedule must be one of gradual, one-shot"):
        distill(bad, log=lambda *_: None)
