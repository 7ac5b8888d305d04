"""Samplers: seeded, the right statistics, the exact k-DPP against brute force, greedy MAP = log-det greedy."""
import itertools

import numpy as np
import pytest
from scipy.stats import chisquare
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits

from sea_tf import sampling
from sea_tf.errors import ConfigError, ReduceError
from sea_tf.shards import write_table
from stage_args_support import settings

CARD = {"name": "synthetic-teacher"}


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """3000 rows in 12 clusters, one cluster holding 60 % of the rows; loudness independent of cluster."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(12, 32)) * 4.0
    label = rng.choice(12, size=3000, p=np.r_[0.6, np.full(11, 0.4 / 11)])
    emb = (centres[label] + rng.normal(size=(3000, 32))).astype(np.float32)
    loud = rng.normal(-35, 8, size=3000).astype(np.float32)
    out = tmp_path_factory.mktemp("clustered")
    write_table(out, {"embedding": emb, "loudness_db": loud, "label": label.astype(np.int32),
                      "source": np.array([f"rec{i // 20:04d}.wav" for i in range(3000)], dtype=object)},
                CARD, shard_rows=512)
    return out, emb, label, loud


@pytest.mark.parametrize("strategy", sampling.STRATEGIES)
def test_each_strategy_is_seeded_and_valid(clustered, tmp_path, strategy):
    shards, *_ = clustered
    a, card = sampling.sample_shards(shards, tmp_path / "a", 150,
                                     **settings("sampling", strategy=strategy, seed=3, group_rows=500, progress=False))
    b, _ = sampling.sample_shards(shards, tmp_path / "b", 150,
                                  **settings("sampling", strategy=strategy, seed=3, group_rows=500, progress=False))
    assert np.array_equal(a, b)
    assert len(np.unique(a)) == 150 and a.min() >= 0 and a.max() < 3000 and np.all(np.diff(a) > 0)
    assert (tmp_path / "a" / "sample.npz").read_bytes() == (tmp_path / "b" / "sample.npz").read_bytes()
    assert card["strategy"] == strategy and card["m"] == 150
    index, read_card = sampling.load_sample(tmp_path / "a")
    assert np.array_equal(index, a) and read_card == card
    if strategy in ("random", "loudness"):
        c, _ = sampling.sample_shards(shards, tmp_path / "c", 150,
                                      **settings("sampling", strategy=strategy, seed=4, progress=False))
        assert not np.array_equal(a, c)


def test_loudness_prefers_loud_windows(clustered, tmp_path):
    shards, _, _, loud = clustered
    bounds = sampling.group_bounds(3000, group_by="window", group_rows=500)
    q = sampling.loudness_rank(loud, bounds)
    assert q.min() > 0 and q.max() == 1.0
    assert np.isclose(q[:500].mean(), (500 + 1) / 2 / 500)  # ranks 1..500 over 500 (no ties)
    idx, _ = sampling.sample_shards(shards, tmp_path, 600,
                                    **settings("sampling", strategy="loudness", group_rows=500, progress=False))
    # P ∝ rank: the expected mean rank of picks is well above the pool's 0.5 (≈ 0.63 for 600 of 3000).
    assert q[idx].mean() > 0.6
    assert np.median(loud[idx]) > np.median(loud) + 3.0


def test_dpp_covers_clusters_better_than_random(clustered):
    """With the cosine kernel and a small ridge a k-DPP sample spreads over the clusters (5 seeds)."""
    _, emb, label, loud = clustered
    bounds = np.array([0, 3000])
    share_big, n_clusters, spread = {}, {}, {}
    for strategy in ("random", "dpp", "dpp-quality"):
        picks = [sampling.select(3000, 24, bounds=bounds, loudness_db=loud, read_embeddings=lambda a, b: emb[a:b],
                                 **settings("sampling", of=sampling.select, strategy=strategy, seed=seed,
                                            dpp_solver="exact", dpp_kernel="cosine", ridge=0.01))
                 for seed in range(5)]
        share_big[strategy] = np.mean([np.mean(label[i] == 0) for i in picks])
        n_clusters[strategy] = np.mean([len(np.unique(label[i])) for i in picks])
        spread[strategy] = np.mean([sampling.diversity(emb[i]) for i in picks])
    assert share_big["random"] > 0.5                         # random follows the 60 % cluster
    assert share_big["dpp"] < share_big["random"] - 0.12     # the DPP spreads its picks over the clusters
    assert n_clusters["dpp"] > n_clusters["random"] + 2
    assert spread["dpp"] > spread["random"] + 0.1
    assert spread["dpp-quality"] > spread["random"] + 0.05


def test_greedy_map_matches_brute_force_log_det_greedy():
    rng = np.random.default_rng(0)
    x = normalize(rng.random((40, 6)), norm="l1")
    q = rng.random(40) + 0.5
    kernel = q[:, None] * (x @ x.T) * q[None, :] + 0.1 * np.eye(40)
    chosen = []
    for _ in range(5):  # naive greedy: the item that maximises det(L_S) next
        rest = [i for i in range(40) if i not in chosen]
        dets = [np.linalg.slogdet(kernel[np.ix_(chosen + [i], chosen + [i])])[1] for i in rest]
        chosen.append(rest[int(np.argmax(dets))])
    with threadpool_limits(limits=1, user_api="blas"):
        assert list(sampling.greedy_map_kdpp(x, 5, q, ridge=0.1)) == chosen


def test_allocation_and_groups():
    shares = sampling.allocate([10, 30, 60], 10)
    assert shares.tolist() == [1, 3, 6] and sampling.allocate([1, 1, 100], 102).tolist() == [1, 1, 100]
    bounds = sampling.group_bounds(6, np.array(["a", "a", "b", "b", "b", "c"]),
                                    **settings("sampling", of=sampling.group_bounds, group_by="source"))
    assert bounds.tolist() == [0, 2, 5, 6]
    assert sampling.group_bounds(10, group_by="window", group_rows=4).tolist() == [0, 4, 8, 10]


def test_too_many_samples_is_a_clear_error(clustered, tmp_path):
    shards, *_ = clustered
    with pytest.raises(ReduceError, match="cannot pick 3001 samples from 3000"):
        sampling.sample_shards(shards, tmp_path / "s", 3001, **settings("sampling", strategy="random", progress=False))
    assert not (tmp_path / "s").exists()


def _brute_force_kdpp(kernel, k):
    subsets = list(itertools.combinations(range(len(kernel)), k))
    dets = np.array([np.linalg.det(kernel[np.ix_(s, s)]) for s in subsets])
    return subsets, dets / dets.sum()


@pytest.mark.parametrize("n, dims", [(9, 3), (6, 8)])  # dual path with implicit ridge eigenvectors; primal path
def test_exact_kdpp_matches_brute_force_probabilities(n, dims):
    rng = np.random.default_rng(11)
    x = sampling.kernel_rows(rng.normal(size=(n, dims)), kernel="cosine")
    x[2] = 0.0  # a silent row: its kernel row is the ridge alone
    q = rng.random(n) + 0.3
    ridge, k = 0.05, 3
    subsets, prob = _brute_force_kdpp(q[:, None] * (x @ x.T) * q[None, :] + ridge * np.eye(n), k)
    draws = 3000
    gen = np.random.default_rng(5)
    counts = dict.fromkeys(subsets, 0)
    for _ in range(draws):
        picked = sampling.sample_kdpp(x, k, gen, q, ridge=ridge)
        assert len(set(picked.tolist())) == k
        counts[tuple(sorted(picked.tolist()))] += 1
    observed = np.array([counts[s] for s in subsets])
    # Pearson's test against the exact law; the seeded draw passes at p ≈ 0.1–0.9, a sampler off by
    # a few per cent of probability mass fails at p < 1e-6 with 3000 draws.
    assert chisquare(observed, prob * draws).pvalue > 1e-3
    # Negative control: the same counts are far from uniform, so the test has the power to tell.
    assert chisquare(observed, np.full(len(subsets), draws / len(subsets))).pvalue < 1e-6


def test_exact_kdpp_is_seeded_and_takes_every_row_when_k_is_n():
    x = sampling.kernel_rows(np.random.default_rng(0).random((50, 8)), kernel="published")
    a = sampling.sample_kdpp(x, 7, np.random.default_rng(3), ridge=0.1)
    assert np.array_equal(a, sampling.sample_kdpp(x, 7, np.random.default_rng(3), ridge=0.1))
    assert sorted(sampling.sample_kdpp(x, 50, np.random.default_rng(3), ridge=0.1).tolist()) == list(range(50))
    assert sampling.sample_kdpp(x, 0, np.random.default_rng(3), ridge=0.1).shape == (0,)


def test_bad_dpp_input_is_a_clear_error_never_nan(clustered, tmp_path):
    shards, *_ = clustered
    with pytest.raises(ConfigError, match="dpp_kernel must be one of published, cosine"):
        sampling.sample_shards(shards, tmp_path / "k", 10,
                               **settings("sampling", strategy="dpp", dpp_kernel="rbf", progress=False))
    with pytest.raises(ConfigError, match="dpp_solver must be one of exact, mcmc, greedy-map"):
        sampling.sample_shards(shards, tmp_path / "s", 10,
                               **settings("sampling", strategy="dpp", dpp_solver="metropolis", progress=False))
    with pytest.raises(ConfigError, match="renamed; use dpp_solver: greedy-map"):
        sampling.sample_shards(shards, tmp_path / "g", 10,
                               **settings("sampling", strategy="dpp", dpp_solver="greedy", progress=False))
    assert not any((tmp_path / name).exists() for name in "ksg")
    x = sampling.kernel_rows(np.random.default_rng(0).random((20, 4)), kernel="cosine")
    with pytest.raises(ReduceError, match="cannot pick 21 items from a group of 20"):
        sampling.sample_kdpp(x, 21, np.random.default_rng(0), ridge=0.1)
    # Without a ridge the kernel has rank 4: five rows cannot be drawn.
    with pytest.raises(ReduceError, match="fewer than 5 non-zero eigenvalues"):
        sampling.sample_kdpp(x, 5, np.random.default_rng(0), ridge=0.0)
    # Silence: all-zero rows are normalised to zero rows (ridge only); the sample stays valid.
    silent = np.zeros((30, 16))
    silent[:5] = np.random.default_rng(1).random((5, 16))
    for kernel in sampling.KERNELS:
        rows = sampling.kernel_rows(silent, kernel=kernel)
        assert np.all(np.isfinite(rows)) and not rows[5:].any()
        picked = sampling.sample_kdpp(rows, 12, np.random.default_rng(2), ridge=0.1)
        assert len(set(picked.tolist())) == 12


def test_greedy_map_is_a_named_solver_not_the_default(clustered, tmp_path):
    shards, *_ = clustered
    _, exact = sampling.sample_shards(shards, tmp_path / "e", 40,
                                      **settings("sampling", strategy="dpp", group_rows=1000, progress=False))
    _, greedy = sampling.sample_shards(shards, tmp_path / "g", 40,
                                       **settings("sampling", strategy="dpp", group_rows=1000, dpp_solver="greedy-map",
                                                  progress=False))
    assert exact["dpp_solver"] == "exact" and exact["dpp_kernel"] == "published"
    assert greedy["dpp_solver"] == "greedy-map"
