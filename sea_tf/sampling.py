"""Choose the M teacher windows φ is fitted on: random, loudness, DPP diversity, DPP quality×diversity.

docs/PROTOCOL.md §3.1. Candidates are the rows of a :class:`~sea_tf.shards.ShardSet`. Rows are split into
groups — one per source file (``group_by="source"``), consecutive blocks of ``group_rows`` rows,
i.e. a time window in recording order (``"window"``), or one group (``"all"``). Groups play the
roles of the original code's 2-hour windows (loudness is ranked within a group) and of its per-day streams
(DPPs are solved per group, so the cost stays linear in the pool size for bounded groups).

Strategies
----------
``random``       uniform, without replacement.
``loudness``     probability ∝ q, the within-group loudness rank ``rank_min(dB) / count`` ∈ (0, 1].
``dpp``          k-DPP over L1-normalised embeddings, ``L = Xn Xnᵀ + 0.1 I``, per group.
``dpp-quality``  ``L = diag(q) Xn Xnᵀ diag(q) + 0.1 I``, q as for ``loudness``.

Each group receives a share of M proportional to its size (largest remainders).
"""
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from sea_tf import cards
from sea_tf.atomic import save_npz
from sea_tf.errors import ConfigError, DataError, ReduceError
from sea_tf.shards import ShardSet, canonical_sha256

STRATEGIES = ("random", "loudness", "dpp", "dpp-quality")
GROUP_BY = ("source", "window", "all")
DPP_SOLVERS = ("greedy", "dppy-exact")


def group_bounds(n_rows, sources=None, group_by="window", group_rows=1024):
    """Contiguous groups of rows as boundaries ``[b0=0, b1, ..., bG=n_rows]``.

    Parameters
    ----------
    n_rows : int
    sources : np.ndarray of str [shape=(n_rows,)], optional
        Source file of each row; required for ``group_by="source"`` (a file's rows are contiguous).
    group_by : {"source", "window", "all"}
    group_rows : int
        Rows per group for ``"window"``.

    Returns
    -------
    np.ndarray [shape=(G + 1,), dtype=int64]
    """
    if group_by not in GROUP_BY:
        raise ConfigError(f"group_by must be one of {', '.join(GROUP_BY)}; got {group_by!r}")
    if group_by == "all" or n_rows == 0:
        return np.array([0, n_rows], dtype=np.int64)
    if group_by == "window":
        if int(group_rows) < 1:
            raise ConfigError(f"group_rows must be ≥ 1, got {group_rows}")
        return np.unique(np.r_[np.arange(0, n_rows, int(group_rows)), n_rows]).astype(np.int64)
    sources = np.asarray(sources)
    change = np.flatnonzero(sources[1:] != sources[:-1]) + 1
    return np.r_[0, change, n_rows].astype(np.int64)


def loudness_rank(loudness_db, bounds):
    """Within-group loudness rank ``rank(dB, method="min") / count`` ∈ (0, 1] (louder → higher).

    Parameters
    ----------
    loudness_db : np.ndarray [shape=(n,)]
    bounds : np.ndarray
        Group boundaries from :func:`group_bounds`.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    loudness_db = np.asarray(loudness_db, dtype=np.float64)
    q = np.empty_like(loudness_db)
    for a, b in zip(bounds[:-1], bounds[1:]):
        q[a:b] = rankdata(loudness_db[a:b], method="min") / (b - a)
    return q


def allocate(sizes, m):
    """Split ``m`` picks over groups of ``sizes`` proportionally (largest remainders, capped by size).

    Returns
    -------
    np.ndarray [shape=(G,), dtype=int64] summing to ``m``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    if m > total:
        raise ReduceError(f"cannot pick {m} samples from {total} rows; ask for at most {total}")
    exact = sizes * (m / total)
    share = np.minimum(np.floor(exact).astype(np.int64), sizes)
    order = np.argsort(-(exact - share), kind="stable")
    for g in order:  # hand out the remainder, one each, largest fractional part first
        if share.sum() >= m:
            break
        if share[g] < sizes[g]:
            share[g] += 1
    while share.sum() < m:  # only when caps bit; top up wherever room is left
        g = int(np.argmax(sizes - share))
        share[g] += 1
    return share


