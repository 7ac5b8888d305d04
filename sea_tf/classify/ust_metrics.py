"""SONYC-UST coarse-level metrics, computed as the DCASE 2019 Task 5 evaluation does (docs/PROTOCOL.md §4.3).

The challenge's ``metrics.py`` (github.com/sonyc-project/dcase2019-task5, ``evaluate``,
``micro_averaged_auprc``, ``macro_averaged_auprc``) builds, for each coarse class:

1. thresholds = the class's predicted values ≥ 0.01, plus 1.0, unique;
2. at each threshold t a file is positive when its probability is ≥ t; TP, FP, FN are counted;
3. precision = TP / max(TP + FP, 0.5), recall = TP / max(TP + FN, 0.5) (the 0.5 only avoids 0/0:
   the numerator is then 0 anyway);
4. the points are sorted by recall, (recall 0, precision 1) is put first and (recall 1,
   precision 0) last, and the area is the trapezoid rule (``sklearn.metrics.auc``).

Macro AUPRC is the mean of the classes' areas. The micro curve takes the union of every class's
thresholds and sums TP, FP, FN over the classes; micro F1 is that curve's F = 2 / (1/P + 1/R) at
the smallest threshold ≥ 0.5.

Order of the points: a PR curve is traced by its threshold, so every curve here is integrated
from the highest threshold down (recall never decreases along it). That is the challenge code's
order for a class. For the micro curve the challenge code lists the points from the lowest
threshold up and then sorts them by recall with numpy's default, unstable sort, so the order of
points with equal recall — which changes the area — depends on numpy's version and the CPU; the
two agree whenever no two thresholds share a recall. With one class, micro = that class's AUPRC.
Per-class AUPRC, macro AUPRC and micro F1 follow the challenge code exactly; a micro AUPRC can
differ from the official script's in the last digits where recalls tie (more on a handful of files).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import auc

from sea_tf.errors import ClassifyError

MIN_THRESHOLD = 0.01   # the challenge skips lower values (speed, low-precision regime)
DENOMINATOR_FLOOR = 0.5
F1_THRESHOLD = 0.5


def thresholds_of(probabilities: np.ndarray) -> np.ndarray:
    """The challenge's thresholds for one class (or the union over classes), ascending.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_files,) or (n_files, n_classes)]

    Returns
    -------
    np.ndarray [shape=(n_thresholds,)], float64
        Unique values ≥ 0.01 with 1.0 appended.
    """
    values = np.ravel(np.asarray(probabilities, dtype=np.float64))
    return np.unique(np.append(values[values >= MIN_THRESHOLD], 1.0))


def counts(y_true: np.ndarray, y_prob: np.ndarray, thresholds: np.ndarray):
    """TP, FP, FN at every threshold (a file is positive when its probability is ≥ t).

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_files,) or (n_files, n_classes)], 0/1
    y_prob : np.ndarray, same shape, probabilities
    thresholds : np.ndarray [shape=(n_thresholds,)]

    Returns
    -------
    tp, fp, fn : np.ndarray [shape=(n_thresholds,)], int
        Summed over files (and classes when 2-D).
    """
    truth = np.asarray(y_true).astype(bool).reshape(-1)
    prob = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    predicted = prob[None, :] >= np.asarray(thresholds, dtype=np.float64)[:, None]
    tp = np.sum(predicted & truth, axis=1)
    fp = np.sum(predicted & ~truth, axis=1)
    fn = np.sum(~predicted & truth, axis=1)
    return tp, fp, fn


def precision_recall(tp, fp, fn):
    """Precision and recall with the challenge's denominators floored at 0.5."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    return tp / np.maximum(tp + fp, DENOMINATOR_FLOOR), tp / np.maximum(tp + fn, DENOMINATOR_FLOOR)


