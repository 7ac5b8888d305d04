"""The SVM alternative of the published protocol (docs/PROTOCOL.md §4.1): scaler + RBF SVC with probabilities.

``SVC(C=1, kernel="rbf", tol=1e-5, probability=True)`` on standardised frames (the probabilities
through ``CalibratedClassifierCV``, scikit-learn's replacement for ``probability=True``);
optionally C is chosen from a grid by clip accuracy on the validation fold.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from sea_tf.classify import defaults
from sea_tf.classify.evaluate import clip_probabilities
from sea_tf.errors import ClassifyError

DEFAULTS = defaults.SVM


def _fit(x: np.ndarray, y: np.ndarray, C: float, tol: float, seed: int) -> Pipeline:
    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its documented
    # replacement: Platt (sigmoid) calibration over internal 5-fold CV, one final SVC.
    svc = SVC(C=C, kernel="rbf", tol=tol, random_state=seed)
    n_splits = int(min(5, np.bincount(np.unique(y, return_inverse=True)[1]).min()))
    clf = CalibratedClassifierCV(svc, method="sigmoid", cv=max(n_splits, 2), ensemble=False)
    return make_pipeline(StandardScaler(), clf).fit(x, y)


def train_svm(x_train: npt.ArrayLike, y_train: npt.ArrayLike, x_val: npt.ArrayLike | None = None,
              y_val: npt.ArrayLike | None = None, val_clip: npt.ArrayLike | None = None, *, cfg: dict | None = None,
              seed: int) -> tuple[Pipeline, dict]:
    """Fit the SVM, choosing C on the validation clips when ``cfg["C_grid"]`` is non-empty.

    Parameters
    ----------
    x_train : np.ndarray [shape=(n_frames, dim)]
    y_train : np.ndarray [shape=(n_frames,)], int
    x_val, y_val : np.ndarray, optional
        Validation frames and labels.
    val_clip : np.ndarray [shape=(n_val_frames,)], int, optional
        Clip index of each validation frame (for clip-level accuracy in the C search).
    cfg : dict, optional
        Keys of :data:`DEFAULTS`; ``max_train_frames`` > 0 subsamples training frames
        (an RBF SVM is quadratic in the frame count).
    seed : int

    Returns
    -------
    model : sklearn Pipeline
        With ``predict_proba``; classes are ``model.classes_`` (labels seen in training).
    info : dict
        ``C`` and, after a search, ``val_accuracy`` per C.
    """
    settings = {**DEFAULTS, **(cfg or {})}
    x = np.asarray(x_train, dtype=np.float64)
    y = np.asarray(y_train)
    if len(x) == 0:
        raise ClassifyError("no training frames: every training fold is empty; check the dataset folds")
    if settings["max_train_frames"] and len(x) > settings["max_train_frames"]:
        keep = np.random.default_rng(seed).choice(len(x), settings["max_train_frames"], replace=False)
        x, y = x[keep], y[keep]
    grid = list(settings["C_grid"] or [])
    if not grid or x_val is None or len(np.asarray(x_val)) == 0:
        return _fit(x, y, settings["C"], settings["tol"], seed), {"C": settings["C"], "train_frames": len(x)}
    val_clips = np.asarray(val_clip)
    truth = np.full(int(val_clips.max()) + 1, -1)
    truth[val_clips] = y_val
    present = np.unique(val_clips)
    n_classes = int(max(np.max(y), np.max(np.asarray(y_val)))) + 1
    scores: dict[float, float] = {}
    best: tuple[float, Pipeline] | None = None
    for C in grid:
        model = _fit(x, y, C, settings["tol"], seed)
        probs = clip_probabilities(predict_proba(model, x_val, n_classes=n_classes), val_clips)
        scores[C] = float(np.mean(probs[present].argmax(1) == truth[present]))
        if best is None or scores[C] > scores[best[0]]:
            best = (C, model)
    assert best is not None  # the grid is not empty
    return best[1], {"C": best[0], "val_accuracy": {str(C): a for C, a in scores.items()},
                     "train_frames": len(x)}


def predict_proba(model: Pipeline, x: npt.ArrayLike, *, n_classes: int | None = None) -> np.ndarray:
    """Frame probabilities ``[n_frames, n]``; with ``n_classes``, columns are all class ids
    (zeros for classes the SVM never saw), otherwise the columns follow ``model.classes_``."""
    probs = model.predict_proba(np.asarray(x, dtype=np.float64))
    if n_classes is None:
        return probs
    full = np.zeros((len(probs), n_classes))
    full[:, model.classes_] = probs
    return full
