"""SONYC-UST coarse-level metrics: the DCASE 2019 Task 5 evaluator's numbers (docs/PROTOCOL.md §4.3).

The challenge's evaluator (``metrics.py`` + ``evaluate_predictions.py`` of
github.com/sonyc-project/urban-sound-tagging-baseline: ``evaluate``, ``micro_averaged_auprc``,
``macro_averaged_auprc``) builds, for each coarse class:

1. thresholds = the class's predicted values ≥ 0.01, plus 1.0, unique, listed from the highest down;
2. at each threshold t a file is positive when its probability is ≥ t; TP, FP, FN are counted;
3. precision = TP / max(TP + FP, 0.5), recall = TP / max(TP + FN, 0.5) (the 0.5 only avoids 0/0:
   the numerator is then 0 anyway);
4. the points are sorted by recall with numpy's default ``argsort`` (quicksort kind: not stable),
   (recall 0, precision 1) is put first and (recall 1, precision 0) last, and the area is the
   trapezoid rule (``sklearn.metrics.auc``).

Macro AUPRC is the mean of the classes' areas, in taxonomy order. The micro curve takes the union
of every class's thresholds, listed from the lowest up, sums TP, FP, FN over the classes and is
sorted and integrated as in 4; micro F1 is that curve's F = 2 / (1/P + 1/R) at the smallest
threshold ≥ 0.5.

Order of tied points: points of equal recall keep whatever order numpy's unstable sort leaves them
in, and that order changes the area (the tied point next to the previous recall is the one the
trapezoid joins). This module hands the sort the same values in the same listing order with the
same call (``np.argsort``, default kind), so its ties break as the evaluator's do on the same numpy
and CPU, and ``micro_auprc``, ``macro_auprc``, ``class_auprc`` equal the evaluator's numbers. The
areas integrated in threshold order — the PR curve as its threshold traces it, independent of any
sort — are reported beside them (``micro_auprc_threshold_order``, ``macro_auprc_threshold_order``);
the two agree whenever no two thresholds share a recall.

Where the evaluator's confusion matrix is undefined (``sklearn.metrics.confusion_matrix`` returns a
1 × 1 matrix when truth and prediction hold one label only, e.g. a class with no positive file and no
prediction of 1.0, and the evaluator then stops with an IndexError) the counts here are still exact.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import auc

from sea_tf.errors import ClassifyError

MIN_THRESHOLD = 0.01   # the evaluator skips lower values (speed, low-precision regime)
DENOMINATOR_FLOOR = 0.5
F1_THRESHOLD = 0.5


def thresholds_of(probabilities: np.ndarray) -> np.ndarray:
    """The evaluator's thresholds for one class (or the union over classes), ascending.

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


def counts(y_true: np.ndarray, y_prob: np.ndarray,
           thresholds: np.ndarray) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.int_], npt.NDArray[np.int_]]:
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


