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

The sampling study (:func:`compare_strategies`) also says what each sampler picked: the share of
its rows among the m loudest (:func:`loudness_overlap`; random ≈ m/n, top-m by loudness = 1),
coverage (:func:`coverage`: mean distance from every row to its nearest sampled row) and
diversity (:func:`sea_tf.sampling.diversity`).
"""
import time
from pathlib import Path

import numpy as np
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from sea_tf import atomic
from sea_tf import reduce as reduce_mod
from sea_tf import sampling as sampling_mod
from sea_tf.shards import ShardSet
from sea_tf.errors import DataError


def knn_recall(high, low, k=10):
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
    def neighbours(x):
        idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
        return [set(row[row != i][:k]) for i, row in enumerate(idx)]
    hi, lo = neighbours(np.asarray(high, np.float64)), neighbours(np.asarray(low, np.float64))
    return float(np.mean([len(a & b) / k for a, b in zip(hi, lo)]))


def loudness_overlap(sample_index: np.ndarray, loudness_db: np.ndarray) -> float:
    """Share of a sample of m rows that lies among the m loudest rows of the pool.

    Parameters
    ----------
    sample_index : np.ndarray of int [shape=(m,)]
    loudness_db : np.ndarray [shape=(n,)]
        Window loudness (dBFS) of every row of the pool.

    Returns
    -------
    float in [0, 1]
        About m/n for a uniform sample; 1 for "the m loudest".
    """
    sample_index = np.asarray(sample_index, dtype=np.int64)
    m = len(sample_index)
    loudest = np.argsort(-np.asarray(loudness_db, dtype=np.float64), kind="stable")[:m]
    return float(len(np.intersect1d(loudest, sample_index)) / max(1, m))


def coverage(pool: np.ndarray, sample: np.ndarray) -> float:
    """Mean distance from every pool row to its nearest sampled row, on L2-normalised rows (lower: better covered).

    Parameters
    ----------
    pool : np.ndarray [shape=(n, D)]
        The rows to cover (a seeded subset of a large pool is fine).
    sample : np.ndarray [shape=(m, D)]

    Returns
    -------
    float in [0, 2]
        Chord distance ``‖a/‖a‖ − b/‖b‖‖``: scale-free, so loud and quiet rows count alike.
    """
    from sklearn.preprocessing import normalize

    nn = NearestNeighbors(n_neighbors=1).fit(normalize(np.asarray(sample, np.float64)))
    return float(nn.kneighbors(normalize(np.asarray(pool, np.float64)))[0].mean())


def heldout_explained_variance(reducer, embeddings: np.ndarray) -> float:
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


def heldout_rows(n_rows, sample_index, n_heldout, seed):
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


def evaluate(shards, reducer, sample_index, out_dir, seed=20180216, n_heldout=1000, k=10, scatter=True,
             name="quality"):
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

    Returns
    -------
    dict
        ``{"n_heldout", "heldout", "k", "trustworthiness", "knn_recall" (at k), "explained_variance"
        (PCA, on the same rows as the others), "explained_variance_fit_sample" (PCA, in-sample), "png"}``.
    """
    out_dir = Path(out_dir)
    rows, heldout = heldout_rows(shards.n_rows, sample_index, n_heldout, seed)
    if len(rows) < MIN_EVAL_ROWS:
        raise DataError(f"{', '.join(map(str, shards.dirs))}: {shards.n_rows} teacher row(s) in all: reduce's "
                        f"quality figures need at least {MIN_EVAL_ROWS}; embed more audio with teacher-embed")
    high = shards.read("embedding", rows)
    low = reducer.transform(high)
    k = int(min(k, max(1, len(rows) // 2 - 1)))
    result = {"method": reducer.method, "d": reducer.d, "n_heldout": int(len(rows)), "heldout": heldout,
              "k": k,
              "trustworthiness": float(trustworthiness(high, low, n_neighbors=k)),
              "knn_recall": knn_recall(high, low, k)}
    if reducer.method == "pca":
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


def plot_scatter(reduced, labels, path, title=""):
    """Scatter of the first two reduced dimensions, coloured by ``labels`` when any is ≥ 0.

    Parameters
    ----------
    reduced : np.ndarray [shape=(n, d)]
    labels : np.ndarray of int [shape=(n,)], −1 for unknown
    path : str or Path
        PNG to write (atomically).
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


def compare_strategies(shard_dirs, out_dir, m, strategies=None, method="pca", d=64, seed=20180216,
                       sampling=None, reducer=None, n_heldout=1000, k=10, progress=True, n_coverage=4000,
                       allow_partial=False):
    """The SEA paper's sampling study (docs/PROTOCOL.md §3.1) in one call: every strategy samples the same shards, fits φ, is scored.

    All strategies are scored on the same held-out rows (drawn from the rows none of them picked),
    and their samples are described against the same pool: loudness overlap, coverage, diversity.

    Parameters
    ----------
    shard_dirs : str, Path or list
    out_dir : str or Path
        Gets ``<strategy>/{sample.npz, card.json}``, ``<strategy>/reducer/``, ``compare.json``,
        ``compare.md``, ``compare.png`` and one ``quality-<strategy>.png`` each.
    m : int
        Samples per strategy.
    strategies : list of str, optional
        Default: all of :data:`sea_tf.sampling.STRATEGIES`.
    method, d : str, int
        The reduction fitted on each sample.
    sampling : dict, optional
        Extra keyword arguments of :func:`sea_tf.sampling.sample_shards` (``group_by``,
        ``dpp_solver``, ``dpp_kernel``, ...).
    reducer : dict, optional
        Extra keyword arguments of :func:`sea_tf.reduce.fit` (``pca_solver``, ``umap_params``).
    n_coverage : int
        Pool rows (a seeded subset) whose nearest sampled row sets the coverage.
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    list of dict
        One row per strategy: ``strategy``, ``loud_overlap`` (share of the sample among the m
        loudest rows; None without loudness), ``coverage`` (lower is better), ``diversity`` (of the
        sample), then φ's ``trustworthiness``, ``knn_recall`` (at ``k``), ``explained_variance``
        (PCA) on held-out rows, and ``wall_s``.
    """
    out_dir = Path(out_dir)
    strategies = list(strategies or sampling_mod.STRATEGIES)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    samples, walls = {}, {}
    for strategy in strategies:
        start = time.perf_counter()
        samples[strategy], _ = sampling_mod.sample_shards(shard_dirs, out_dir / strategy, m, strategy=strategy,
                                                          seed=seed, progress=progress, allow_partial=allow_partial,
                                                          **(sampling or {}))
        reduce_mod.fit(shard_dirs, out_dir / strategy, out_dir / strategy / "reducer", method=method, d=d,
                       seed=seed, quality=None, progress=progress, allow_partial=allow_partial, **(reducer or {}))
        walls[strategy] = time.perf_counter() - start
    union = np.unique(np.concatenate(list(samples.values())))
    loud = _column_or_none(shards, "loudness_db")
    rng = np.random.default_rng(seed)
    pool_rows = np.sort(rng.choice(shards.n_rows, size=min(int(n_coverage), shards.n_rows), replace=False))
    pool = shards.read("embedding", pool_rows)
    table = []
    for strategy in strategies:
        fitted = reduce_mod.Reducer.load(out_dir / strategy / "reducer")
        q = evaluate(shards, fitted, union, out_dir, seed=seed, n_heldout=n_heldout, k=k,
                     name=f"quality-{strategy}")
        emb = shards.read("embedding", samples[strategy])
        row = {"strategy": strategy,
               "loud_overlap": None if loud is None else loudness_overlap(samples[strategy], loud),
               "coverage": coverage(pool, emb),
               "diversity": sampling_mod.diversity(emb[:2000])}
        row.update({key: q[key] for key in q if key not in ("png", "method")})
        row["wall_s"] = round(walls[strategy], 3)
        table.append(row)
    png = plot_study(table, out_dir / "compare.png", title=f"sampling study: m = {m} of {shards.n_rows} rows, "
                                                           f"{method} d = {d}")
    atomic.write_json(out_dir / "compare.json", {"m": int(m), "n_rows": int(shards.n_rows), "method": method,
                                                 "d": int(d), "sampling": dict(sampling or {}),
                                                 "random_loud_overlap": float(m / shards.n_rows),
                                                 "rows": table, "png": str(png)})
    atomic.write_text(out_dir / "compare.md", markdown_table(table))
    return table


STUDY_COLUMNS = (("loud_overlap", "share among the m loudest"), ("coverage", "coverage (↓ better)"),
                 ("diversity", "diversity"), ("explained_variance", "φ explained variance (held-out)"),
                 ("trustworthiness", "φ trustworthiness"), ("knn_recall", "φ kNN recall"))


def plot_study(rows, path, title=""):
    """One bar panel per study column (:data:`STUDY_COLUMNS`), one bar per strategy; writes ``path`` (PNG)."""
    plt = atomic.pyplot()

    columns = [(key, label) for key, label in STUDY_COLUMNS if any(row.get(key) is not None for row in rows)]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.3 * len(columns), 3.2), dpi=100, squeeze=False)
    names = [row["strategy"] for row in rows]
    for ax, (key, label) in zip(axes[0], columns):
        values = [np.nan if row.get(key) is None else row[key] for row in rows]
        ax.bar(range(len(rows)), values, color=[f"C{i}" for i in range(len(rows))])
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(label, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic.save_figure(fig, path)


def _column_or_none(shards, key):
    try:
        return np.concatenate([c[key] for c in shards.iter_chunks([key], rows=1 << 16)])
    except (KeyError, ValueError):
        return None


def markdown_table(rows):
    """A Markdown table of the comparison rows (numbers to 4 decimals)."""
    if not rows:
        return ""
    keys = [key for key in rows[0] if key not in ("heldout", "d")]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("–" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"
