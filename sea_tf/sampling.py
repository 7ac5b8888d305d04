"""Choose the M teacher windows φ is fitted on: random, loudness, k-DPP diversity, k-DPP quality×diversity.

docs/PROTOCOL.md §3.1. Candidates are the rows of a :class:`~sea_tf.shards.ShardSet`. Rows are split into
groups — one per source file (``group_by="source"``), consecutive blocks of ``group_rows`` rows,
i.e. a time window in recording order (``"window"``), or one group (``"all"``); or into the published
per-sensor streams (``"sensor-day"``, ``"sensor-week"``, ``"sensor-month"``: :func:`sample_streams`,
sensor and recording time from the shards or a sensor manifest). Groups play the
roles of the original code's 2-hour windows (loudness is ranked within a group) and of its per-day streams
(DPPs are solved per group, so the cost stays linear in the pool size for bounded groups).

Strategies
----------
``random``       uniform, without replacement.
``loudness``     probability ∝ q, the within-group loudness rank ``rank_min(dB) / count`` ∈ (0, 1].
``dpp``          a k-DPP per group with ``L = Xn Xnᵀ + ridge·I``.
``dpp-quality``  ``L = diag(q) Xn Xnᵀ diag(q) + ridge·I``, q as for ``loudness``.

Kernels (how the rows Xn are normalised)
----------------------------------------
``published``  L1-normalised rows and ridge 0.1, as in the paper's code. With 512-d rows the
               off-diagonal entries are ~1e-4 against a diagonal ~0.1, so this k-DPP is close to
               uniform — which is what the published pipeline sampled.
``cosine``     L2-normalised rows (entries are cosine similarities, diagonal 1 + ridge), where
               diversity actually shapes the sample.

Solvers
-------
``exact``       draws a k-DPP sample (:func:`sample_kdpp`), seeded per group: the published method.
``greedy-map``  the approximate *mode* (:func:`greedy_map_kdpp`): deterministic, and with the
                published kernel nearly "top-k by q²‖x‖²", i.e. the loudest rows. Kept for
                comparison, never the default.

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
from sea_tf.sensors import _TIMEFRAME_FORMAT, lookup_sensor, read_sensor_manifest
from sea_tf.shards import ShardSet, canonical_sha256

STRATEGIES = ("random", "loudness", "dpp", "dpp-quality")
#: Contiguous groups (:func:`group_bounds`), then per-sensor streams by timeframe (:func:`sample_streams`).
GROUP_BY = ("source", "window", "all", "sensor-day", "sensor-week", "sensor-month")
_CONTIGUOUS = GROUP_BY[:3]
DPP_SOLVERS = ("exact", "greedy-map")
KERNELS = ("published", "cosine")
# Names earlier releases accepted, and what replaced them (a clear error instead of a silent change).
_RENAMED_SOLVERS = {"greedy": "greedy-map", "dppy-exact": "exact"}


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
    if group_by not in _CONTIGUOUS:
        hint = "; sensor streams are not contiguous, use sample_streams" if group_by in GROUP_BY else ""
        raise ConfigError(f"group_by must be one of {', '.join(_CONTIGUOUS)}; got {group_by!r}{hint}")
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


def greedy_map_kdpp(features: np.ndarray, k: int, quality: np.ndarray | None = None,
                    ridge: float = 0.1) -> np.ndarray:
    """Approximate MAP of a k-DPP with ``L = diag(q) F Fᵀ diag(q) + ridge·I`` (Chen et al., 2018).

    ``dpp_solver: greedy-map``; not what the paper did (it sampled). The fast greedy MAP algorithm
    grows an incremental Cholesky factor of ``L`` restricted to the chosen set; each step adds the
    item with the largest marginal log-det gain. It never forms L: cost O(n·k·(D + k)) time and
    O(n·k) memory. dppy has no MAP inference, hence our own code.

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


def kernel_rows(embeddings: np.ndarray, kernel: str = "published") -> np.ndarray:
    """Normalise embedding rows as the k-DPP kernel needs: L1 (``published``) or L2 (``cosine``).

    A zero row (silence) stays zero, so its kernel row is the ridge alone (defined, never NaN).

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, D)]
    kernel : {"published", "cosine"}

    Returns
    -------
    np.ndarray [shape=(n, D), dtype=float64]
    """
    if kernel not in KERNELS:
        raise ConfigError(f"dpp_kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    x = np.asarray(embeddings, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ReduceError("teacher embeddings hold NaN or infinite values; re-run `sea-tf teacher-embed` "
                          "on the affected audio")
    return normalize(x, norm="l1" if kernel == "published" else "l2")


