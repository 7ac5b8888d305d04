"""k-DPP row choice: kernels, an exact sampler, the published MCMC approximation, a greedy MAP, a memory
bound and a spread score (pure numpy, no I/O).

docs/PROTOCOL.md §3.1. A k-DPP over the rows of one group, with ``L = Xn Xnᵀ + ridge·I`` (``dpp``) or
``L = diag(q) Xn Xnᵀ diag(q) + ridge·I`` (``dpp-quality``, q the within-group loudness rank).

Kernels (how the rows Xn are normalised, :func:`kernel_rows`)
---------------------------------------------------------------
``published``  L1-normalised rows and ridge 0.1, as in the paper's code. With 512-d rows the
               off-diagonal entries are ~1e-4 against a diagonal ~0.1, so this k-DPP is close to
               uniform — which is what the published pipeline sampled.
``cosine``     L2-normalised rows (entries are cosine similarities, diagonal 1 + ridge), where
               diversity actually shapes the sample.

Solvers
-------
``exact``       draws a k-DPP sample (:func:`sample_kdpp`), seeded per group: the method the paper
                *states* (a k-DPP sample), drawn exactly.
``mcmc``        the approximation the published *code* ran (:func:`mcmc_kdpp`): DPPy's k-DPP MCMC
                sampler (basis-exchange swaps) from a uniform random start, ``mcmc_iterations``
                chain states (DPPy's ``nb_iter``; the code ran 3), its start re-seeded identically
                for every stream (``mcmc_start_seed``). With so few swaps the sample is close to
                uniform; choose it to reproduce the published numbers, not for diversity.
``greedy-map``  the approximate *mode* (:func:`greedy_map_kdpp`): deterministic, and with the
                published kernel nearly "top-k by q²‖x‖²", i.e. the loudest rows. Kept for
                comparison, never the default.

Memory: a solver's tables grow with the group (:func:`kdpp_bytes`: O(n·k), and O(n²) where the exact
sampler builds the n × n kernel); :func:`check_kdpp_memory` refuses a group over ``max_kdpp_mb``
before anything is allocated.
"""
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from sea_tf.errors import ConfigError, ReduceError

DPP_SOLVERS = ("exact", "mcmc", "greedy-map")
KERNELS = ("published", "cosine")
# Names earlier releases accepted, and what replaced them (a clear error instead of a silent change).
_RENAMED_SOLVERS = {"greedy": "greedy-map", "dppy-exact": "exact"}


def greedy_map_kdpp(features: npt.ArrayLike, k: int, quality: npt.ArrayLike | None = None, *,
                    ridge: float) -> npt.NDArray[np.int64]:
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


def kernel_rows(embeddings: npt.ArrayLike, *, kernel: str = "published") -> npt.NDArray[np.float64]:
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


