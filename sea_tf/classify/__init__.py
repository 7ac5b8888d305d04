"""Downstream evaluation (UrbanSound8K, ESC-50, SONYC-UST) and the deployable clip classifier (docs/PROTOCOL.md §4.1–4.3).

The entry point is :func:`run` (``sea-tf classify us8k|esc50|ust|final``: the resolved config in,
the comparison table or the classifier's card out; :mod:`tasks`). Straight-line flow below it: :mod:`features` (frame embeddings, cached per clip) → :mod:`protocol` (fold
splits: test k, validation k−1 cyclic, train the rest) → :mod:`mlp` / :mod:`svm` (frame
classifiers) → :mod:`evaluate` (clip = mean of frame probabilities, accuracies, confusion matrix)
→ :mod:`crossval` (one model over all folds) → :mod:`benchmark` (several models, one comparison
table) and :mod:`final` (the classifier to deploy). Settings and their defaults: :mod:`defaults`.

SONYC-UST (multi-label 10-s clips, splits instead of folds) reuses :mod:`features` (with every clip
fixed to 10 s) and continues with :mod:`mil` (the MIL classifier with :mod:`autopool`, and the
framewise one) → :mod:`ust_metrics` (DCASE 2019 Task 5 micro/macro AUPRC, micro F1) →
:mod:`ust` (several models, ``results.json``, the challenge's ``output.csv``, PR curves, one
comparison table).

Outputs of ``sea-tf classify us8k|esc50`` (``OUT/``)::

    comparison.json / comparison.md       one row per model: mean ± std accuracy over folds, ...
    <model>/results.json                  per-fold and per-class accuracy, summed confusion matrix
    <model>/fold-<k>.json                 one fold, with per-clip [true, predicted] (resume unit)
    <model>/confusion.png
    cache/<model>/hop<h>-<framing>/<clip>.npz   embedding [T, D], timestamps, model_key, audio_sha256

The final classifier (``sea-tf classify final``) is ``<name>.keras`` — raw embeddings
``float32 [B, D]`` → probabilities ``[B, n_classes]``, the training-frame standardisation is its
first layer (``Normalization`` named ``scaler``) — and ``<name>.card.json`` with ``kind:
"classifier"``, ``classes``, ``n_classes``, ``embedding_size``, ``embedding_model`` (the
embedding model's card), ``embedding_model_key``, ``features`` (``hop_size``, ``framing``),
``aggregation``, ``input_standardization`` (``in_model: true`` and the statistics, for reference
only: never apply them again), ``training`` and ``weights``.
"""
from __future__ import annotations

from typing import Any

from sea_tf.config import Config


def run(cfg: Config, *, task: str) -> dict[str, Any]:
    """Run the ``sea-tf classify`` task ``task`` (us8k, esc50, ust, final) on its resolved config.

    See :func:`sea_tf.classify.tasks.run`; TensorFlow is imported when a task starts, not with the
    package (``sea-tf --help`` stays fast).

        from sea_tf import classify, config
        table = classify.run(config.load("classify/us8k", data="~/UrbanSound8K", out="runs/us8k"), task="us8k")
    """
    from sea_tf.classify.tasks import run as _run
    return _run(cfg, task=task)


__all__ = ["run"]
