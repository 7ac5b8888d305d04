"""The row chooser: pick ``m`` of ``n`` rows by a strategy, group by group (docs/PROTOCOL.md §3.1).

Shard sampling (:mod:`sea_tf.sampling.select_shards`) and stream sampling
(:mod:`sea_tf.sampling.streams`) both choose through :func:`select`; it sits below both so that
neither imports the other for it.

Strategies
----------
``random``       uniform, without replacement.
``loudness``     probability ∝ q ∈ (0, 1]: the within-group loudness rank ``rank_min(dB) / count``
                 (``quality: rms-group``), or the ``relevance`` given (``dba-slot``, :mod:`sea_tf.sampling.quality`).
``dpp``          a k-DPP per group with ``L = Xn Xnᵀ + ridge·I`` (:mod:`sea_tf.sampling.kdpp`).
``dpp-quality``  ``L = diag(q) Xn Xnᵀ diag(q) + ridge·I``, q as for ``loudness``.
"""
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from sea_tf.errors import ConfigError, ReduceError
from sea_tf.sampling.groups import allocate, loudness_rank, weighted_without_replacement
from sea_tf.sampling.kdpp import (check_dpp_options, check_kdpp_memory, greedy_map_kdpp, kernel_rows, mcmc_kdpp,
                                  sample_kdpp)
from sea_tf.shards import ShardSet

STRATEGIES = ("random", "loudness", "dpp", "dpp-quality")

#: ``read_embeddings(start, stop)`` -> the embeddings of rows ``start:stop`` [stop - start, D].
ReadEmbeddings = Callable[[int, int], np.ndarray]


def select(n_rows: int, m: int, *, strategy: str, seed: int, bounds: np.ndarray,
           loudness_db: npt.ArrayLike | None = None, relevance: npt.ArrayLike | None = None,
           read_embeddings: ReadEmbeddings | None = None,
           dpp_solver: str, dpp_kernel: str, ridge: float, mcmc_iterations: int, mcmc_start_seed: int | None,
           max_kdpp_mb: float, progress: Callable[[int], object] | None = None) -> npt.NDArray[np.int64]:
    """Pick ``m`` of ``n_rows`` rows.

    Parameters
    ----------
    n_rows, m : int
    strategy : {"random", "loudness", "dpp", "dpp-quality"}
    seed : int
        Group g of a DPP strategy draws from ``np.random.default_rng([seed, g])``, so a group's
        sample does not depend on the groups before it.
    bounds : np.ndarray
        Group boundaries (:func:`~sea_tf.sampling.groups.group_bounds`).
    loudness_db : np.ndarray [shape=(n_rows,)], optional
        Needed by ``loudness`` and ``dpp-quality`` (``quality: rms-group``: q is its rank within the group).
    relevance : np.ndarray [shape=(n_rows,)], optional
        q itself, in (0, 1], instead of ``loudness_db``'s rank (``quality: dba-slot``:
        :func:`~sea_tf.sampling.quality.dba_slot_quality`).
    read_embeddings : callable (start, stop) -> np.ndarray [stop - start, D], optional
        Needed by the DPP strategies; called once per group.
    dpp_solver : {"exact", "mcmc", "greedy-map"}
    dpp_kernel : {"published", "cosine"}
    ridge : float
    mcmc_iterations, mcmc_start_seed : int, int or None
        ``mcmc`` only: chain states and the start's seed (:func:`~sea_tf.sampling.kdpp.mcmc_kdpp`).
    max_kdpp_mb : float
        Refuse (ConfigError) before any group is solved when one group's k-DPP tables would exceed
        this many MiB (:func:`~sea_tf.sampling.kdpp.check_kdpp_memory`).
    progress : callable(int), optional
        Called with the number of groups done (for a progress bar).

    Returns
    -------
    np.ndarray [shape=(m,), dtype=int64], sorted global row numbers.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    check_dpp_options(solver=dpp_solver, kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                      max_kdpp_mb=max_kdpp_mb)
    m = int(m)
    if m < 1:
        raise ReduceError(f"the number of samples must be ≥ 1, got {m}")
    if m > n_rows:
        raise ReduceError(f"cannot pick {m} samples from {n_rows} teacher rows; ask for at most {n_rows} "
                          "or embed more audio")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n_rows, size=m, replace=False)).astype(np.int64)
    if strategy == "loudness":
        q = _quality(loudness_db, relevance, bounds)
        return np.sort(weighted_without_replacement(q, m, rng))
    quality = _quality(loudness_db, relevance, bounds) if strategy == "dpp-quality" else None
    shares = allocate(np.diff(bounds), m)
    if shares.any():  # one row tells the width D; the bound is checked before any group is read whole
        first = int(np.flatnonzero(shares)[0])
        dims = read_embeddings(int(bounds[first]), int(bounds[first]) + 1).shape[1]  # type: ignore[misc]
        check_kdpp_memory(zip(np.diff(bounds).tolist(), shares.tolist()), dims, solver=dpp_solver, max_mb=max_kdpp_mb)
    # The solvers loop over small matrix-vector products; threaded BLAS only adds synchronisation to
    # those (measured 20-40x slower on a busy 2-core machine), so the whole loop runs on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        picked = _select_dpp(bounds, shares, quality, seed=seed, read_embeddings=read_embeddings, dpp_solver=dpp_solver,
                             dpp_kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                             mcmc_start_seed=mcmc_start_seed, progress=progress)
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _quality(loudness_db: npt.ArrayLike | None, relevance: npt.ArrayLike | None,
             bounds: np.ndarray) -> npt.NDArray[np.float64]:
    """q of every row: ``relevance`` when given, else the within-group rank of ``loudness_db``."""
    if relevance is not None:
        return np.asarray(relevance, dtype=np.float64)
    # loudness_db is documented as needed by the loudness strategies; None fails inside the ranking, as it always did.
    return loudness_rank(loudness_db, bounds)  # type: ignore[arg-type]


def _select_dpp(bounds: np.ndarray, shares: npt.NDArray[np.int64], q: npt.NDArray[np.float64] | None, *,
                seed: int, read_embeddings: ReadEmbeddings | None, dpp_solver: str, dpp_kernel: str,
                ridge: float, mcmc_iterations: int, mcmc_start_seed: int | None,
                progress: Callable[[int], object] | None) -> list[npt.NDArray[np.int64]]:
    """Solve each group's k-DPP for its share; the picks as global row numbers, group by group."""
    picked = []
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        k = int(shares[g])
        if k:
            # The DPP strategies need read_embeddings; without it this call raises TypeError, as it always did.
            feats = kernel_rows(read_embeddings(int(a), int(b)), kernel=dpp_kernel)  # type: ignore[misc]
            qg = None if q is None else q[a:b]
            if dpp_solver == "greedy-map":
                local = greedy_map_kdpp(feats, k, qg, ridge=ridge)
            elif dpp_solver == "mcmc":
                local = mcmc_kdpp(feats, k, np.random.default_rng([int(seed), g]), qg, ridge=ridge,
                                  iterations=mcmc_iterations, start_seed=mcmc_start_seed)
            else:
                local = sample_kdpp(feats, k, np.random.default_rng([int(seed), g]), qg, ridge=ridge)
            picked.append(local + a)
        if progress:
            progress(1)
    return picked


def _column(shards: ShardSet, key: str) -> np.ndarray:
    """One column of every shard row, in row order (empty when the set has no rows)."""
    return np.concatenate([c[key] for c in shards.iter_chunks([key], rows=1 << 16)]) if shards.n_rows \
        else np.empty(0)