def _kernel_eigen(factor, ridge):
    """Eigenvalues and an orthonormal eigenbasis of ``L = F Fᵀ + ridge·I`` (n × n) without forming L.

    Returns ``(lam, vecs, n_ridge)``: ``lam`` [p] and ``vecs`` [n, p] for the part of L spanned by
    F's columns; the other ``n_ridge`` eigenvalues equal ``ridge`` exactly, on the orthogonal
    complement of ``vecs`` (left implicit: a basis of it would be n × (n − p)).
    """
    n, dims = factor.shape
    if n <= dims:  # primal: the n × n kernel is the smaller problem
        lam, vecs = np.linalg.eigh(factor @ factor.T)
        return np.maximum(lam, 0.0) + ridge, vecs, 0
    # Dual: F = U S Wᵀ, so L = U (S² + ridge) Uᵀ + ridge (I − U Uᵀ). U = F W / s is computed from
    # the D × D eigenproblem (4x cheaper than an SVD of F here); directions with s² below 1e-9 of
    # the largest are accurate to float64 only up to eps / 1e-9 and join the complement instead,
    # i.e. their eigenvalue ridge + s² is taken as ridge (a relative change below 1e-9·s²_max / ridge).
    s2, w = np.linalg.eigh(factor.T @ factor)
    keep = s2 > 1e-9 * max(float(s2[-1]), np.finfo(np.float64).tiny)
    s2, w = s2[keep], w[:, keep]
    vecs = (factor @ w) / np.sqrt(s2)
    return s2 + ridge, vecs, n - len(s2)


def _choose_eigenvectors(lam, k, rng):
    """Phase 1 of the spectral k-DPP sampler (Kulesza & Taskar 2012, Algorithm 8).

    Picks k of the N eigenvalues ``lam`` with probability ∝ the product of the chosen ones, using
    the elementary symmetric polynomials e_l(λ_1..λ_j), kept in log space because products of
    a few hundred eigenvalues ~0.1 underflow float64.

    Returns
    -------
    np.ndarray of bool [shape=(N,)]
    """
    n_eig = len(lam)
    with np.errstate(divide="ignore"):
        log_lam = np.log(lam)
    log_e = np.full((n_eig + 1, k + 1), -np.inf)
    log_e[:, 0] = 0.0
    for j in range(1, n_eig + 1):  # e_l^j = e_l^{j-1} + λ_j e_{l-1}^{j-1}
        log_e[j, 1:] = np.logaddexp(log_e[j - 1, 1:], log_lam[j - 1] + log_e[j - 1, :-1])
    if not np.isfinite(log_e[n_eig, k]):
        raise ReduceError(f"this k-DPP cannot pick {k} rows: its kernel has fewer than {k} non-zero "
                          "eigenvalues; use a positive ridge or ask for fewer rows")
    chosen = np.zeros(n_eig, dtype=bool)
    remaining = k
    for j in range(n_eig, 0, -1):
        if remaining == 0:
            break
        if j == remaining:  # every remaining eigenvalue must be taken (the ratio below is 1)
            chosen[:j] = True
            break
        log_p = log_lam[j - 1] + log_e[j - 1, remaining - 1] - log_e[j, remaining]
        if np.log(rng.random()) < log_p:
            chosen[j - 1] = True
            remaining -= 1
    return chosen


def _sample_projection(basis, rng):
    """Phase 2: a sample of the projection DPP with kernel ``K = V Vᵀ`` (V orthonormal, n × k).

    The chain rule with an incremental Cholesky factor of K: each step picks a row with
    probability ∝ its Schur-complement diagonal ``K_ii − K_iS K_S⁻¹ K_Si``, which sums to the
    number of rows still to pick. O(n·k²) time, O(n·k) memory.
    """
    n, k = basis.shape
    residual = np.einsum("ij,ij->i", basis, basis)
    factors = np.zeros((k, n))
    chosen = np.empty(k, dtype=np.int64)
    for t in range(k):
        weights = np.maximum(residual, 0.0)
        weights[chosen[:t]] = 0.0
        cumulative = np.cumsum(weights)
        i = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        i = min(i, n - 1)
        chosen[t] = i
        column = basis @ basis[i] - factors[:t].T @ factors[:t, i]
        factors[t] = column / np.sqrt(max(residual[i], np.finfo(np.float64).tiny))
        residual -= factors[t] * factors[t]
    return chosen


