"""The SVM alternative of the published protocol (docs/PROTOCOL.md §4.1): scaler + RBF SVC with probabilities.

``SVC(C=1, kernel="rbf", tol=1e-5, probability=True)`` on standardised frames (the probabilities
through ``CalibratedClassifierCV``, scikit-learn's replacement for ``probability=True``);
optionally C is chosen from a grid by clip accuracy on the validation fold.
"""
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from sea_tf.classify import defaults
from sea_tf.classify.evaluate import clip_probabilities
from sea_tf.errors import ClassifyError

DEFAULTS = defaults.SVM


def _fit(x, y, C, tol, seed):
    # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its documented
    # replacement: Platt (sigmoid) calibration over internal 5-fold CV, one final SVC.
    svc = SVC(C=C, kernel="rbf", tol=tol, random_state=seed)
    n_splits = int(min(5, np.bincount(np.unique(y, return_inverse=True)[1]).min()))
    clf = CalibratedClassifierCV(svc, method="sigmoid", cv=max(n_splits, 2), ensemble=False)
    return make_pipeline(StandardScaler(), clf).fit(x, y)


def train_svm(x_train, y_train, x_val=None, y_val=None, val_clip=None, cfg=None, *, seed):
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
    cfg = {**DEFAULTS, **(cfg or {})}
    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train)
    if len(x_train) == 0:
        raise ClassifyError("no training frames: every training fold is empty; check the dataset folds")
    if cfg["max_train_frames"] and len(x_train) > cfg["max_train_frames"]:
        keep = np.random.default_rng(seed).choice(len(x_train), cfg["max_train_frames"], replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    grid = list(cfg["C_grid"] or [])
    if not grid or x_val is None or len(x_val) == 0:
        return _fit(x_train, y_train, cfg["C"], cfg["tol"], seed), {"C": cfg["C"], "train_frames": len(x_train)}
    val_clip = np.asarray(val_clip)
    truth = np.full(int(val_clip.max()) + 1, -1)
    truth[val_clip] = y_val
    present = np.unique(val_clip)
    n_classes = int(max(np.max(y_train), np.max(y_val))) + 1
    scores, best = {}, None
    for C in grid:
        model = _fit(x_train, y_train, C, cfg["tol"], seed)
        probs = clip_probabilities(predict_proba(model, x_val, n_classes), val_clip)
        scores[C] = float(np.mean(probs[present].argmax(1) == truth[present]))
        if best is None or scores[C] > scores[best[0]]:
            best = (C, model)
    return best[1], {"C": best[0], "val_accuracy": {str(C): a for C, a in scores.items()},
                     "train_frames": len(x_train)}


def predict_proba(model, x, n_classes=None):
    """Frame probabilities ``[n_frames, n]``; with ``n_classes``, columns are all class ids
    (zeros for classes the SVM never saw), otherwise the columns follow ``model.classes_``."""
    probs = model.predict_proba(np.asarray(x, dtype=np.float64))
    if n_classes is None:
        return probs
    full = np.zeros((len(probs), n_classes))
    full[:, model.classes_] = probs
    return full
