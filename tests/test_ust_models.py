"""AutoPool1D against its numpy formula and at its limits; the MIL and framewise UST classifiers learn."""
import numpy as np
import pytest

from sea_tf.backend import keras, tf
from sea_tf.classify import mil
from sea_tf.classify.autopool import AutoPool1D, autopool_numpy
from sea_tf.classify.ust_metrics import ust_metrics
from sea_tf.errors import ClassifyError

# float32 softmax + weighted sum over T = 7 frames of values in [0, 1]: a few ulps of 1 each;
# 1e-6 leaves an order of magnitude of room and still catches a wrong axis or a missing weight.
TOL = 1e-6


def _pool(x, alpha):
    layer = AutoPool1D(axis=1)
    layer.build(x.shape)
    layer.alpha.assign(np.asarray(alpha, np.float32))
    return layer(tf.constant(x, tf.float32)).numpy()


def test_autopool_matches_numpy_and_its_limits():
    rng = np.random.default_rng(0)
    x = rng.random((4, 7, 3)).astype(np.float32)
    alpha = np.array([0.0, 1.5, 6.0])
    np.testing.assert_allclose(_pool(x, alpha), autopool_numpy(x, alpha), atol=TOL)
    # α = 0: the mean over time; α = 1: softmax-weighted, the framewise "softmax" aggregation.
    np.testing.assert_allclose(_pool(x, [0, 0, 0]), x.mean(axis=1), atol=TOL)
    np.testing.assert_allclose(_pool(x, [1, 1, 1]), mil.aggregate(x, "softmax"), atol=TOL)
    # Large α: the max. Frames are >= 1e-3 apart here, so α = 1e5 leaves exp(-100) on the others.
    x = (rng.permutation(7 * 3).reshape(1, 7, 3) * 1e-3 + 0.1).astype(np.float32)
    np.testing.assert_allclose(_pool(x, [1e5] * 3), x.max(axis=1), atol=TOL)
    # Negative control: pooling over the wrong axis is not the same thing.
    assert not np.allclose(_pool(x, [1.5] * 3), autopool_numpy(x.transpose(0, 2, 1), [1.5] * 7)[:, :3], atol=1e-3)


def test_autopool_alpha_stays_non_negative_and_serialises(tmp_path):
    inputs = keras.Input(shape=(5, 2))
    model = keras.Model(inputs, AutoPool1D(name="autopool")(inputs))
    pool = model.get_layer("autopool")
    assert pool.alpha.constraint(tf.constant([-2.0, 3.0])).numpy().tolist() == [0.0, 3.0]
    # A gradient step that would push α negative is clipped at 0 (the constraint runs after Adam).
    opt = keras.optimizers.SGD(learning_rate=10.0)
    x = tf.constant(np.random.default_rng(1).random((3, 5, 2)), tf.float32)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(tf.math.reduce_std(x, axis=1)) + tf.reduce_sum(model(x))
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    assert np.all(pool.alpha.numpy() >= 0)
    pool.alpha.assign([0.5, 2.0])
    model.save(tmp_path / "pool.keras")
    again = keras.models.load_model(tmp_path / "pool.keras")
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=TOL)


def _weak_labels(n_files, seed, t=10, d=6, n_classes=3):
    """Files of t frames; class c is present when a short burst (2 frames) lights up dimension c."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n_files, t, d)).astype(np.float32)
    y = rng.random((n_files, n_classes)) < 0.4
    for i, c in zip(*np.nonzero(y)):
        start = rng.integers(0, t - 2)
        x[i, start:start + 2, c] += 4.0
    return x, y.astype(int)


CFG = {"type": "mil", "n_hidden": 1, "hidden_size": 16, "l2": 1e-5, "learning_rate": 1e-2, "batch_size": 64,
       "epochs": 150, "patience": 150, "aggregation": "max"}


@pytest.mark.parametrize("cfg", [CFG, {**CFG, "type": "framewise", "aggregation": "max"}], ids=["mil", "framewise"])
def test_classifiers_learn_weak_labels(cfg):
    x, y = _weak_labels(120, 0)
    xv, yv = _weak_labels(60, 1)
    model, info = mil.fit_classifier(x, y, xv, yv, cfg=cfg, seed=3, progress=False)
    probs = mil.predict_files(model, xv, cfg=cfg)
    assert probs.shape == (60, 3) and np.all((probs >= 0) & (probs <= 1))
    # The classes are separable from the bursts; chance-level macro AUPRC would be about 0.4.
    assert ust_metrics(yv, probs, ["a", "b", "c"])["macro_auprc"] > 0.85
    assert 1 <= info["best_epoch"] <= info["epochs_run"] and info["type"] == cfg["type"]


def test_mil_network_layers_and_scaler():
    mean, var = np.arange(4, dtype=np.float32), np.full(4, 4.0, np.float32)
    model = mil.build_mil(91, 4, 8, mean, var, n_hidden=2, hidden_size=128, l2=1e-5)
    assert model.output_shape == (None, 8) and model.input_shape == (None, 91, 4)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Normalization", "TimeDistributed", "TimeDistributed", "TimeDistributed",
                     "AutoPool1D"]
    assert model.get_layer("frame_probabilities").layer.activation.__name__ == "sigmoid"
    np.testing.assert_allclose(model.get_layer("autopool").alpha.numpy(), 0.0)


def test_aggregations_and_bad_settings():
    p = np.array([[[0.1, 0.9], [0.5, 0.3]]])
    np.testing.assert_allclose(mil.aggregate(p, "max"), [[0.5, 0.9]])
    np.testing.assert_allclose(mil.aggregate(p, "mean"), [[0.3, 0.6]])
    with pytest.raises(ClassifyError, match="aggregation"):
        mil.aggregate(p, "median")
    x, y = _weak_labels(4, 0)
    with pytest.raises(ClassifyError, match="mil' or 'framewise"):
        mil.fit_classifier(x, y, None, None, cfg={**CFG, "type": "svm"}, seed=0, progress=False)
    with pytest.raises(ClassifyError, match="train split is empty"):
        mil.fit_classifier(np.zeros((0, 10, 6)), np.zeros((0, 3)), None, None, cfg=CFG, seed=0, progress=False)