def area(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid area of a PR curve given from its highest threshold down.

    (recall 0, precision 1) is put before the points and (recall 1, precision 0) after them.

    Parameters
    ----------
    precision, recall : np.ndarray [shape=(n_thresholds,)]
        In decreasing threshold order (so recall is non-decreasing).
    """
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    p = np.concatenate([[1.0], np.asarray(precision, dtype=np.float64), [0.0]])
    return float(auc(r, p))


def class_curve(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """One class's PR curve, points from the highest threshold down (the challenge's order).

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_files,)], 0/1
    y_prob : np.ndarray [shape=(n_files,)]

    Returns
    -------
    dict
        ``threshold``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall`` (arrays), ``auprc`` (float).
    """
    t = thresholds_of(y_prob)[::-1]
    tp, fp, fn = counts(y_true, y_prob, t)
    precision, recall = precision_recall(tp, fp, fn)
    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
            "auprc": area(precision, recall)}


def micro_curve(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """The micro-averaged PR curve, points from the lowest threshold up (as the challenge lists them).

    Counting every class at threshold t directly equals the challenge's "last row of each class
    with threshold ≥ t": a class's predictions between t and its next threshold would themselves
    be thresholds of that class.

    Parameters
    ----------
    y_true, y_prob : np.ndarray [shape=(n_files, n_classes)]

    Returns
    -------
    dict
        ``threshold``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (arrays), ``auprc``.
    """
    t = thresholds_of(y_prob)
    tp, fp, fn = counts(y_true, y_prob, t)
    precision, recall = precision_recall(tp, fp, fn)
    with np.errstate(divide="ignore"):
        # 2 / (1/P + 1/R) rather than 2PR / (P + R): 0 (not 0/0) when TP = 0, as in the challenge code.
        f1 = 2.0 / (1.0 / precision + 1.0 / recall)
    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "auprc": area(precision[::-1], recall[::-1])}


def ust_metrics(y_true: np.ndarray, y_prob: np.ndarray, classes: list[str]) -> dict:
    """Micro AUPRC, macro AUPRC, micro F1 and per-class AUPRC of file-level predictions.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_files, n_classes)], 0/1
        Ground truth (the annotator-0 rows of the evaluated split).
    y_prob : np.ndarray [shape=(n_files, n_classes)], probabilities in [0, 1]
    classes : list of str
        Coarse class names, in column order.

    Returns
    -------
    dict
        ``micro_auprc``, ``macro_auprc``, ``micro_f1``, ``micro_f1_threshold`` (the threshold used),
        ``class_auprc`` ({class: AUPRC}), ``n_files``, ``positives`` ({class: count}).

    Raises
    ------
    ClassifyError
        Shapes disagree, there are no files, or a value is not finite.

    Examples
    --------
    The threshold 1.0 always adds the point (recall 0, precision 0), so even a perfect ranking
    scores less than 1 on few files:

    >>> m = ust_metrics(np.array([[1], [0]]), np.array([[0.9], [0.2]]), ["dog"])
    >>> m["micro_auprc"], m["micro_f1"]
    (0.5, 1.0)
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.shape != y_prob.shape or y_true.ndim != 2 or y_true.shape[1] != len(classes):
        raise ClassifyError(f"UST metrics need truth and probabilities of shape (files, {len(classes)}); got "
                            f"{y_true.shape} and {y_prob.shape}")
    if len(y_true) == 0:
        raise ClassifyError("UST metrics: no files to evaluate")
    if not np.all(np.isfinite(y_prob)):
        raise ClassifyError("UST metrics: the predicted probabilities contain NaN or infinity")
    per_class = {c: class_curve(y_true[:, i], y_prob[:, i])["auprc"] for i, c in enumerate(classes)}
    micro = micro_curve(y_true, y_prob)
    # The curve always reaches 1.0, so a threshold ≥ 0.5 exists.
    at = int(np.flatnonzero(micro["threshold"] >= F1_THRESHOLD)[0])
    return {"micro_auprc": micro["auprc"], "macro_auprc": float(np.mean(list(per_class.values()))),
            "micro_f1": float(micro["f1"][at]), "micro_f1_threshold": float(micro["threshold"][at]),
            "class_auprc": per_class, "n_files": int(len(y_true)),
            "positives": {c: int(y_true[:, i].sum()) for i, c in enumerate(classes)}}
