"""Samplers: seeded, the right statistics, DPP more diverse than random, greedy MAP = log-det greedy."""
import numpy as np
import pytest
from sklearn.preprocessing import normalize

from sea_tf import sampling
from sea_tf.errors import ReduceError
from sea_tf.shards import write_table

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
    a, card = sampling.sample_shards(shards, tmp_path / "a", 150, strategy=strategy, seed=3, group_rows=500,
                                     progress=False)
    b, _ = sampling.sample_shards(shards, tmp_path / "b", 150, strategy=strategy, seed=3, group_rows=500,
                                  progress=False)
    assert np.array_equal(a, b)
    assert len(np.unique(a)) == 150 and a.min() >= 0 and a.max() < 3000 and np.all(np.diff(a) > 0)
    assert (tmp_path / "a" / "sample.npz").read_bytes() == (tmp_path / "b" / "sample.npz").read_bytes()
    assert card["strategy"] == strategy and card["m"] == 150
    index, read_card = sampling.load_sample(tmp_path / "a")
    assert np.array_equal(index, a) and read_card == card
    if strategy in ("random", "loudness"):
        c, _ = sampling.sample_shards(shards, tmp_path / "c", 150, strategy=strategy, seed=4, progress=False)
        assert not np.array_equal(a, c)


def test_loudness_prefers_loud_windows(clustered, tmp_path):
    shards, _, _, loud = clustered
    bounds = sampling.group_bounds(3000, group_by="window", group_rows=500)
    q = sampling.loudness_rank(loud, bounds)
    assert q.min() > 0 and q.max() == 1.0
    assert np.isclose(q[:500].mean(), (500 + 1) / 2 / 500)  # ranks 1..500 over 500 (no ties)
    idx, _ = sampling.sample_shards(shards, tmp_path, 600, strategy="loudness", group_rows=500, progress=False)
    # P ∝ rank: the expected mean rank of picks is well above the pool's 0.5 (≈ 0.63 for 600 of 3000).
    assert q[idx].mean() > 0.6
    assert np.median(loud[idx]) > np.median(loud) + 3.0


def test_dpp_covers_clusters_better_than_random(clustered, tmp_path):
    shards, emb, label, _ = clustered
    chosen = {}
    for strategy in ("random", "dpp", "dpp-quality"):
        idx, _ = sampling.sample_shards(shards, tmp_path / strategy, 60, strategy=strategy, group_rows=3000,
                                        progress=False)
        chosen[strategy] = idx
    share_big = {s: np.mean(label[i] == 0) for s, i in chosen.items()}
    assert share_big["random"] > 0.45          # random follows the 60 % cluster
    assert share_big["dpp"] < 0.25             # the DPP spreads its picks over the clusters
    assert len(np.unique(label[chosen["dpp"]])) == 12
    assert sampling.diversity(emb[chosen["dpp"]]) > sampling.diversity(emb[chosen["random"]]) + 0.1
    assert sampling.diversity(emb[chosen["dpp-quality"]]) > sampling.diversity(emb[chosen["random"]])


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
    assert list(sampling.greedy_map_kdpp(x, 5, q, 0.1)) == chosen


def test_allocation_and_groups():
    shares = sampling.allocate([10, 30, 60], 10)
    assert shares.tolist() == [1, 3, 6] and sampling.allocate([1, 1, 100], 102).tolist() == [1, 1, 100]
    bounds = sampling.group_bounds(6, np.array(["a", "a", "b", "b", "b", "c"]), group_by="source")
    assert bounds.tolist() == [0, 2, 5, 6]
    assert sampling.group_bounds(10, group_by="window", group_rows=4).tolist() == [0, 4, 8, 10]


def test_too_many_samples_is_a_clear_error(clustered, tmp_path):
    shards, *_ = clustered
    with pytest.raises(ReduceError, match="cannot pick 3001 samples from 3000"):
        sampling.sample_shards(shards, tmp_path / "s", 3001, strategy="random", progress=False)
    assert not (tmp_path / "s").exists()