def _kernel_eigen(factor: npt.NDArray[np.float64],
                  ridge: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
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


def _choose_eigenvectors(lam: npt.NDArray[np.float64], k: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
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


def _sample_projection(basis: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.int64]:
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


def _group_rows(features: npt.ArrayLike, k: int) -> tuple[npt.NDArray[np.float64], int]:
    """A group's rows as float64 ``[n, D]`` and n, refusing a sample size outside ``0 ≤ k ≤ n``."""
    rows = np.asarray(features, dtype=np.float64)
    n = len(rows)
    if not 0 <= k <= n:
        raise ReduceError(f"cannot pick {k} items from a group of {n} rows; ask for at most {n} per group "
                          "(larger groups: group_rows, or group_by=all)")
    return rows, n


def _quality_weighted(features: npt.NDArray[np.float64], quality: npt.ArrayLike | None) -> npt.NDArray[np.float64]:
    """``diag(q) F``: the factor of ``L = diag(q) F Fᵀ diag(q) + ridge·I`` (q = 1 without quality)."""
    q = np.ones(len(features)) if quality is None else np.asarray(quality, dtype=np.float64)
    return q[:, None] * features


def sample_kdpp(features: npt.ArrayLike, k: int, rng: np.random.Generator, quality: npt.ArrayLike | None = None,
                *, ridge: float) -> npt.NDArray[np.int64]:
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
    (O(n³) per group) and its MCMC sampler (which the published code ran for 3 iterations,
    :func:`mcmc_kdpp`) is not exact.

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
    features, n = _group_rows(features, k)
    if ridge < 0 or not np.isfinite(ridge):
        raise ConfigError(f"ridge must be a finite number ≥ 0, got {ridge}")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    factor = _quality_weighted(features, quality)
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


def mcmc_kdpp(features: npt.ArrayLike, k: int, rng: np.random.Generator, quality: npt.ArrayLike | None = None,
              *, ridge: float, iterations: int, start_seed: int | None) -> npt.NDArray[np.int64]:
    """The published code's k-DPP approximation: DPPy's basis-exchange MCMC from a uniform start.

    ``dpp_solver: mcmc``. As DPPy documents its k-DPP MCMC sampler (``sample_mcmc_k_dpp``, mode
    ``"E"``, ``basis_exchange_sampler``): the chain holds ``iterations`` states (DPPy's ``nb_iter``),
    the first the start S₀; each later state is a lazy step — with probability ½ propose swapping
    one chosen item (uniform over S) for one unchosen item (uniform over the rest) and accept with
    probability ``min(1, det L_S' / det L_S)``, otherwise stay. The last state is the sample. So
    ``iterations`` 3 (the published setting) is two steps, about one swap proposal in all: the
    sample is nearly the uniform start. 0 and 1 both return the start. Determinants are taken of
    the k × k submatrix only (O(k²·D + k³) a proposal; L itself is never formed).

    Parameters
    ----------
    features : np.ndarray [shape=(n, D)]
        Rows already normalised for the kernel (:func:`kernel_rows`).
    k : int
        Sample size, ``0 ≤ k ≤ n``.
    rng : np.random.Generator
        Draws the proposals (and the start when ``start_seed`` is None).
    quality : np.ndarray [shape=(n,)], optional
        Per-row quality q > 0 (default 1): ``L = diag(q) F Fᵀ diag(q) + ridge·I``.
    ridge : float
        ≥ 0, added to the diagonal.
    iterations : int
        ≥ 0, DPPy's ``nb_iter``: the number of chain states, start included.
    start_seed : int or None
        The start is ``np.random.RandomState(start_seed).choice(n, k, replace=False)``, re-seeded for
        every call as the published code did for every stream (seed 413121), so groups of one size
        start from the same rows; None: drawn from ``rng`` (a start of the group's own).

    Returns
    -------
    np.ndarray [shape=(k,), dtype=int64]
        Distinct row numbers (the start's order, swapped items in place).
    """
    features, n = _group_rows(features, k)
    if iterations < 0:
        raise ConfigError(f"mcmc_iterations must be ≥ 0, got {iterations}")
    if start_seed is None:
        chosen = rng.choice(n, size=k, replace=False).astype(np.int64)
    else:
        chosen = np.random.RandomState(start_seed).choice(n, size=k, replace=False).astype(np.int64)
    if k in (0, n):  # nothing to swap in or out
        return chosen
    factor = _quality_weighted(features, quality)

    def log_det(rows: npt.NDArray[np.int64]) -> float:
        sub = factor[rows] @ factor[rows].T
        sub[np.diag_indices(k)] += ridge
        sign, value = np.linalg.slogdet(sub)
        return float(value) if sign > 0 else -np.inf

    current = log_det(chosen)
    inside = np.zeros(n, dtype=bool)
    inside[chosen] = True
    for _ in range(1, iterations):
        if rng.random() >= 0.5:  # the lazy half: stay
            continue
        position = int(rng.integers(k))
        outside = np.flatnonzero(~inside)
        proposal = chosen.copy()
        proposal[position] = outside[rng.integers(len(outside))]
        proposed = log_det(proposal)
        # Accept with probability min(1, det ratio), compared in logs (a ratio of two products of
        # k eigenvalues ~0.1 underflows for large k); a singular state is left for any regular one.
        with np.errstate(invalid="ignore"):
            accept = np.log(rng.random()) < proposed - current
        if accept:
            inside[chosen[position]] = False
            inside[proposal[position]] = True
            chosen, current = proposal, proposed
    return chosen


def kdpp_bytes(n: int, k: int, dims: int, *, solver: str) -> int:
    """Bytes of the float64 tables a solver holds at its peak for one group of ``n`` rows of ``dims``, picking ``k``.

    All solvers hold the normalised rows (n·D). ``exact`` adds the eigenbasis (n·D and D² on the
    dual, or the n × n kernel and its n × n eigenvectors when n ≤ D) and three n × k tables (the
    chosen basis, its QR and the chain rule's Cholesky factors); ``greedy-map`` one k × n factor;
    ``mcmc`` the k × k submatrix and its k rows.
    """
    n, k, dims = int(n), int(k), int(dims)
    rows = n * dims
    if solver == "exact":
        eigen = 2 * n * n if n <= dims else n * dims + dims * dims
        return 8 * (rows + eigen + 3 * n * k)
    if solver == "greedy-map":
        return 8 * (rows + n * k)
    return 8 * (rows + k * dims + 2 * k * k)


def check_kdpp_memory(groups: Iterable[tuple[int, int]], dims: int, *, solver: str, max_mb: float) -> None:
    """Refuse, before anything is allocated, a group whose k-DPP tables (:func:`kdpp_bytes`) exceed ``max_mb``.

    Parameters
    ----------
    groups : iterable of (n, k)
        Each group's rows and its share of the sample.
    dims : int
        Embedding dimensions D.
    solver : str
    max_mb : float
        The bound in MiB (``max_kdpp_mb``).

    Raises
    ------
    ConfigError
        One line naming the group size, k, the bytes and what to do.
    """
    worst = max(((kdpp_bytes(n, k, dims, solver=solver), n, k) for n, k in groups if k), default=None)
    if worst is None or worst[0] <= max_mb * 2 ** 20:
        return
    size, n, k = worst
    raise ConfigError(f"the {solver} k-DPP of a group of {n:,} rows picking k = {k:,} ({dims}-d rows) needs "
                      f"{size:,} bytes ({size / 2 ** 30:,.1f} GiB), over max_kdpp_mb {max_mb:g}; split the rows "
                      "into smaller groups (group_by: sensor-day, or group_by: window with a smaller group_rows) "
                      "or raise max_kdpp_mb")


def check_dpp_options(*, solver: str, kernel: str, ridge: float, mcmc_iterations: int, max_kdpp_mb: float) -> None:
    """Refuse an unknown solver or kernel, a negative ridge, iteration count or memory bound, with what is allowed."""
    if solver in _RENAMED_SOLVERS:
        raise ConfigError(f"dpp_solver {solver!r} was renamed; use dpp_solver: {_RENAMED_SOLVERS[solver]}")
    if solver not in DPP_SOLVERS:
        raise ConfigError(f"dpp_solver must be one of {', '.join(DPP_SOLVERS)}; got {solver!r}")
    if kernel not in KERNELS:
        raise ConfigError(f"dpp_kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise ConfigError(f"ridge must be a finite number ≥ 0, got {ridge}")
    if isinstance(mcmc_iterations, bool) or not isinstance(mcmc_iterations, (int, np.integer)) or mcmc_iterations < 0:
        raise ConfigError(f"mcmc_iterations must be a whole number ≥ 0 (DPPy's nb_iter), got {mcmc_iterations!r}")
    if not (np.isfinite(max_kdpp_mb) and max_kdpp_mb > 0):
        raise ConfigError(f"max_kdpp_mb must be a number > 0, got {max_kdpp_mb}")


def diversity(embeddings: npt.ArrayLike) -> float:
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


def mcmc_card(solver: str, iterations: int, start_seed: int | None) -> dict[str, int | None]:
    """The mcmc solver's settings for a sample card (none for the other solvers, whose cards stay as they were)."""
    return {"mcmc_iterations": int(iterations), "mcmc_start_seed": start_seed} if solver == "mcmc" else {}
