"""How well the student approximates its targets on held-out source files, and the loss figure.

- regression figures (:func:`regression_metrics`): MSE and MAE per element, R² (variance
  weighted over the d outputs: 1 − Σ squared error / Σ squared deviation from the target mean)
  and the mean cosine similarity between student outputs and targets;
- downstream (:func:`downstream_accuracy`): when the shards carry labels (UrbanSound8K input),
  the classify stage's MLP is trained on the student's embeddings of the training windows and
  scored on the held-out windows.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sklearn.metrics import r2_score

from sea_tf.backend import keras, tf

if TYPE_CHECKING:  # annotations only
    from sea_tf.distill.pairs import Split
    from sea_tf.models.seamodel import SeaModel
    from sea_tf.shards import ShardSet


def predict(model: keras.Model,
            dataset: tf.data.Dataset) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Run ``model`` over ``(audio, target)`` batches.

    Returns
    -------
    predictions, targets : np.ndarray [shape=(n, d)], float32
    """
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    preds, targets = [], []
    for audio, target in dataset:
        preds.append(forward(audio).numpy())
        targets.append(target.numpy())
    if not preds:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(preds).astype(np.float32), np.concatenate(targets).astype(np.float32)


def regression_metrics(pred: npt.ArrayLike, target: npt.ArrayLike) -> dict[str, float | int]:
    """MSE, MAE, R² and mean cosine of ``pred`` against ``target`` (both ``[n, d]``)."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    err = p - t
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1)
    cosine = np.sum(p * t, axis=1) / np.maximum(norms, 1e-12)
    return {"n_windows": int(len(p)), "mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))),
            "r2": float(r2_score(t, p, multioutput="variance_weighted")),
            "cosine": float(np.mean(cosine))}


def downstream_accuracy(student: SeaModel, shards: ShardSet, split: Split, *, seed: int, max_rows: int = 20000,
                        progress: bool) -> dict:
    """Window accuracy of the classify stage's MLP on the student's embeddings (labelled shards only).

    Returns
    -------
    dict
        ``accuracy``, ``n_train``, ``n_test``, ``n_classes``; or ``{"skipped": reason}``.
    """
    try:
        from sea_tf.classify import mlp
    except ImportError:
        return {"skipped": "the classify stage is not installed"}
    rng = np.random.default_rng(seed)
    train = _labelled(shards, split.train_rows, rng, max_rows)
    test = _labelled(shards, split.valid_rows, rng, max_rows)
    if train is None or test is None:
        return {"skipped": "the shards carry no labels (unlabelled upstream audio)"}
    (train_rows, y_train), (test_rows, y_test) = train, test
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    if len(np.unique(y_train)) < 2:
        return {"skipped": "fewer than two classes among the training windows"}
    x_train = student.embed_frames(shards.read("audio", train_rows), batch_size=64)
    x_test = student.embed_frames(shards.read("audio", test_rows), batch_size=64)
    model, info = mlp.train_mlp(x_train, y_train, n_classes, cfg={"epochs": 50}, seed=seed, progress=progress)
    accuracy = float(np.mean(np.argmax(mlp.predict_proba(model, x_test), axis=1) == y_test))
    return {"accuracy": accuracy, "n_train": int(len(y_train)), "n_test": int(len(y_test)), "n_classes": n_classes,
            "note": "window-level accuracy on held-out source files; the fold protocol is `sea-tf classify`"}


def _labelled(shards: ShardSet, rows: npt.NDArray[np.int64], rng: np.random.Generator,
              max_rows: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    labels = shards.read("label", rows) if len(rows) else np.zeros(0, np.int32)
    keep = rows[labels >= 0]
    if keep.size == 0:
        return None
    if max_rows and keep.size > max_rows:
        keep = np.sort(rng.choice(keep, int(max_rows), replace=False))
    return keep, shards.read("label", keep).astype(np.int64)


def plot_history(history: list[dict], path: Path | str, *, title: str = "distillation") -> Path:
    """Write the loss curves (train and validation MSE per epoch, log scale) as a PNG."""
    from sea_tf import atomic

    plt = atomic.pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for key, label in (("loss", "train MSE"), ("val_loss", "validation MSE")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE incl. L2)")
    if history and all((h.get("loss") or 0) > 0 for h in history):
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return atomic.save_figure(fig, path)
