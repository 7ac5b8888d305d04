"""``dpp_solver: mcmc``: the published code's k-DPP approximation, DPPy's basis-exchange MCMC (issue #24).

DPPy documents its k-DPP MCMC sampler (``sample_mcmc_k_dpp``, mode ``"E"``) as a chain of ``nb_iter``
states from the start S₀, each later state a lazy step: with probability ½ propose swapping a uniform
chosen item for a uniform unchosen one, accepted with probability min(1, det L_S' / det L_S). On a
6-item kernel every k-subset is enumerable, so the chain's law after t steps is ``u·Pᵗ`` for the exact
transition matrix P built here from that description, and the k-DPP itself is ``det L_S / Σ det``.
Empirical laws of independent chains are compared by total variation with the Bretagnolle–Huber–Carol
bound: for N draws over C outcomes, P(‖p̂ − p‖₁ ≥ ε) ≤ 2^C·exp(−N ε² / 2), so with probability
1 − δ the TV distance ½‖p̂ − p‖₁ is below ε/2 = ½·sqrt(2 (C ln 2 + ln 1/δ) / N).
"""
from itertools import combinations

import numpy as np
import pytest

from sea_tf import sampling
from sea_tf.errors import ConfigError
from stage_args_support import settings

N_ITEMS, K = 6, 3
SUBSETS = list(combinations(range(N_ITEMS), K))
DELTA = 1e-6                     # allowed chance of a false failure per comparison


def _kernel():
    # Two near-duplicate pairs and two distinct items: the k-DPP avoids subsets holding a pair.
    base = np.array([[1.0, 0.0, 0.0], [0.97, 0.2, 0.0], [0.0, 1.0, 0.0], [0.1, 0.98, 0.1],
                     [0.0, 0.0, 1.0], [0.6, 0.6, 0.5]])
    quality = np.array([1.0, 0.8, 1.2, 0.9, 1.0, 0.7])
    return base, quality, 0.05


def _kdpp_law(features, quality, ridge):
    factor = quality[:, None] * features
    kernel = factor @ factor.T + ridge * np.eye(len(features))
    dets = np.array([np.linalg.det(kernel[np.ix_(s, s)]) for s in SUBSETS])
    return dets / dets.sum()


def _transition(pi):
    """DPPy's lazy basis-exchange step on the k-subsets, as a C × C matrix."""
    index = {s: i for i, s in enumerate(SUBSETS)}
    p = np.zeros((len(SUBSETS), len(SUBSETS)))
    for i, s in enumerate(SUBSETS):
        for out in s:
            for new in sorted(set(range(N_ITEMS)) - set(s)):
                j = index[tuple(sorted(set(s) - {out} | {new}))]
                p[i, j] += 0.5 / K / (N_ITEMS - K) * min(1.0, pi[j] / pi[i])
        p[i, i] = 1.0 - p[i].sum()
    return p


def _chain_law(pi, iterations):
    """Law of the last of ``iterations`` chain states from a uniform start (DPPy: nb_iter − 1 steps)."""
    start = np.full(len(SUBSETS), 1 / len(SUBSETS))
    return start @ np.linalg.matrix_power(_transition(pi), max(iterations - 1, 0))


def _empirical(draws, iterations):
    features, quality, ridge = _kernel()
    counts = np.zeros(len(SUBSETS))
    index = {s: i for i, s in enumerate(SUBSETS)}
    for i in range(draws):
        pick = sampling.mcmc_kdpp(features, K, np.random.default_rng([11, i]), quality, ridge=ridge,
                                  iterations=iterations, start_seed=None)
        counts[index[tuple(sorted(pick.tolist()))]] += 1
    return counts / draws


def _tv(p, q):
    return 0.5 * float(np.abs(p - q).sum())


def _sampling_bound(draws):
    return 0.5 * np.sqrt(2 * (len(SUBSETS) * np.log(2) + np.log(1 / DELTA)) / draws)


def test_a_long_chain_draws_the_exact_kdpp():
    features, quality, ridge = _kernel()
    pi = _kdpp_law(features, quality, ridge)
    draws, iterations = 4000, 40
    bias = _tv(_chain_law(pi, iterations), pi)       # what 39 steps leave of the uniform start
    bound = _sampling_bound(draws)
    assert bias < bound / 4                           # the chain has (nearly) mixed
    assert _tv(np.full(len(SUBSETS), 1 / len(SUBSETS)), pi) > 4 * bound   # and uniform draws would fail
    assert _tv(_empirical(draws, iterations), pi) < bias + bound