def weighted_without_replacement(weights, m, rng):
    """Pick ``m`` indices with probability ∝ ``weights``, without replacement (successive sampling).

    Uses the Efraimidis–Spirakis keys ``log(u) / w`` (top m), which draws the same distribution
    as m successive weighted draws but in O(n) instead of O(n·m).

    Parameters
    ----------
    weights : np.ndarray [shape=(n,)], positive
    m : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(m,), dtype=int64], unsorted
    """
    weights = np.asarray(weights, dtype=np.float64)
    keys = np.log(rng.random(len(weights))) / weights
    if m >= len(weights):
        return np.arange(len(weights), dtype=np.int64)
    return np.argpartition(-keys, m - 1)[:m].astype(np.int64)


def greedy_map_kdpp(features, k, quality=None, ridge=0.1):
    """Approximate MAP of a k-DPP with ``L = diag(q) F Fᵀ diag(q) + ridge·I`` (Chen et al., 2018).

    The fast greedy MAP algorithm grows an incremental Cholesky factor of ``L`` restricted to the
    chosen set; each step adds the item with the largest marginal log-det gain. It never forms L:
    cost O(n·k·(D + k)) time and O(n·k) memory.

    We wrote this ourselves because dppy (checked: 0.3.3 works with numpy 2 for finite DPPs) only
    samples — its exact k-DPP sampler eigendecomposes the n×n kernel (O(n³) per group) and the
    original MCMC with 3 iterations barely moves from its random start — and has no MAP inference.
    ``dpp_solver="dppy-exact"`` uses dppy's exact sampler when it is installed.

    Parameters
    ----------
    features : np.ndarray [shape=(n, D)]
        Rows already normalised as the kernel needs (L1 for the original kernel).
    k : int
        Number of items, ``0 ≤ k ≤ n``.
    quality : np.ndarray [shape=(n,)], optional
        Per-item quality q (default 1).
    ridge : float
        Diagonal added to the kernel (the original 0.1).

    Returns
    -------
    np.ndarray [shape=(k,), dtype=int64]
        Chosen rows in the order they were picked.
    """
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if k > n:
        raise ReduceError(f"cannot pick {k} items from a group of {n}")
    q = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64)
    gain = q * q * np.einsum("ij,ij->i", features, features) + ridge  # diag(L): the first gains
    factors = np.zeros((k, n))
    chosen = np.empty(k, dtype=np.int64)
    # Each step is two small matrix-vector products; threaded BLAS only adds synchronisation to
    # those (measured 20-40x slower on a busy 2-core machine), so run them on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        for j in range(k):
            i = int(np.argmax(gain))
            chosen[j] = i
            row = q[i] * q * (features @ features[i])
            row[i] += ridge
            e = (row - factors[:j].T @ factors[:j, i]) / np.sqrt(gain[i])
            factors[j] = e
            gain -= e * e
            gain[chosen[:j + 1]] = -np.inf
    return chosen


def _dppy_exact(features, k, quality, ridge, rng):
    try:
        from dppy.finite_dpps import FiniteDPP
    except ImportError as exc:
        raise ConfigError("dpp_solver 'dppy-exact' needs dppy (`pip install dppy`); "
                          "or use dpp_solver=greedy") from exc
    q = np.ones(len(features)) if quality is None else quality
    kernel = (q[:, None] * (features @ features.T) * q[None, :]) + ridge * np.eye(len(features))
    dpp = FiniteDPP("likelihood", L=kernel)
    legacy = np.random.RandomState(int(rng.integers(2**32)))  # dppy only takes the legacy RandomState
    return np.asarray(dpp.sample_exact_k_dpp(size=k, random_state=legacy), dtype=np.int64)


