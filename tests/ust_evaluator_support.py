"""An independent re-implementation of the DCASE 2019 Task 5 evaluator's coarse procedure, for the tests.

What it reproduces (``metrics.py`` + ``evaluate_predictions.py`` of
github.com/sonyc-project/urban-sound-tagging-baseline; nothing of it is copied here, and nothing
of ``sea_tf.classify.ust_metrics`` is used), step by step as that evaluator runs:

- ground truth: ``annotations.csv`` rows with ``annotator_id == 0`` and ``split == validate``, the
  ``<id>_<name>_presence`` columns; predictions: ``output.csv``'s ``<id>_<name>`` columns; both
  ordered by ``audio_filename`` and required to hold the same files;
- per class (taxonomy order): the predictions sorted, those below 0.01 dropped, 1.0 appended, the
  unique values listed from the highest down; at each threshold the file-level confusion matrix
  (``sklearn.metrics.confusion_matrix`` of truth and ``prob >= t``) gives TP, FP, FN;
  P = TP / max(TP + FP, 0.5), R = TP / max(TP + FN, 0.5);
- a class's area: its rows' recalls sorted by ``np.argsort`` (default kind), (0, 1) before and
  (1, 0) after, ``sklearn.metrics.auc``; macro = ``np.mean`` of the class areas;
- micro: the unique union of every class's thresholds, ascending; at each, every class's *last
  row whose threshold is ≥ t* (its rows run from the highest threshold down) is summed; P and R as
  above; the points sorted by ``np.argsort`` of the recalls in that ascending listing, padded and
  integrated the same way; micro F1 = 2 / (1/P + 1/R) at the first threshold ≥ 0.5.
"""
import csv

import numpy as np
import yaml
from sklearn.metrics import auc, confusion_matrix


def _padded_area(precision, recall):
    order = np.argsort(np.asarray(recall, dtype=np.float64))
    r = np.array([0.0] + list(np.asarray(recall, dtype=np.float64)[order]) + [1.0])
    p = np.array([1.0] + list(np.asarray(precision, dtype=np.float64)[order]) + [0.0])
    return auc(r, p)


def _p_r(tp, fp, fn):
    tp, fp, fn = (np.asarray(a, dtype=np.int64) for a in (tp, fp, fn))
    return tp / np.maximum(tp + fp, 0.5), tp / np.maximum(tp + fn, 0.5)


def evaluate_arrays(truth, probs):
    """The evaluator's coarse numbers for truth ``int [files, classes]`` and probabilities ``float64`` alike.

    Returns
    -------
    dict
        ``micro_auprc``, ``macro_auprc``, ``micro_f1``, ``class_auprc`` (list, column order).
    """
    truth, probs = np.asarray(truth), np.asarray(probs, dtype=np.float64)
    tables = []
    for k in range(truth.shape[1]):
        values = np.sort(np.ravel(np.copy(probs[:, k])))
        values = values[np.searchsorted(values, 0.01):]
        thresholds = np.unique(np.append(values, 1.0))[::-1]
        rows = []
        for t in thresholds:
            cm = confusion_matrix(truth[:, k], probs[:, k] >= t)
            rows.append((cm[1, 1], cm[0, 1], cm[1, 0]))
        tp, fp, fn = (np.array(c) for c in zip(*rows))
        p, r = _p_r(tp, fp, fn)
        tables.append({"threshold": thresholds, "tp": tp, "fp": fp, "fn": fn, "p": p, "r": r})
    class_auprc = [float(_padded_area(t["p"], t["r"])) for t in tables]

    union = np.unique(np.hstack([t["threshold"] for t in tables]))
    sums = np.zeros((len(union), 3), dtype=np.int64)
    for i, t in enumerate(union):
        for table in tables:
            last = np.flatnonzero(table["threshold"] >= t)[-1]
            sums[i] += (table["tp"][last], table["fp"][last], table["fn"][last])
    p, r = _p_r(sums[:, 0], sums[:, 1], sums[:, 2])
    with np.errstate(divide="ignore"):
        f = 2 / (1 / p + 1 / r)
    first = np.flatnonzero(union >= 0.5)[0]
    return {"micro_auprc": float(_padded_area(p, r)), "macro_auprc": float(np.mean(class_auprc)),
            "micro_f1": float(f[first]), "class_auprc": class_auprc}


def evaluate_files(output_csv, annotations_csv, taxonomy_yaml):
    """The evaluator's coarse numbers read from the three files, as ``evaluate_predictions.py`` reads them.

    Returns
    -------
    dict
        As :func:`evaluate_arrays`, with ``class_auprc`` keyed by the coarse class name.
    """
    coarse = yaml.safe_load(open(taxonomy_yaml))["coarse"]
    with open(annotations_csv, newline="") as fh:
        gt = {r["audio_filename"]: r for r in csv.DictReader(fh)
              if r["annotator_id"].strip() == "0" and r["split"] == "validate"}
    with open(output_csv, newline="") as fh:
        pred = {r["audio_filename"]: r for r in csv.DictReader(fh)}
    if set(gt) != set(pred):
        raise ValueError(f"file mismatch: missing {sorted(set(gt) - set(pred))}, extra {sorted(set(pred) - set(gt))}")
    names = sorted(gt)
    truth = np.array([[int(float(gt[n][f"{k}_{v}_presence"])) for k, v in coarse.items()] for n in names])
    probs = np.array([[float(pred[n][f"{k}_{v}"]) for k, v in coarse.items()] for n in names])
    result = evaluate_arrays(truth, probs)
    result["class_auprc"] = dict(zip(coarse.values(), result["class_auprc"]))
    return result
