"""The downstream MLP of the L3/SEA literature (spec §4.1), with the scaler inside the model.

Dense(512, relu) → Dense(128, relu) → Dense(n_classes, softmax), kernel L2 1e-5 on each; Adam
1e-4, categorical cross-entropy, batch 32, up to 150 epochs, early stopping on validation loss
(patience 20) and the best-validation-loss weights restored before testing.

The StandardScaler fitted on the training frames is the model's first layer (a Keras
``Normalization`` with fixed mean/variance), so the saved classifier — and the TFLite exported
from it — takes raw embeddings.
"""
import numpy as np
from sklearn.preprocessing import StandardScaler

from sea_tf.backend import keras, tf
from sea_tf.classify import defaults
from sea_tf.errors import ClassifyError

DEFAULTS = defaults.MLP


def fit_scaler(x_train):
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


def build_mlp(dim, n_classes, mean, variance, hidden=(512, 128), l2=1e-5, name="classifier"):
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


class _BestWeights(keras.callbacks.Callback):
    """Keep the weights of the lowest validation loss in memory (the spec's ModelCheckpoint)."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch = -1
        self.weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch
            self.weights = self.model.get_weights()


class _EpochBar(keras.callbacks.Callback):
    """A tqdm bar over epochs showing the losses."""

    def __init__(self, epochs, desc, disable):
        super().__init__()
        from tqdm.auto import tqdm
        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, disable=disable)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("loss", "val_loss")})
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def train_mlp(x_train, y_train, n_classes, x_val=None, y_val=None, cfg=None, seed=0,
              progress=True, desc="epochs"):
    """Train the MLP with early stopping on the validation frames.

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
        Seeds weight initialisation and shuffling (``keras.utils.set_random_seed``).
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    model : keras.Model
        With the best-validation-loss weights.
    info : dict
        ``epochs_run``, ``best_epoch`` (1-based), ``best_val_loss``, ``train_frames``.
    """
    cfg = {**DEFAULTS, **(cfg or {})}
    x_train = np.asarray(x_train, dtype=np.float32)
    y_train = np.asarray(y_train, dtype=np.int64)
    if len(x_train) == 0:
        raise ClassifyError("no training frames: every training fold is empty; check the dataset folds")
    keras.utils.set_random_seed(int(seed))
    mean, variance = fit_scaler(x_train)
    model = build_mlp(x_train.shape[1], n_classes, mean, variance, cfg["hidden"], cfg["l2"])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    has_val = x_val is not None and len(x_val) > 0
    callbacks = [_EpochBar(cfg["epochs"], desc, disable=not progress)]
    best = None
    if has_val:
        best = _BestWeights("val_loss")
        callbacks += [best, keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["patience"])]
        validation = (np.asarray(x_val, dtype=np.float32), np.asarray(y_val, dtype=np.int64))
    else:
        validation = None
    history = model.fit(x_train, y_train, batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                        validation_data=validation, shuffle=True, verbose=0, callbacks=callbacks)
    info = {"epochs_run": len(history.history["loss"]), "train_frames": int(len(x_train))}
    if best is not None and best.weights is not None:
        model.set_weights(best.weights)
        info.update(best_epoch=best.best_epoch + 1, best_val_loss=best.best)
    return model, info


def predict_proba(model, x, batch_size=1024):
    """Frame probabilities ``float32 [n_frames, n_classes]`` of a trained MLP."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype=np.float32)
    # A direct call avoids predict()'s per-call tf.function retracing on many small arrays.
    out = [model(tf.constant(x[i:i + batch_size]), training=False).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out)
