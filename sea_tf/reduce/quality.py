"""Did φ keep the teacher's geometry? Held-out trustworthiness, kNN recall@k, explained variance, scatter.

Measured on rows *not* used to fit φ (a seeded random subset), comparing the teacher space
(raw embeddings, Euclidean) with the reduced space:

- trustworthiness (``sklearn.manifold.trustworthiness``): 1 when no reduced-space neighbour is a
  stranger in the teacher space;
- kNN recall@k: mean fraction of each row's k teacher-space neighbours that are also among its k
  reduced-space neighbours;
- explained variance (PCA only): the share of the held-out rows' variance, in φ's standardised
  space, that lies in the d principal directions (:func:`heldout_explained_variance`); the fit
  sample's own figure (``sum(explained_variance_ratio_)``, optimistic: the directions were chosen
  on those rows) is reported beside it as ``explained_variance_fit_sample``;
- ``quality.png``: the first two reduced dimensions, coloured by class when labels are known.
"""
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from sea_tf import atomic
from sea_tf.errors import DataError, ReduceError
from sea_tf.reduce.reducer import Reducer
from sea_tf.shards import ShardSet


def knn_recall(high: npt.ArrayLike, low: npt.ArrayLike, *, k: int) -> float:
    """Mean fraction of the k nearest neighbours in ``high`` kept among the k nearest in ``low``.

    Parameters
    ----------
    high : np.ndarray [shape=(n, D)]
    low : np.ndarray [shape=(n, d)]
    k : int
        Neighbours per row (the row itself excluded), ``k < n``.

    Returns
    -------
    float in [0, 1]
    """
    def neighbours(x: np.ndarray) -> list[set[int]]:
        idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
        return [set(row[row != i][:k]) for i, row in enumerate(idx)]
    hi, lo = neighbours(np.asarray(high, np.float64)), neighbours(np.asarray(low, np.float64))
    return float(np.mean([len(a & b) / k for a, b in zip(hi, lo)]))


def heldout_explained_variance(reducer: Reducer, embeddings: npt.ArrayLike) -> float:
    """Share of the variance of ``embeddings`` that a fitted PCA φ keeps, measured on those rows.

    In φ's own space (after its scaler), the rows are centred on their own mean and projected on
    the d principal directions: trace(Vᵀ C V) / trace(C), with C the rows' covariance and V the
    orthonormal components. On the fit sample this is ``sum(explained_variance_ratio_)``; on
    held-out rows it is the figure that says how much of unseen data φ keeps.

    Parameters
    ----------
    reducer : sea_tf.reduce.Reducer
        A ``pca`` reducer (PCA or IncrementalPCA: ``components_`` of shape (d, D)).
    embeddings : np.ndarray [shape=(n, D)]
        Teacher embeddings, n ≥ 2.

    Returns
    -------
    float in [0, 1]
        NaN when the rows have no variance.
    """
    if reducer.model is None:
        raise ReduceError(f"explained variance needs a fitted pca reducer, not {reducer.method!r}")
    z = np.asarray(embeddings, dtype=np.float32)
    if reducer.scaler is not None:
        z = reducer.scaler.transform(z)
    z = np.asarray(z, dtype=np.float64)
    z = z - z.mean(axis=0)
    total = float(np.sum(z * z))
    if total == 0.0:
        return float("nan")
    projected = z @ np.asarray(reducer.model.components_, dtype=np.float64).T
    return float(np.sum(projected * projected) / total)


#: Fewest rows the neighbourhood figures can be computed on: trustworthiness needs 1 <= k < n / 2.
MIN_EVAL_ROWS = 3


def heldout_rows(n_rows: int, sample_index: npt.ArrayLike, *, n_heldout: int,
                 seed: int) -> tuple[npt.NDArray[np.int64], bool]:
    """A sorted, seeded random subset of rows outside the sample (the sample itself if fewer than
    :data:`MIN_EVAL_ROWS` are left).

    Returns
    -------
    rows : np.ndarray [shape=(h,), dtype=int64]
    heldout : bool
        False when (nearly) every row was in the sample and the sample had to be used.
    """
    rest = np.setdiff1d(np.arange(n_rows, dtype=np.int64), np.asarray(sample_index, dtype=np.int64))
    heldout = len(rest) >= MIN_EVAL_ROWS
    pool = rest if heldout else np.asarray(sample_index, dtype=np.int64)
    rng = np.random.default_rng(seed)
    take = min(int(n_heldout), len(pool))
    return np.sort(rng.choice(pool, size=take, replace=False)), heldout