def test_the_published_three_iterations_stay_near_the_uniform_start():
    # nb_iter = 3: two lazy steps, so about one swap proposal — DPPy's count, not three swaps.
    features, quality, ridge = _kernel()
    pi = _kdpp_law(features, quality, ridge)
    draws = 24000                                     # enough to tell two steps from three
    three = _chain_law(pi, 3)
    bound = _sampling_bound(draws)
    assert _tv(three, _chain_law(pi, 4)) > 2 * bound  # a third step would be told apart
    assert _tv(_empirical(draws, 3), three) < bound


def test_no_iterations_return_the_published_start():
    features, quality, ridge = _kernel()
    start = np.random.RandomState(413121).choice(N_ITEMS, K, replace=False)
    for iterations in (0, 1):
        pick = sampling.mcmc_kdpp(features, K, np.random.default_rng(0), quality, ridge=ridge,
                                  iterations=iterations, start_seed=413121)
        assert pick.tolist() == start.tolist()


def test_same_seed_same_sample_and_groups_of_one_size_share_the_start():
    rng = np.random.default_rng(3)
    emb = np.abs(rng.normal(size=(200, 8)))
    bounds = sampling.group_bounds(200, group_by="window", group_rows=50)

    def pick(seed, **changes):
        return sampling.select(200, 40, bounds=bounds, read_embeddings=lambda a, b: emb[a:b],
                               **settings("sampling", of=sampling.select, strategy="dpp", seed=seed,
                                          dpp_solver="mcmc", **changes))

    assert np.array_equal(pick(1, mcmc_iterations=40), pick(1, mcmc_iterations=40))
    assert not np.array_equal(pick(1, mcmc_iterations=40, mcmc_start_seed=None),
                              pick(2, mcmc_iterations=40, mcmc_start_seed=None))
    # No steps: every 50-row group starts from RandomState(413121)'s 10 rows, re-seeded per group.
    start = np.sort(np.random.RandomState(413121).choice(50, 10, replace=False))
    assert np.array_equal(pick(1, mcmc_iterations=0), np.concatenate([start + a for a in range(0, 200, 50)]))


def test_an_unknown_solver_or_iteration_count_is_one_line():
    emb = np.ones((20, 4))
    bounds = np.array([0, 20])
    for changes, message in (({"dpp_solver": "mcmcs"}, "dpp_solver must be one of exact, mcmc, greedy-map"),
                             ({"dpp_solver": "mcmc", "mcmc_iterations": -1}, "mcmc_iterations must be")):
        with pytest.raises(ConfigError, match=message) as err:
            sampling.select(20, 5, bounds=bounds, read_embeddings=lambda a, b: emb[a:b],
                            **settings("sampling", of=sampling.select, strategy="dpp", **changes))
        assert "\n" not in str(err.value)


def test_the_memory_bound_refuses_before_reading_a_group():
    # group_by: all at paper scale: 5,000,000 rows, k = 500,000. Only one row may be read (its width).
    n_rows, m = 5_000_000, 500_000
    read = []

    def read_embeddings(a, b):
        read.append(b - a)
        assert b - a <= 1, "a group was read before the bound was checked"
        return np.ones((b - a, 512), np.float32)

    for solver in ("exact", "mcmc", "greedy-map"):
        expected = sampling.kdpp_bytes(n_rows, m, 512, solver=solver)
        with pytest.raises(ConfigError, match=f"group of 5,000,000 rows picking k = 500,000.*{expected:,} bytes"
                                              ".*group_by") as err:
            sampling.select(n_rows, m, bounds=np.array([0, n_rows]), read_embeddings=read_embeddings,
                            **settings("sampling", of=sampling.select, strategy="dpp", dpp_solver=solver,
                                       max_kdpp_mb=1))
        assert "\n" not in str(err.value)
    assert read == [1, 1, 1]
    # The exact tables at that scale: 3 n·k float64 alone are 60 TB, far over any default bound.
    assert sampling.kdpp_bytes(n_rows, m, 512, solver="exact") > 3 * 8 * n_rows * m


def test_the_default_bound_admits_the_default_groups():
    cfg = settings("sampling", of=sampling.select)
    for solver in sampling.DPP_SOLVERS:
        sampling.check_kdpp_memory([(2048, 1024)], 512, solver=solver, max_mb=cfg["max_kdpp_mb"])