def sample_kdpp(features: np.ndarray, k: int, rng: np.random.Generator, quality: np.ndarray | None = None,
                ridge: float = 0.1) -> np.ndarray:
    """Exact sample of a k-DPP with ``L = diag(q) F Fᵀ diag(q) + ridge·I`` (Kulesza & Taskar 2012, §5.2.2).

    The spectral algorithm: choose k eigenvectors of L with probability ∝ the product of their
    eigenvalues (elementary symmetric polynomials), then sample the projection DPP they span.
    The eigendecomposition is taken on the D × D dual when n > D. The ridge makes L full rank:
    its n − D eigenvalues equal to the ridge have no explicit basis, so when j of them are chosen
    the sampler spans a uniformly random j-dimensional subspace of that eigenspace (Gaussian
    columns projected onto it). This is exact, not an approximation: summed over the j-subsets of
    any basis, the mixture of projection DPPs depends on the eigenspace only (Cauchy–Binet), and a
    Haar-random subspace averages over bases.

    We wrote this ourselves because dppy's exact k-DPP sampler eigendecomposes the n × n kernel
    (O(n³) per group) and its MCMC sampler (which the paper ran for 3 iterations) is not exact.

    Parameters
    ----------
    features : np.ndarray [shape=(n, D)]
        Rows already normalised for the kernel (:func:`kernel_rows`).
    k : int
        Sample size, ``0 ≤ k ≤ n``.
    rng : np.random.Generator
    quality : np.ndarray [shape=(n,)], optional
        Per-row quality q > 0 (default 1).
    ridge : float
        ≥ 0, added to the diagonal (0.1 in the paper's code).

    Returns
    -------
    np.ndarray [shape=(k,), dtype=int64]
        Distinct row numbers in the order drawn.
    """
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if not 0 <= k <= n:
        raise ReduceError(f"cannot pick {k} items from a group of {n} rows; ask for at most {n} per group "
                          "(larger groups: group_rows, or group_by=all)")
    if ridge < 0 or not np.isfinite(ridge):
        raise ConfigError(f"ridge must be a finite number ≥ 0, got {ridge}")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    q = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64)
    factor = q[:, None] * features
    lam, vecs, n_ridge = _kernel_eigen(factor, ridge)
    # The implicit ridge eigenvalues go first so the backward pass of phase 1 decides the explicit ones first.
    picked = _choose_eigenvectors(np.r_[np.full(n_ridge, float(ridge)), lam], k, rng)
    n_from_ridge = int(picked[:n_ridge].sum())
    basis = vecs[:, picked[n_ridge:]]
    if n_from_ridge:
        gauss = rng.standard_normal((n, n_from_ridge))
        gauss -= vecs @ (vecs.T @ gauss)
        gauss -= vecs @ (vecs.T @ gauss)  # twice: one projection leaves eps·‖vecs‖ of the span behind
        basis = np.hstack([basis, gauss])
    # One QR makes the explicit and random columns one orthonormal set (exactly, up to rounding).
    basis = np.linalg.qr(basis)[0]
    return _sample_projection(basis, rng)


