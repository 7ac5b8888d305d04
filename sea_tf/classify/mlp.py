"""The downstream MLP of the L3/SEA literature (docs/PROTOCOL.md §4.1), with the scaler inside the model.

Dense(512, relu) → Dense(128, relu) → Dense(n_classes, softmax), kernel L2 1e-5 on each; Adam
1e-4, categorical cross-entropy, batch 32, up to 150 epochs, early stopping on validation loss
(patience 20) and the best-validation-loss weights restored before testing.

The StandardScaler fitted on the training frames is the model's first layer (a Keras
``Normalization`` with fixed mean/variance), so the saved classifier — and the TFLite exported
from it — takes raw embeddings.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import numpy.typing as npt
from sklearn.preprocessing import StandardScaler

from sea_tf.backend import keras, tf
from sea_tf.classify import defaults
from sea_tf.classify.epochs import train_epochs
from sea_tf.errors import ClassifyError

DEFAULTS = defaults.MLP


def fit_scaler(x_train: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """StandardScaler statistics of the training frames.

    Parameters
    ----------
    x_train : np.ndarray [shape=(n_frames, dim)]

    Returns
    -------
    mean, variance : np.ndarray [shape=(dim,)], float32
        ``variance`` is ``scale_**2`` of scikit-learn's scaler, so constant features keep
        variance 1 (they are centred, not blown up).
    """
    scaler = StandardScaler().fit(np.asarray(x_train, dtype=np.float64))
    return scaler.mean_.astype(np.float32), (scaler.scale_ ** 2).astype(np.float32)


def build_mlp(dim: int, n_classes: int, mean: np.ndarray, variance: np.ndarray, *,
              hidden: Sequence[int], l2: float, name: str = "classifier") -> keras.Model:
    """The MLP with the scaler folded in as its first layer.

    Parameters
    ----------
    dim : int
        Embedding size.
    n_classes : int
    mean, variance : np.ndarray [shape=(dim,)]
        Scaler statistics from :func:`fit_scaler`.
    hidden : sequence of int
        Hidden layer widths (ReLU).
    l2 : float
        Kernel L2 weight on every Dense layer.

    Returns
    -------
    keras.Model
        ``float32 [B, dim]`` raw embeddings → ``float32 [B, n_classes]`` probabilities.
    """
    reg = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input(shape=(dim,), name="embedding")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="scaler")(inputs)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(int(width), activation="relu", kernel_regularizer=reg, name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def epoch_function(model: keras.Model, optimizer: keras.optimizers.Optimizer, *, batch_size: int,
                   loss_fn: keras.losses.Loss | None = None) -> tuple[Callable, Callable]:
    """One compiled call per epoch: ``(train_epoch(x, y, order) -> mean loss, eval_loss(x, y))``.

    ``model.fit`` costs ~80 ms of Python per epoch on 2 cores (callbacks, iterators, validation
    set-up), which dominates the many short trainings of the fold protocol on small data; this
    loop runs the epoch's batches inside one ``tf.function`` and computes the same Adam updates on
    ``loss_fn`` (default: sparse categorical cross-entropy) + L2 as ``fit`` would.
    """
    loss_fn = loss_fn or keras.losses.SparseCategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def train_epoch(x: tf.Tensor, y: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
        n = tf.shape(order)[0]
        n_batches = (n + batch_size - 1) // batch_size
        total = tf.constant(0.0)
        for i in tf.range(n_batches):
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
                if model.losses:
                    loss += tf.add_n(model.losses)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            total += loss * tf.cast(tf.shape(idx)[0], tf.float32)
        return total / tf.cast(n, tf.float32)

    @tf.function(reduce_retracing=True)
    def eval_loss(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        loss = loss_fn(y, model(x, training=False))
        return loss + tf.add_n(model.losses) if model.losses else loss

    return train_epoch, eval_loss


def train_mlp(x_train: npt.ArrayLike, y_train: npt.ArrayLike, n_classes: int, x_val: npt.ArrayLike | None = None,
              y_val: npt.ArrayLike | None = None, *, cfg: dict | None = None, seed: int, progress: bool,
              desc: str = "epochs") -> tuple[keras.Model, dict]:
    """Train the MLP with early stopping on the validation frames.

    Training frames are reshuffled every epoch; after each epoch the validation loss (cross-entropy
    + L2, as Keras reports ``val_loss``) is computed, the weights of the lowest one are kept, and
    training stops after ``patience`` epochs without improvement.

    Parameters
    ----------
    x_train : np.ndarray [shape=(n_frames, dim)], float32
        Raw (unscaled) training embeddings; labels ``y_train`` int [n_frames].
    n_classes : int
    x_val, y_val : np.ndarray, optional
        Validation frames. Without them, training runs ``cfg["epochs"]`` epochs and keeps the
        last weights.
    cfg : dict, optional
        Keys of :data:`DEFAULTS`.
    seed : int
        Seeds weight initialisation (``keras.utils.set_random_seed``) and shuffling.
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    model : keras.Model
        With the best-validation-loss weights.
    info : dict
        ``epochs_run``, ``best_epoch`` (1-based), ``best_val_loss``, ``final_train_loss``,
        ``train_frames``.
    """
    settings = {**DEFAULTS, **(cfg or {})}
    x = np.asarray(x_train, dtype=np.float32)
    y = np.asarray(y_train, dtype=np.int64)
    if len(x) == 0:
        raise ClassifyError("no training frames: every training fold is empty; check the dataset folds")
    keras.utils.set_random_seed(int(seed))
    mean, variance = fit_scaler(x)
    model = build_mlp(x.shape[1], n_classes, mean, variance, hidden=settings["hidden"], l2=settings["l2"])
    optimizer = keras.optimizers.Adam(learning_rate=settings["learning_rate"])
    train_epoch, eval_loss = epoch_function(model, optimizer, batch_size=int(settings["batch_size"]))
    validation = None
    if x_val is not None and len(np.asarray(x_val)) > 0:
        validation = tf.constant(np.asarray(x_val, np.float32)), tf.constant(np.asarray(y_val, np.int64))
    run = train_epochs(model, train_epoch, eval_loss, tf.constant(x), tf.constant(y), validation,
                       epochs=settings["epochs"], patience=settings["patience"], seed=seed, progress=progress,
                       desc=desc, learning_rate_key="mlp.learning_rate")
    info = {"epochs_run": run["epochs_run"], "train_frames": int(len(x)),
            "final_train_loss": run["final_train_loss"]}
    if "best_epoch" in run:
        info.update(best_epoch=run["best_epoch"], best_val_loss=run["best_val_loss"])
    return model, info


def predict_proba(model: keras.Model, x: npt.ArrayLike, *, batch_size: int = 1024) -> npt.NDArray[np.float32]:
    """Frame probabilities ``float32 [n_frames, n_classes]`` of a trained MLP."""
    frames = np.asarray(x, dtype=np.float32)
    if len(frames) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    # A direct call avoids predict()'s per-call tf.function retracing on many small arrays.
    out = [model(tf.constant(frames[i:i + batch_size]), training=False).numpy()
           for i in range(0, len(frames), batch_size)]
    return np.concatenate(out)