def select(n_rows, m, strategy, seed, bounds, loudness_db=None, read_embeddings=None,
           dpp_solver="greedy", ridge=0.1, progress=None):
    """Pick ``m`` of ``n_rows`` rows.

    Parameters
    ----------
    n_rows, m : int
    strategy : {"random", "loudness", "dpp", "dpp-quality"}
    seed : int
    bounds : np.ndarray
        Group boundaries (:func:`group_bounds`).
    loudness_db : np.ndarray [shape=(n_rows,)], optional
        Needed by ``loudness`` and ``dpp-quality``.
    read_embeddings : callable (start, stop) -> np.ndarray [stop - start, D], optional
        Needed by the DPP strategies; called once per group.
    dpp_solver : {"greedy", "dppy-exact"}
    ridge : float
    progress : callable(int), optional
        Called with the number of groups done (for a progress bar).

    Returns
    -------
    np.ndarray [shape=(m,), dtype=int64], sorted global row numbers.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if dpp_solver not in DPP_SOLVERS:
        raise ConfigError(f"dpp_solver must be one of {', '.join(DPP_SOLVERS)}; got {dpp_solver!r}")
    m = int(m)
    if m < 1:
        raise ReduceError(f"the number of samples must be ≥ 1, got {m}")
    if m > n_rows:
        raise ReduceError(f"cannot pick {m} samples from {n_rows} teacher rows; ask for at most {n_rows} "
                          "or embed more audio")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)
    q = loudness_rank(loudness_db, bounds) if strategy in ("loudness", "dpp-quality") else None
    if strategy == "loudness":
        return np.sort(weighted_without_replacement(q, m, rng))
    shares = allocate(np.diff(bounds), m)
    picked = []
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        k = int(shares[g])
        if k:
            feats = normalize(np.asarray(read_embeddings(int(a), int(b)), dtype=np.float64), norm="l1")
            qg = None if q is None else q[a:b]
            if dpp_solver == "greedy":
                local = greedy_map_kdpp(feats, k, qg, ridge)
            else:
                local = _dppy_exact(feats, k, qg, ridge, rng)
            picked.append(local + a)
        if progress:
            progress(1)
    return np.sort(np.concatenate(picked)).astype(np.int64)


def diversity(embeddings):
    """Mean pairwise Euclidean distance of L2-normalised rows: a simple spread score for a sample.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(m, D)]

    Returns
    -------
    float
    """
    x = normalize(np.asarray(embeddings, dtype=np.float64))
    sq = np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)
    m = len(x)
    return float(np.sqrt(sq).sum() / max(1, m * (m - 1)))


def sample_shards(shard_dirs, out_dir, m, strategy="dpp-quality", seed=20180123, group_by="window",
                  group_rows=1024, dpp_solver="greedy", ridge=0.1, progress=True):
    """Sample ``m`` rows of teacher shards and write ``OUT/sample.npz`` (``index``) + ``OUT/card.json``.

    Parameters
    ----------
    shard_dirs : str, Path or list
        Teacher-shard directories (``sea-tf teacher-embed`` outputs), read as one table.
    out_dir : str or Path
    m : int
        Number of rows to pick.
    strategy, seed, group_by, group_rows, dpp_solver, ridge
        See :func:`select` and :func:`group_bounds`.
    progress : bool
        Show a tqdm bar over groups (DPP strategies).

    Returns
    -------
    index : np.ndarray [shape=(m,), dtype=int64]
        Sorted global row numbers.
    card : dict
    """
    shards = ShardSet(shard_dirs)
    if m > shards.n_rows:
        raise ReduceError(f"cannot pick {m} samples from {shards.n_rows} teacher rows in "
                          f"{', '.join(map(str, shards.dirs))}; ask for at most {shards.n_rows}")
    sources = _column(shards, "source") if group_by == "source" else None
    bounds = group_bounds(shards.n_rows, sources, group_by, group_rows)
    loud = _column(shards, "loudness_db") if strategy in ("loudness", "dpp-quality") else None
    bar = tqdm(total=len(bounds) - 1, desc=f"sample {strategy}", unit="group",
               disable=not progress or strategy not in ("dpp", "dpp-quality"))
    index = select(shards.n_rows, m, strategy, seed, bounds, loud,
                   read_embeddings=lambda a, b: shards.read("embedding", np.arange(a, b)),
                   dpp_solver=dpp_solver, ridge=ridge, progress=bar.update)
    bar.close()
    card = {"kind": "sample", "strategy": strategy, "m": int(m), "seed": int(seed), "group_by": group_by,
            "group_rows": int(group_rows), "n_groups": int(len(bounds) - 1), "dpp_solver": dpp_solver,
            "ridge": float(ridge), "teacher_shards": shards.describe(),
            "teacher_card_sha256": shards.teacher_card_sha256,
            "index_sha256": canonical_sha256(index.tolist())}
    out_dir = Path(out_dir)
    save_npz(out_dir / "sample.npz", index=index)
    cards.write_card(out_dir, card)
    return index, card


def load_sample(sample_dir):
    """Read a sample written by :func:`sample_shards`: ``(index int64 [m], card dict)``."""
    sample_dir = Path(sample_dir)
    path = sample_dir / "sample.npz"
    if not path.is_file():
        raise DataError(f"{path}: no sample found; run `sea-tf sample` first")
    with np.load(path) as data:
        index = data["index"].astype(np.int64)
    return index, cards.read_card(sample_dir)


def _column(shards, key):
    return np.concatenate([c[key] for c in shards.iter_chunks([key], rows=1 << 16)]) if shards.n_rows \
        else np.empty(0)