def precision_recall(tp: npt.ArrayLike, fp: npt.ArrayLike,
                     fn: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Precision and recall with the challenge's denominators floored at 0.5."""
    t, f_p, f_n = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    return t / np.maximum(t + f_p, DENOMINATOR_FLOOR), t / np.maximum(t + f_n, DENOMINATOR_FLOOR)


def area(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid area of a PR curve given from its highest threshold down (threshold order, no sort).

    (recall 0, precision 1) is put before the points and (recall 1, precision 0) after them.

    Parameters
    ----------
    precision, recall : np.ndarray [shape=(n_thresholds,)]
        In decreasing threshold order (so recall is non-decreasing).
    """
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    p = np.concatenate([[1.0], np.asarray(precision, dtype=np.float64), [0.0]])
    return float(auc(r, p))


def evaluator_area(precision: np.ndarray, recall: np.ndarray) -> float:
    """The evaluator's area: points sorted by recall with numpy's default ``argsort``, padded, trapezoid rule.

    Parameters
    ----------
    precision, recall : np.ndarray [shape=(n_thresholds,)]
        In the evaluator's listing order (a class: highest threshold first; micro: lowest first).
        The order matters only for points of equal recall, which the unstable sort may permute.

    Returns
    -------
    float
        The area with (recall 0, precision 1) before and (recall 1, precision 0) after the sorted points.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    # The evaluator's own call: default kind (quicksort, unstable; SIMD-dispatched by numpy), never
    # kind="stable", so that tied recalls come out in the order its run gives them.
    order = np.argsort(recall)
    return area(precision[order], recall[order])


def class_curve(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """One class's PR curve, points from the highest threshold down (the evaluator's listing).

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_files,)], 0/1
    y_prob : np.ndarray [shape=(n_files,)]

    Returns
    -------
    dict
        ``threshold``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall`` (arrays), ``auprc`` (the
        evaluator's area, float), ``auprc_threshold_order`` (the area in threshold order, float).
    """
    t = thresholds_of(y_prob)[::-1]
    tp, fp, fn = counts(y_true, y_prob, t)
    precision, recall = precision_recall(tp, fp, fn)
    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
            "auprc": evaluator_area(precision, recall), "auprc_threshold_order": area(precision, recall)}


def micro_curve(y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """The micro-averaged PR curve, points from the lowest threshold up (the evaluator's listing).

    Counting every class at threshold t directly equals the challenge's "last row of each class
    with threshold ≥ t": a class's predictions between t and its next threshold would themselves
    be thresholds of that class.

    Parameters
    ----------
    y_true, y_prob : np.ndarray [shape=(n_files, n_classes)]

    Returns
    -------
    dict
        ``threshold``, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (arrays), ``auprc`` (the
        evaluator's area), ``auprc_threshold_order`` (the area from the highest threshold down).
    """
    t = thresholds_of(y_prob)
    tp, fp, fn = counts(y_true, y_prob, t)
    precision, recall = precision_recall(tp, fp, fn)
    with np.errstate(divide="ignore"):
        # 2 / (1/P + 1/R) rather than 2PR / (P + R): 0 (not 0/0) when TP = 0, as in the evaluator.
        f1 = 2.0 / (1.0 / precision + 1.0 / recall)
    return {"threshold": t, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
            "auprc": evaluator_area(precision, recall), "auprc_threshold_order": area(precision[::-1], recall[::-1])}


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
        ``micro_auprc``, ``macro_auprc``, ``micro_f1`` (the evaluator's numbers), ``micro_f1_threshold``
        (the threshold used), ``class_auprc`` ({class: AUPRC}), ``micro_auprc_threshold_order`` and
        ``macro_auprc_threshold_order`` (the areas in threshold order, independent of the sort),
        ``n_files``, ``positives`` ({class: count}).

    Raises
    ------
    ClassifyError
        Shapes disagree, there are no files, or a value is not finite.

    Examples
    --------
    The threshold 1.0 always adds the point (recall 0, precision 0), so even a perfect ranking
    scores less than 1 on few files:

    >>> m = ust_metrics(np.array([[1], [0], [1]]), np.array([[0.9], [0.2], [0.6]]), ["dog"])
    >>> m["micro_auprc"], m["micro_f1"]
    (0.75, 1.0)
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
    curves = [class_curve(y_true[:, i], y_prob[:, i]) for i in range(len(classes))]
    per_class = {c: curve["auprc"] for c, curve in zip(classes, curves)}
    micro = micro_curve(y_true, y_prob)
    # The curve always reaches 1.0, so a threshold ≥ 0.5 exists.
    at = int(np.flatnonzero(micro["threshold"] >= F1_THRESHOLD)[0])
    # np.mean of the list in taxonomy order, as the evaluator averages: the same sum, bit for bit.
    return {"micro_auprc": micro["auprc"], "macro_auprc": float(np.mean([c["auprc"] for c in curves])),
            "micro_f1": float(micro["f1"][at]), "micro_f1_threshold": float(micro["threshold"][at]),
            "class_auprc": per_class, "micro_auprc_threshold_order": micro["auprc_threshold_order"],
            "macro_auprc_threshold_order": float(np.mean([c["auprc_threshold_order"] for c in curves])),
            "n_files": int(len(y_true)),
            "positives": {c: int(y_true[:, i].sum()) for i, c in enumerate(classes)}}
