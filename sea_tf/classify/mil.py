"""The SONYC-UST classifiers (docs/PROTOCOL.md §4.3): multiple-instance learning with AutoPool, and framewise.

MIL: a file's frame embeddings ``[T, d]`` → ``n_hidden`` × TimeDistributed(Dense(h, relu, L2)) →
TimeDistributed(Dense(8, sigmoid, L2)) → :class:`~sea_tf.classify.autopool.AutoPool1D` over
time → file probabilities ``[8]``, trained on file labels with binary cross-entropy. Framewise: the
same layers on single frames, each frame trained on its file's labels; a file is the max, mean
or softmax-weighted average of its frames. Both: Adam, the published 1e-5 / batch 64 / 1500
epochs with patience 1500 (``configs/classify/ust.yaml``), the best validation loss restored, and
the StandardScaler fitted on the training frames folded in as the first layer.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from sea_tf.backend import keras, tf
from sea_tf.classify.autopool import AutoPool1D
from sea_tf.classify.epochs import train_epochs
from sea_tf.classify.mlp import epoch_function, fit_scaler
from sea_tf.errors import ClassifyError

AGGREGATIONS = ("max", "mean", "softmax")


def _dense_stack(x: tf.Tensor, n_hidden: int, hidden_size: int, n_classes: int, l2: float,
                 time_distributed: bool) -> tf.Tensor:
    reg = keras.regularizers.l2(l2) if l2 else None

    def wrap(layer: keras.layers.Layer, name: str) -> keras.layers.Layer:
        return keras.layers.TimeDistributed(layer, name=name) if time_distributed else layer

    for i in range(int(n_hidden)):
        x = wrap(keras.layers.Dense(int(hidden_size), activation="relu", kernel_regularizer=reg), f"dense_{i}")(x)
    return wrap(keras.layers.Dense(n_classes, activation="sigmoid", kernel_regularizer=reg), "frame_probabilities")(x)


def build_mil(n_frames: int, dim: int, n_classes: int, mean: np.ndarray, variance: np.ndarray, *, n_hidden: int,
              hidden_size: int, l2: float, name: str = "ust_mil") -> keras.Model:
    """The MIL network: raw embeddings ``float32 [B, T, dim]`` → file probabilities ``[B, n_classes]``.

    Parameters
    ----------
    n_frames : int
        Frames per file (T; 91 at the L3E framing of a 10-s clip with hop 0.1 s).
    dim : int
    n_classes : int
    mean, variance : np.ndarray [shape=(dim,)]
        Training-frame scaler (:func:`sea_tf.classify.mlp.fit_scaler`).
    n_hidden, hidden_size : int
        Hidden TimeDistributed ReLU layers and their width (0 = linear → sigmoid → AutoPool).
    l2 : float
        Kernel L2 weight of every Dense layer.
    """
    inputs = keras.Input(shape=(int(n_frames), int(dim)), name="embeddings")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="scaler")(inputs)
    frames = _dense_stack(x, n_hidden, hidden_size, n_classes, l2, time_distributed=True)
    return keras.Model(inputs, AutoPool1D(axis=1, name="autopool")(frames), name=name)


def build_framewise(dim: int, n_classes: int, mean: np.ndarray, variance: np.ndarray, *, n_hidden: int,
                    hidden_size: int, l2: float, name: str = "ust_framewise") -> keras.Model:
    """The framewise network: one embedding ``float32 [B, dim]`` → sigmoid probabilities ``[B, n_classes]``."""
    inputs = keras.Input(shape=(int(dim),), name="embedding")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="scaler")(inputs)
    return keras.Model(inputs, _dense_stack(x, n_hidden, hidden_size, n_classes, l2, False), name=name)


def aggregate(frame_probs: npt.ArrayLike, how: str) -> npt.NDArray[np.float64]:
    """File probabilities from frame probabilities ``[N, T, C]`` → ``[N, C]``.

    ``softmax`` weights frame t by softmax_t(p_t), i.e. AutoPool with α = 1.
    """
    p = np.asarray(frame_probs, dtype=np.float64)
    if how == "max":
        return p.max(axis=1)
    if how == "mean":
        return p.mean(axis=1)
    if how == "softmax":
        w = np.exp(p - p.max(axis=1, keepdims=True))
        return (p * w / w.sum(axis=1, keepdims=True)).sum(axis=1)
    raise ClassifyError(f"unknown framewise aggregation {how!r}; choose one of {', '.join(AGGREGATIONS)}")


def _epoch_function(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                    batch_size: int) -> tuple[Callable, Callable]:
    # The classify stage's compiled epoch loop (1500 epochs of Keras fit() would spend most of their
    # time in per-epoch Python), on binary cross-entropy.
    return epoch_function(model, optimizer, batch_size=batch_size, loss_fn=keras.losses.BinaryCrossentropy())


def train_network(model: keras.Model, x_train: npt.ArrayLike, y_train: npt.ArrayLike, x_val: npt.ArrayLike | None,
                  y_val: npt.ArrayLike | None, *, cfg: dict, seed: int, progress: bool,
                  desc: str = "epochs") -> tuple[keras.Model, dict]:
    """Adam on binary cross-entropy + L2, keeping the weights of the lowest validation loss.

    Parameters
    ----------
    model : keras.Model
    x_train : np.ndarray [shape=(N, ...)], float32
    y_train : np.ndarray [shape=(N, n_classes)], 0/1
    x_val, y_val : np.ndarray or None
        Without them, ``cfg["epochs"]`` epochs run and the last weights stay.
    cfg : dict
        ``learning_rate``, ``batch_size``, ``epochs``, ``patience``.

    Returns
    -------
    model : keras.Model
    info : dict
        ``epochs_run``, ``best_epoch``, ``best_val_loss``, ``final_train_loss``, ``train_items``.
    """
    optimizer = keras.optimizers.Adam(learning_rate=float(cfg["learning_rate"]))
    train_epoch, eval_loss = _epoch_function(model, optimizer, int(cfg["batch_size"]))
    x_t, y_t = tf.constant(np.asarray(x_train, np.float32)), tf.constant(np.asarray(y_train, np.float32))
    validation = None
    if x_val is not None and len(np.asarray(x_val)) > 0:
        validation = tf.constant(np.asarray(x_val, np.float32)), tf.constant(np.asarray(y_val, np.float32))
    run = train_epochs(model, train_epoch, eval_loss, x_t, y_t, validation, epochs=cfg["epochs"],
                       patience=cfg["patience"], seed=seed, progress=progress, desc=desc,
                       learning_rate_key="classifier.learning_rate")
    info = {"epochs_run": run["epochs_run"], "final_train_loss": run["final_train_loss"],
            "train_items": int(len(np.asarray(x_train)))}
    if "best_epoch" in run:
        info.update(best_epoch=run["best_epoch"], best_val_loss=run["best_val_loss"])
    return model, info


def fit_classifier(x_train: npt.ArrayLike, y_train: npt.ArrayLike, x_val: npt.ArrayLike | None,
                   y_val: npt.ArrayLike | None, *, cfg: dict, seed: int,
                   progress: bool) -> tuple[keras.Model, dict]:
    """Train the MIL or framewise classifier on file embeddings.

    Parameters
    ----------
    x_train : np.ndarray [shape=(N, T, d)], float32
        Raw frame embeddings of the training files.
    y_train : np.ndarray [shape=(N, n_classes)], 0/1
        File targets.
    x_val, y_val : np.ndarray, optional
        Validation files (early stopping / best-weights selection).
    cfg : dict
        The ``classifier`` section of ``classify ust``: ``type`` (``mil`` | ``framewise``),
        ``n_hidden``, ``hidden_size``, ``l2``, ``learning_rate``, ``batch_size``, ``epochs``,
        ``patience``, ``aggregation``.
    seed : int

    Returns
    -------
    model : keras.Model
        MIL: ``[B, T, d] → [B, C]``; framewise: ``[B, d] → [B, C]``.
    info : dict
        :func:`train_network`'s, plus ``type``.
    """
    x = np.asarray(x_train, np.float32)
    if x.ndim != 3 or len(x) == 0:
        raise ClassifyError(f"no training files (embeddings of shape {x.shape}); the train split is empty")
    n, t, d = x.shape
    n_classes = int(np.shape(y_train)[1])
    keras.utils.set_random_seed(int(seed))
    mean, variance = fit_scaler(x.reshape(-1, d))
    arch = {"n_hidden": cfg["n_hidden"], "hidden_size": cfg["hidden_size"], "l2": cfg["l2"]}
    if cfg["type"] == "mil":
        model = build_mil(t, d, n_classes, mean, variance, **arch)
        model, info = train_network(model, x, y_train, x_val, y_val, cfg=cfg, seed=seed, progress=progress,
                                    desc="MIL epochs")
    elif cfg["type"] == "framewise":
        if cfg["aggregation"] not in AGGREGATIONS:
            raise ClassifyError(f"unknown framewise aggregation {cfg['aggregation']!r}; choose one of "
                                f"{', '.join(AGGREGATIONS)}")
        model = build_framewise(d, n_classes, mean, variance, **arch)

        def frames(files: npt.ArrayLike | None,
                   targets: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
            # every frame inherits its file's targets
            return (None, None) if files is None else (np.asarray(files, np.float32).reshape(-1, d),
                                                       np.repeat(np.asarray(targets), np.shape(files)[1], axis=0))

        (xf, yf), (xvf, yvf) = frames(x, y_train), frames(x_val, y_val)
        assert xf is not None and yf is not None  # the training files are there (checked above)
        model, info = train_network(model, xf, yf, xvf, yvf, cfg=cfg, seed=seed, progress=progress,
                                    desc="framewise epochs")
    else:
        raise ClassifyError(f"unknown UST classifier {cfg['type']!r}; choose 'mil' or 'framewise'")
    info["type"] = cfg["type"]
    return model, info


def predict_files(model: keras.Model, x: npt.ArrayLike, *, cfg: dict,
                  batch_size: int = 256) -> npt.NDArray[np.float64]:
    """File probabilities ``float64 [N, C]`` of files ``x [N, T, d]`` (framewise: aggregated frames)."""
    files = np.asarray(x, np.float32)
    n, t, d = files.shape
    if cfg["type"] == "framewise":
        flat = files.reshape(-1, d)
        out = np.concatenate([model(tf.constant(flat[i:i + batch_size * t]), training=False).numpy()
                              for i in range(0, len(flat), batch_size * t)])
        return aggregate(out.reshape(n, t, -1), cfg["aggregation"])
    return np.concatenate([model(tf.constant(files[i:i + batch_size]), training=False).numpy()
                           for i in range(0, n, batch_size)]).astype(np.float64)