def check_dpp_options(solver: str, kernel: str, ridge: float) -> None:
    """Refuse an unknown solver or kernel, or a negative ridge, with the names that exist."""
    if solver in _RENAMED_SOLVERS:
        raise ConfigError(f"dpp_solver {solver!r} was renamed; use dpp_solver: {_RENAMED_SOLVERS[solver]}")
    if solver not in DPP_SOLVERS:
        raise ConfigError(f"dpp_solver must be one of {', '.join(DPP_SOLVERS)}; got {solver!r}")
    if kernel not in KERNELS:
        raise ConfigError(f"dpp_kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ConfigError(f"ridge must be a finite number ≥ 0, got {ridge}")


def select(n_rows: int, m: int, strategy: str, seed: int, bounds: np.ndarray, loudness_db: np.ndarray | None = None,
           read_embeddings=None, dpp_solver: str = "exact", dpp_kernel: str = "published", ridge: float = 0.1,
           progress=None) -> np.ndarray:
    """Pick ``m`` of ``n_rows`` rows.

    Parameters
    ----------
    n_rows, m : int
    strategy : {"random", "loudness", "dpp", "dpp-quality"}
    seed : int
        Group g of a DPP strategy draws from ``np.random.default_rng([seed, g])``, so a group's
        sample does not depend on the groups before it.
    bounds : np.ndarray
        Group boundaries (:func:`group_bounds`).
    loudness_db : np.ndarray [shape=(n_rows,)], optional
        Needed by ``loudness`` and ``dpp-quality``.
    read_embeddings : callable (start, stop) -> np.ndarray [stop - start, D], optional
        Needed by the DPP strategies; called once per group.
    dpp_solver : {"exact", "greedy-map"}
    dpp_kernel : {"published", "cosine"}
    ridge : float
    progress : callable(int), optional
        Called with the number of groups done (for a progress bar).

    Returns
    -------
    np.ndarray [shape=(m,), dtype=int64], sorted global row numbers.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    check_dpp_options(dpp_solver, dpp_kernel, ridge)
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
    # The solvers loop over small matrix-vector products; threaded BLAS only adds synchronisation to
    # those (measured 20-40x slower on a busy 2-core machine), so the whole loop runs on one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        picked = _select_dpp(bounds, shares, q, seed, read_embeddings, dpp_solver, dpp_kernel, ridge, progress)
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _select_dpp(bounds, shares, q, seed, read_embeddings, dpp_solver, dpp_kernel, ridge, progress):
    picked = []
    for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        k = int(shares[g])
        if k:
            feats = kernel_rows(read_embeddings(int(a), int(b)), dpp_kernel)
            qg = None if q is None else q[a:b]
            if dpp_solver == "greedy-map":
                local = greedy_map_kdpp(feats, k, qg, ridge)
            else:
                local = sample_kdpp(feats, k, np.random.default_rng([int(seed), g]), qg, ridge)
            picked.append(local + a)
        if progress:
            progress(1)
    return picked


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


def sample_shards(shard_dirs, out_dir, m: int, strategy: str = "dpp-quality", seed: int = 20180123,
                  group_by: str = "window", group_rows: int = 1024, dpp_solver: str = "exact",
                  dpp_kernel: str = "published", ridge: float = 0.1, progress: bool = True, sensor_manifest=None,
                  allow_partial: bool = False):
    """Sample ``m`` rows of teacher shards and write ``OUT/sample.npz`` (``index``) + ``OUT/card.json``.

    ``group_by="sensor-<timeframe>"`` hands over to :func:`sample_streams` (then ``group_rows`` is
    unused and fewer than ``m`` rows may be picked).

    Parameters
    ----------
    shard_dirs : str, Path or list
        Teacher-shard directories (``sea-tf teacher-embed`` outputs), read as one table.
    out_dir : str or Path
    m : int
        Number of rows to pick.
    strategy, seed, group_by, group_rows, dpp_solver, dpp_kernel, ridge
        See :func:`select` and :func:`group_bounds`.
    progress : bool
        Show a tqdm bar over groups (DPP strategies).
    sensor_manifest : str or Path, optional
        For the sensor groupings: a sensor manifest CSV to use instead of the shards' own
        ``sensor_id`` / ``recording_time`` columns.
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    index : np.ndarray [shape=(m,), dtype=int64]
        Sorted global row numbers.
    card : dict
    """
    if group_by not in GROUP_BY:
        raise ConfigError(f"group_by must be one of {', '.join(GROUP_BY)}; got {group_by!r}")
    if group_by not in _CONTIGUOUS:
        return sample_streams(shard_dirs, out_dir, m, sensor_manifest, group_by.removeprefix("sensor-"), strategy,
                              seed, dpp_solver, dpp_kernel, ridge, progress, allow_partial)
    check_dpp_options(dpp_solver, dpp_kernel, ridge)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
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
                   dpp_solver=dpp_solver, dpp_kernel=dpp_kernel, ridge=ridge, progress=bar.update)
    bar.close()
    card = {"kind": "sample", "strategy": strategy, "m": int(m), "seed": int(seed), "group_by": group_by,
            "group_rows": int(group_rows), "n_groups": int(len(bounds) - 1), "dpp_solver": dpp_solver,
            "dpp_kernel": dpp_kernel, "ridge": float(ridge), "teacher_shards": shards.describe(),
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


# ------------------------------------------------------------------------------------------------
# Sensor streams (docs/PROTOCOL.md §3.1): the published "dpp / day" setting samples each sensor's
# recordings per timeframe. A sensor manifest names each source file's sensor and recording time.

STREAM_TIMEFRAMES = ("day", "week", "month", "all")


def timeframes(times, timeframe: str = "day") -> np.ndarray:
    """Timeframe label (``"064"`` day of year, ``"10"`` ISO week, ``"03"`` month, or ``"all"``) of Unix times.

    Timeframes follow the published code (day of year, ISO week, month) but in UTC: the original
    used the machine's local time zone, which made the grouping depend on where it ran.

    Parameters
    ----------
    times : np.ndarray [shape=(n,)]
        Unix seconds (UTC).
    timeframe : {"day", "week", "month", "all"}

    Returns
    -------
    np.ndarray of str [shape=(n,), dtype=object]
    """
    from datetime import datetime, timezone

    if timeframe not in STREAM_TIMEFRAMES:
        raise ConfigError(f"timeframe must be one of {', '.join(STREAM_TIMEFRAMES)}; got {timeframe!r}")
    times = np.asarray(times, dtype=np.float64)
    if timeframe == "all":
        return np.full(len(times), "all", dtype=object)
    # Rows of one file share its time: format each distinct time once (millions of rows, few files).
    unique, inverse = np.unique(times, return_inverse=True)
    labels = [datetime.fromtimestamp(t, tz=timezone.utc).strftime(_TIMEFRAME_FORMAT[timeframe]) for t in unique]
    return np.array(labels, dtype=object)[inverse.reshape(-1)] if len(times) else np.empty(0, dtype=object)


def stream_keys(sources, manifest: dict, timeframe: str = "day"):
    """Sensor and timeframe (:func:`timeframes`) of every row, from its source file.

    Returns
    -------
    sensors, frames : np.ndarray [shape=(n_rows,)], str
    """
    if timeframe not in STREAM_TIMEFRAMES:
        raise ConfigError(f"timeframe must be one of {', '.join(STREAM_TIMEFRAMES)}; got {timeframe!r}")
    sensors, times, unknown = [], [], set()
    for source in sources:
        entry = lookup_sensor(manifest, source)
        if entry is None:
            unknown.add(str(source))
            continue
        sensors.append(entry[0])
        times.append(entry[1].timestamp())
    frames = timeframes(np.array(times, dtype=np.float64), timeframe)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise DataError(f"the sensor manifest does not name {len(unknown)} source file(s) of the shards, e.g. "
                        f"{shown}; list every embedded file with its sensor_id and timestamp")
    return np.array(sensors, dtype=object), np.array(frames, dtype=object)


def plan_streams(sensors: np.ndarray, frames: np.ndarray, m: int) -> tuple[list, list]:
    """The published per-sensor, per-timeframe allocation.

    Each of the S sensors gets ceil(m / S) picks, split evenly over its T timeframes: ceil(ceil(m / S) / T)
    per timeframe; a timeframe with fewer rows than that is dropped (as the original code did,
    so the total can fall short of m).

    Returns
    -------
    streams : list of (sensor, frame, rows int64 [n], k)
    dropped : list of (sensor, frame, n_rows, k)
    """
    streams, dropped = [], []
    unique_sensors = sorted(set(sensors.tolist()))
    per_sensor = -(-int(m) // max(1, len(unique_sensors)))
    for sensor in unique_sensors:
        mine = sensors == sensor
        sensor_frames = sorted(set(frames[mine].tolist()))
        k = -(-per_sensor // len(sensor_frames))
        for frame in sensor_frames:
            rows = np.flatnonzero(mine & (frames == frame)).astype(np.int64)
            (streams.append((sensor, frame, rows, k)) if len(rows) >= k else dropped.append((sensor, frame, len(rows), k)))
    return streams, dropped


def sample_streams(shard_dirs, out_dir, m: int, manifest, timeframe: str = "day", strategy: str = "dpp-quality",
                   seed: int = 20180123, dpp_solver: str = "exact", dpp_kernel: str = "published", ridge: float = 0.1,
                   progress: bool = True, allow_partial: bool = False):
    """Like :func:`sample_shards`, with one group per (sensor, timeframe) stream (:func:`plan_streams`).

    Each stream is sampled on its own with :func:`select`, seeded by ``seed`` and the stream's
    sensor and timeframe (not its position in the list), with loudness ranked within the stream.

    Parameters
    ----------
    manifest : str, Path, dict or None
        A sensor manifest CSV (:func:`read_sensor_manifest`) or its parsed dict; None: the shards'
        own ``sensor_id`` and ``recording_time`` columns (``sea-tf teacher-embed --sensor-manifest``).
    timeframe : {"day", "week", "month", "all"}
        ``all``: one stream per sensor.

    Returns
    -------
    index : np.ndarray [shape=(n_picked,), dtype=int64]
        Sorted global row numbers (n_picked ≤ S·ceil(ceil(m/S)/T) per the allocation).
    card : dict
        :func:`sample_shards`' card with ``group_by: "sensor-<timeframe>"``, ``streams`` and ``dropped``.
    """
    check_dpp_options(dpp_solver, dpp_kernel, ridge)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    if manifest is None:
        if "sensor_id" not in shards.columns:
            raise DataError(f"{', '.join(map(str, shards.dirs))}: the shards carry no sensor ids; embed with "
                            "`sea-tf teacher-embed --sensor-manifest CSV`, or pass "
                            "`sea-tf sample --sensor-manifest CSV`")
        sensors = _column(shards, "sensor_id").astype(object)
        frames = timeframes(_column(shards, "recording_time"), timeframe)
    else:
        table = manifest if isinstance(manifest, dict) else read_sensor_manifest(manifest)
        sensors, frames = stream_keys(_column(shards, "source"), table, timeframe)
    streams, dropped = plan_streams(sensors, frames, m)
    if not streams:
        raise ReduceError(f"every (sensor, {timeframe}) stream has fewer rows than its share of {m} samples; ask "
                          "for fewer samples or a longer timeframe")
    loud = _column(shards, "loudness_db") if strategy in ("loudness", "dpp-quality") else None
    picked = []
    for s, (sensor, frame, rows, k) in enumerate(tqdm(streams, desc=f"sample {strategy} per stream", unit="stream",
                                                      disable=not progress)):
        key = list(f"{sensor}/{frame}".encode())
        stream_seed = int(np.random.SeedSequence([int(seed), *key]).generate_state(1)[0])
        local = select(len(rows), k, strategy, stream_seed, np.array([0, len(rows)]),
                       None if loud is None else loud[rows],
                       read_embeddings=lambda a, b, rows=rows: shards.read("embedding", rows[a:b]),
                       dpp_solver=dpp_solver, dpp_kernel=dpp_kernel, ridge=ridge)
        picked.append(rows[local])
    index = np.sort(np.concatenate(picked)).astype(np.int64)
    card = {"kind": "sample", "strategy": strategy, "m": int(m), "n_picked": int(len(index)), "seed": int(seed),
            "group_by": f"sensor-{timeframe}", "n_groups": len(streams), "dpp_solver": dpp_solver,
            "dpp_kernel": dpp_kernel, "ridge": float(ridge),
            "streams": [{"sensor": a, "timeframe": b, "rows": int(len(r)), "picked": int(k)} for a, b, r, k in streams],
            "dropped": [{"sensor": a, "timeframe": b, "rows": int(n), "needed": int(k)} for a, b, n, k in dropped],
            "sensors_from": "shards" if manifest is None else str(manifest) if isinstance(manifest, (str, Path))
            else "a parsed manifest",
            "teacher_shards": shards.describe(), "teacher_card_sha256": shards.teacher_card_sha256,
            "index_sha256": canonical_sha256(index.tolist())}
    out_dir = Path(out_dir)
    save_npz(out_dir / "sample.npz", index=index)
    cards.write_card(out_dir, card)
    return index, card