def evaluate(shards: ShardSet, reducer: Reducer, sample_index: npt.ArrayLike, out_dir: Path | str, *,
             seed: int, n_heldout: int, k: int, scatter: bool = True, name: str = "quality") -> dict[str, Any]:
    """Quality of a fitted reducer on held-out teacher rows; writes ``<name>.json`` (+ ``<name>.png``).

    Parameters
    ----------
    shards : sea_tf.shards.ShardSet
    reducer : sea_tf.reduce.Reducer
    sample_index : np.ndarray of int
        Rows φ was fitted on (excluded from the evaluation).
    out_dir : str or Path
    seed : int
    n_heldout : int
        Rows evaluated (trustworthiness is O(n²): keep it ≤ a few thousand).
    k : int
        Neighbours for trustworthiness and recall.
    scatter : bool
        Also draw the PNG.
    name : str
        Stem of the files written (``quality``; the sampling study writes one per strategy).

    Returns
    -------
    dict
        ``{"n_heldout", "heldout", "k", "trustworthiness", "knn_recall" (at k), "explained_variance"
        (PCA, on the same rows as the others), "explained_variance_fit_sample" (PCA, in-sample), "png"}``.
    """
    out_dir = Path(out_dir)
    rows, heldout = heldout_rows(shards.n_rows, sample_index, n_heldout=n_heldout, seed=seed)
    if len(rows) < MIN_EVAL_ROWS:
        raise DataError(f"{', '.join(map(str, shards.dirs))}: {shards.n_rows} teacher row(s) in all: reduce's "
                        f"quality figures need at least {MIN_EVAL_ROWS}; embed more audio with teacher-embed")
    high = shards.read("embedding", rows)
    low = reducer.transform(high)
    k = int(min(k, max(1, len(rows) // 2 - 1)))
    result = {"method": reducer.method, "d": reducer.d, "n_heldout": int(len(rows)), "heldout": heldout,
              "k": k,
              "trustworthiness": float(trustworthiness(high, low, n_neighbors=k)),
              "knn_recall": knn_recall(high, low, k=k)}
    if reducer.method == "pca" and reducer.model is not None:
        # on the evaluated rows like every other figure here ("heldout" says whether they are held out)
        result["explained_variance"] = heldout_explained_variance(reducer, high)
        result["explained_variance_fit_sample"] = float(np.sum(reducer.model.explained_variance_ratio_))
    if scatter:
        labels = shards.read("label", rows)
        png = out_dir / f"{name}.png"
        plot_scatter(low, labels, png, title=f"{reducer.method} d={reducer.d}: trust "
                                             f"{result['trustworthiness']:.3f}, recall@{k} {result['knn_recall']:.3f}")
        result["png"] = str(png)
    atomic.write_json(out_dir / f"{name}.json", result)
    return result


def plot_scatter(reduced: npt.ArrayLike, labels: npt.ArrayLike, path: Path | str, *, title: str = "") -> None:
    """Scatter of the first two reduced dimensions, coloured by ``labels`` when any is ≥ 0.

    Parameters
    ----------
    reduced : np.ndarray [shape=(n, d)]
    labels : np.ndarray of int [shape=(n,)], −1 for unknown
    path : str or Path
        PNG to write (atomically).
    title : str
    """
    plt = atomic.pyplot()

    reduced = np.asarray(reduced)
    x = reduced[:, 0]
    y = reduced[:, 1] if reduced.shape[1] > 1 else np.zeros_like(x)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    labels = np.asarray(labels)
    if np.any(labels >= 0):
        for c in np.unique(labels):
            sel = labels == c
            ax.scatter(x[sel], y[sel], s=6, alpha=0.7, label=str(c) if c >= 0 else "unknown")
        ax.legend(fontsize=6, markerscale=2, title="class", title_fontsize=7, loc="best")
    else:
        ax.scatter(x, y, s=6, alpha=0.7, color="tab:blue")
    ax.set_xlabel("reduced dim 1")
    ax.set_ylabel("reduced dim 2")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, path)
