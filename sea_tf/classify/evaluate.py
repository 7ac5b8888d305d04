"""Clip-level predictions and metrics: mean of frame probabilities, accuracies, confusion matrix.

The published protocol (docs/PROTOCOL.md §4.1) predicts a clip by averaging the softmax probabilities of its
frames and taking the argmax; accuracy is computed over clips, per fold, then averaged over folds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import confusion_matrix

from sea_tf import atomic
from sea_tf.errors import ClassifyError


def clip_probabilities(frame_probs: npt.ArrayLike, frame_clip: npt.ArrayLike, *,
                       n_clips: int | None = None) -> npt.NDArray[np.float64]:
    """Average frame probabilities per clip.

    Parameters
    ----------
    frame_probs : np.ndarray [shape=(n_frames, n_classes)]
        Per-frame class probabilities.
    frame_clip : np.ndarray [shape=(n_frames,)], int
        Clip index of every frame (0 .. n_clips-1).
    n_clips : int, optional
        Number of clips (default: ``frame_clip.max() + 1``).

    Returns
    -------
    np.ndarray [shape=(n_clips, n_classes)]
        Mean probability of each class over the clip's frames (NaN rows for clips without frames).
    """
    probs = np.asarray(frame_probs, dtype=np.float64)
    owner = np.asarray(frame_clip)
    n_clips = int(owner.max()) + 1 if n_clips is None else n_clips
    sums = np.zeros((n_clips, probs.shape[1]))
    np.add.at(sums, owner, probs)
    counts = np.bincount(owner, minlength=n_clips).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def clip_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_classes: int) -> dict:
    """Accuracy, per-class accuracy and mean class accuracy of clip predictions.

    Parameters
    ----------
    y_true, y_pred : np.ndarray [shape=(n_clips,)], int
    n_classes : int

    Returns
    -------
    dict
        ``accuracy`` (float), ``per_class_accuracy`` (list, NaN → None for classes absent from
        ``y_true``), ``class_accuracy_mean`` (mean over present classes), ``confusion``
        (``n_classes × n_classes`` list, rows = true class), ``n_clips``.
    """
    truth = np.asarray(y_true)
    pred = np.asarray(y_pred)
    cm = confusion_matrix(truth, pred, labels=np.arange(n_classes))
    support = cm.sum(axis=1)
    per_class = [float(cm[c, c] / support[c]) if support[c] else None for c in range(n_classes)]
    present = [a for a in per_class if a is not None]
    return {
        "accuracy": float(np.mean(truth == pred)) if len(truth) else float("nan"),
        "per_class_accuracy": per_class,
        "class_accuracy_mean": float(np.mean(present)) if present else float("nan"),
        "confusion": cm.tolist(),
        "n_clips": int(len(truth)),
    }


def summarize_folds(fold_results: list[dict], classes: Sequence[str]) -> dict:
    """Aggregate per-fold results of one model.

    Parameters
    ----------
    fold_results : list of dict
        Each from :func:`clip_metrics` plus ``"fold"``.
    classes : list of str

    Returns
    -------
    dict
        ``accuracy_mean``, ``accuracy_std`` (population std over folds, as numpy), ``accuracy_min``,
        ``accuracy_max``, ``per_fold`` ({fold: accuracy}), ``per_class_accuracy`` ({class: accuracy
        over all test clips}), ``confusion`` (summed over folds).
    """
    acc = np.array([r["accuracy"] for r in fold_results], dtype=np.float64)
    cm = np.sum([np.asarray(r["confusion"]) for r in fold_results], axis=0)
    support = cm.sum(axis=1)
    return {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "accuracy_min": float(acc.min()),
        "accuracy_max": float(acc.max()),
        "per_fold": {str(r["fold"]): r["accuracy"] for r in fold_results},
        "per_class_accuracy": {c: (float(cm[i, i] / support[i]) if support[i] else None)
                               for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
    }


def plot_confusion(confusion: npt.ArrayLike, classes: Sequence[str], path: Path | str, *, title: str = "") -> Path:
    """Save a row-normalised confusion matrix as a PNG (atomically); returns ``path``.

    Parameters
    ----------
    confusion : array-like [shape=(n_classes, n_classes)]
        Counts, rows = true class.
    classes : list of str
    path : str or Path
    title : str
    """
    plt = atomic.pyplot()

    cm = np.asarray(confusion, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    size = 2.5 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return atomic.save_figure(fig, path, dpi=100)


def comparison_markdown(summaries: dict[str, dict], n_folds: int) -> str:
    """A markdown table comparing models (rows) by mean ± std accuracy over folds.

    Parameters
    ----------
    summaries : dict
        ``{model_name: summary}`` with the keys of :func:`summarize_folds` (plus optional
        ``embedding_size``, ``n_frames``).
    n_folds : int
    """
    lines = [f"| model | dim | accuracy (mean ± std over {n_folds} folds) | min | max | mean class acc. |",
             "|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        class_accs = [a for a in s["per_class_accuracy"].values() if a is not None]
        lines.append(
            f"| {name} | {s.get('embedding_size', '')} "
            f"| {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} % "
            f"| {100 * s['accuracy_min']:.1f} | {100 * s['accuracy_max']:.1f} | {100 * np.mean(class_accs):.1f} |")
    return "\n".join(lines) + "\n"


def breakdown_markdown(summaries: dict[str, dict], key: str, label: str) -> str:
    """A markdown table with one row per fold or class and one column per model.

    Parameters
    ----------
    summaries : dict
        ``{model_name: summary}`` (:func:`summarize_folds` keys).
    key : {"per_fold", "per_class_accuracy"}
    label : str
        Header of the first column.
    """
    names = list(summaries)
    rows = list(dict.fromkeys(r for s in summaries.values() for r in s[key]))
    lines = [f"| {label} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        cells = [summaries[n][key].get(row) for n in names]
        lines.append(f"| {row} | " + " | ".join("–" if c is None else f"{100 * c:.1f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison_markdown(out_dir: Path | str, lines: list[str], failed: dict[str, str], *,
                              any_succeeded: bool) -> None:
    """Write ``out_dir/comparison.md`` from ``lines`` plus the failed models (name → reason).

    Raises ClassifyError (after writing) when no model succeeded, naming every failure.
    """
    if failed:
        lines = lines + ["", "Failed models:", ""] + [f"- {n}: {r}" for n, r in failed.items()]
    atomic.write_text(Path(out_dir) / "comparison.md", "\n".join(lines) + "\n")
    if not any_succeeded:
        raise ClassifyError(f"every model failed; see {Path(out_dir) / 'comparison.md'}: "
                            + "; ".join(f"{n}: {r}" for n, r in failed.items()))
