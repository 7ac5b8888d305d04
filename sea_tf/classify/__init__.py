"""Downstream evaluation (UrbanSound8K, ESC-50) and the deployable clip classifier (spec §4.1–4.2).

Straight-line flow: :mod:`features` (frame embeddings, cached) → :mod:`protocol` (fold splits) →
:mod:`mlp` / :mod:`svm` (frame classifiers) → :mod:`evaluate` (clip = mean of frame
probabilities, accuracies, confusion matrix) → :mod:`crossval` (one model over all folds) →
:mod:`benchmark` (several models, comparison table) and :mod:`final` (the classifier to deploy).
"""
