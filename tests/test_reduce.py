"""The reduction φ: equals scikit-learn, targets aligned row for row, bad input refused, quality, CLI."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from sea_tf import reduce, sampling
from sea_tf.cli.main import main
from sea_tf.errors import OutputError, ReduceError
from sea_tf.shards import ShardSet, write_table
from stage_args_support import settings

CARD = {"name": "synthetic-teacher"}
ROOT = Path(__file__).resolve().parent.parent


def _low_rank(n, dim=48, rank=6, seed=0):
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, dim))
    return (rng.normal(size=(n, rank)) * np.linspace(4, 1, rank) @ basis
            + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("reduce")
    emb = _low_rank(1500)
    audio = np.repeat(np.arange(1500, dtype=np.float32)[:, None], 20, axis=1)  # audio row i holds i
    write_table(root / "shards", {"embedding": emb, "audio": audio, "label": (np.arange(1500) % 4).astype(np.int32)},
                CARD, shard_rows=256)
    idx, _ = sampling.sample_shards(root / "shards", root / "sample", 400,
                                    **settings("sampling", strategy="random", progress=False))
    return root, emb, idx


def test_pca_apply_equals_scikit_learn_and_stays_aligned(data, tmp_path):
    root, emb, idx = data
    card = reduce.fit_sample(root / "shards", root / "sample", tmp_path / "red",
                             **settings("reduce/fit", method="pca", d=6, quality=None))
    tcard = reduce.apply_reducer(tmp_path / "red", root / "shards", tmp_path / "targets",
                                 **settings("reduce/apply", chunk_rows=100, progress=False))
    scaler = StandardScaler().fit(emb[idx])
    expected = PCA(n_components=6, svd_solver="full").fit(scaler.transform(emb[idx])).transform(scaler.transform(emb))
    shards = ShardSet(root / "shards", targets=tmp_path / "targets")
    target = np.concatenate([c["target"] for c in shards.iter_chunks(["target"])])
    # components are defined up to sign; compare per column after aligning signs
    signs = np.sign(np.sum(target * expected, axis=0))
    np.testing.assert_allclose(target, expected * signs, atol=2e-4)
    assert card["explained_variance_ratio"][0] > 0.3 and sum(card["explained_variance_ratio"]) > 0.99
    # row alignment: target file i ↔ teacher shard i, row j ↔ row j (audio row k holds k)
    for chunk in shards.iter_chunks(["audio", "target", "embedding"], rows=64):
        assert np.array_equal(chunk["audio"][:, 0], chunk["row"].astype(np.float32))
        np.testing.assert_allclose(chunk["target"], reduce.Reducer.load(tmp_path / "red").transform(chunk["embedding"]),
                                   atol=1e-6)
    assert tcard["complete"] and tcard["shards"] == shards.target_names()
    with h5py.File(shards.target_path(-1)) as fh:
        assert fh["target"].shape == (1500 - 5 * 256, 6) and fh["target"].dtype == np.float32


def test_incremental_pca_and_none(data, tmp_path):
    root, emb, idx = data
    reduce.fit_sample(root / "shards", root / "sample", tmp_path / "ipca",
                      **settings("reduce/fit", method="pca", d=6, pca_solver="incremental"))
    ipca = reduce.Reducer.load(tmp_path / "ipca")
    exact = reduce.fit_reducer(emb[idx], **settings("reduce/fit", of=reduce.fit_reducer, method="pca", d=6))
    # same subspace: projections onto the 6 components agree up to rotation within it
    a, b = ipca.model.components_, exact.model.components_
    assert np.linalg.svd(a @ b.T, compute_uv=False).min() > 0.99
    card = reduce.fit_sample(root / "shards", root / "sample", tmp_path / "none",
                             **settings("reduce/fit", method="none", d=999))
    assert card["d"] == 48
    reduce.apply_reducer(tmp_path / "none", root / "shards", tmp_path / "raw",
                         **settings("reduce/apply", progress=False))
    target = ShardSet(root / "shards", targets=tmp_path / "raw").read("target", np.arange(1500))
    assert np.array_equal(target, emb)


@pytest.fixture(scope="module")
def umap_numba_cached():
    """umap-learn with every numba function cached on disk, under conftest's ``NUMBA_CACHE_DIR``.

    Most of umap's jitted functions (``parallel=True``: the nearest-neighbour and fuzzy-set kernels)
    are compiled in every process, ~20 s of this file; cached, a second run loads them. The code run
    is the same compiled code either way. Where no cache folder is writable they stay uncached.
    """
    import umap.distances
    import umap.layouts
    import umap.sparse
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.utils, umap.layouts, umap.distances, umap.sparse):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher):
                try:
                    function.enable_caching()
                except RuntimeError:  # "cannot cache function ...: no locator available": compile as before
                    return


def test_umap_fit_and_apply(data, tmp_path, umap_numba_cached):
    root, emb, idx = data
    card = reduce.fit_sample(root / "shards", root / "sample", tmp_path / "umap",
                             **settings("reduce/fit", method="umap", d=2,
                                        umap_params={"n_neighbors": 10, "min_dist": 0.3, "metric": "euclidean"},
                                        quality={"n_heldout": 200, "k": 10}))
    assert card["method"] == "umap" and card["params"]["n_neighbors"] == 10
    assert card["quality"]["trustworthiness"] > 0.75
    y = reduce.Reducer.load(tmp_path / "umap").transform(emb[:50])
    assert y.shape == (50, 2) and np.isfinite(y).all()


def test_quality_report_and_compare(data, tmp_path):
    root, emb, idx = data
    card = reduce.fit_sample(root / "shards", root / "sample", tmp_path / "red",
                             **settings("reduce/fit", d=6, quality={"n_heldout": 300, "k": 10}))
    q = card["quality"]
    assert q["heldout"] and q["n_heldout"] == 300
    assert q["trustworthiness"] > 0.97 and q["knn_recall"] > 0.7  # 6-D data kept by 6 components
    assert Path(q["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = reduce.fit_reducer(emb[idx], **settings("reduce/fit", of=reduce.fit_reducer, method="pca", d=1))
    worse = reduce.evaluate(ShardSet(root / "shards"), bad, idx, tmp_path,
                            **settings("reduce/fit", of=reduce.evaluate, n_heldout=300, name="d1"))
    assert worse["trustworthiness"] < q["trustworthiness"] - 0.05
    table = reduce.compare_strategies(root / "shards", tmp_path / "study", 200,
                                      **settings("reduce/compare", d=6, progress=False, sampling={"group_rows": 500},
                                                 n_heldout=200))
    assert [row["strategy"] for row in table] == ["random", "loudness", "dpp", "dpp (mcmc)", "dpp-quality",
                                                  "dpp-quality (mcmc)"]
    assert all(row["trustworthiness"] > 0.9 for row in table)
    assert "| dpp-quality |" in (tmp_path / "study" / "compare.md").read_text()
    assert "| dpp-quality (mcmc) |" in (tmp_path / "study" / "compare.md").read_text()


def test_bad_input_is_refused(data, tmp_path):
    root, emb, idx = data
    with pytest.raises(ReduceError, match="smaller than the teacher embedding size"):
        reduce.fit_sample(root / "shards", root / "sample", tmp_path / "r", **settings("reduce/fit", d=48))
    small, _ = sampling.sample_shards(root / "shards", tmp_path / "small", 10,
                                      **settings("sampling", strategy="random", progress=False))
    with pytest.raises(ReduceError, match="number of fitting samples"):
        reduce.fit_sample(root / "shards", tmp_path / "small", tmp_path / "r", **settings("reduce/fit", d=10))
    assert not (tmp_path / "r").exists()
    # NaN rows: rejected naming the shard file and the row
    bad = emb.copy()
    bad[700, 3] = np.nan
    write_table(tmp_path / "nan", {"embedding": bad}, CARD, shard_rows=256)
    reduce.fit_sample(root / "shards", root / "sample", tmp_path / "red", **settings("reduce/fit", d=6))
    with pytest.raises(ReduceError, match=r"shard-0of1-00002\.h5: row 188 "):
        reduce.apply_reducer(tmp_path / "red", tmp_path / "nan", tmp_path / "t",
                             **settings("reduce/apply", progress=False))
    # a targets directory of another reducer is not overwritten
    reduce.apply_reducer(tmp_path / "red", root / "shards", tmp_path / "t2", **settings("reduce/apply", progress=False))
    reduce.fit_sample(root / "shards", root / "sample", tmp_path / "red8", **settings("reduce/fit", d=8))
    first = tmp_path / "t2" / ShardSet(root / "shards").target_names()[0]
    before = first.read_bytes()
    with pytest.raises(OutputError, match="another reducer"):
        reduce.apply_reducer(tmp_path / "red8", root / "shards", tmp_path / "t2",
                             **settings("reduce/apply", progress=False))
    assert first.read_bytes() == before


def test_cli_fit_apply_and_errors(data, tmp_path, capsys):
    root, *_ = data
    s = str(root / "shards")
    assert main(["sample", "--shards", s, "--m", "300", "--strategy", "dpp", "--out", str(tmp_path / "s"),
                 "--group-rows", "500", "--no-progress"]) == 0
    assert main(["reduce", "fit", "--shards", s, "--sample", str(tmp_path / "s"), "--d", "4",
                 "--out", str(tmp_path / "r"), "--set", "quality.n_heldout=100", "--no-progress"]) == 0
    assert main(["reduce", "apply", "--reducer", str(tmp_path / "r"), "--shards", s, "--out", str(tmp_path / "t"),
                 "--no-progress"]) == 0
    assert (tmp_path / "t" / "reduce-apply.config.yaml").is_file()
    assert json.loads((tmp_path / "r" / "card.json").read_text())["sample"]["strategy"] == "dpp"
    capsys.readouterr()
    assert main(["sample", "--shards", s, "--m", "5000", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot pick 5000 samples from 1500" in err[0]


def test_config_files_load_through_stage_defaults():
    from sea_tf.config import resolve
    from sea_tf.presets import load_defaults, preset_names, schema_of_preset
    seen = 0
    for stage in ("teacher", "sampling", "reduce"):
        for name in preset_names(stage):
            cfg = resolve(load_defaults(schema_of_preset(name)), config_file=name)
            assert cfg, name
            seen += 1
    assert seen >= 15


def test_explained_variance_is_measured_on_the_heldout_rows(tmp_path):
    """quality.json's explained variance is on the held-out rows, as its "heldout": true says.

    30 rows of 24-D noise with weak structure, 4 components: the directions chosen on the fit sample
    explain much more of that sample (in-sample, optimistic) than of unseen rows, so the two differ.
    """
    rng = np.random.default_rng(3)
    emb = (rng.normal(size=(600, 24)) + rng.normal(size=(600, 1)) * np.linspace(1, 0.2, 24)).astype(np.float32)
    write_table(tmp_path / "shards", {"embedding": emb, "audio": np.zeros((600, 4), np.float32),
                                      "label": np.zeros(600, np.int32)}, CARD, shard_rows=256)
    idx, _ = sampling.sample_shards(tmp_path / "shards", tmp_path / "sample", 30,
                                    **settings("sampling", strategy="random", progress=False))
    card = reduce.fit_sample(tmp_path / "shards", tmp_path / "sample", tmp_path / "red",
                             **settings("reduce/fit", method="pca", d=4, quality={"n_heldout": 200, "k": 10}))
    q = json.loads((tmp_path / "red" / "quality.json").read_text())
    assert q["heldout"] and q == card["quality"]
    rows, heldout = reduce.heldout_rows(600, idx, n_heldout=200, seed=card["seed"])
    assert heldout and not np.isin(rows, idx).any()
    # independently: variance of φ's outputs over the variance of the standardised inputs, on those rows
    scaler = StandardScaler().fit(emb[idx])
    pca = PCA(n_components=4, svd_solver="full").fit(scaler.transform(emb[idx]))
    expected = (np.var(pca.transform(scaler.transform(emb[rows])), axis=0).sum()
                / np.var(scaler.transform(emb[rows]), axis=0).sum())
    # float32 rows (relative rounding 6e-8 each) summed over 200 x 24 values: far inside 1e-5
    assert q["explained_variance"] == pytest.approx(expected, rel=1e-5)
    in_sample = float(np.sum(card["explained_variance_ratio"]))
    assert q["explained_variance_fit_sample"] == pytest.approx(in_sample, rel=1e-12)
    assert q["explained_variance"] < in_sample - 0.1     # the in-sample figure flatters φ on 30 rows


def test_a_sample_of_nearly_every_row_is_evaluated_on_the_sample(tmp_path):
    """Two rows left out of the sample are too few for trustworthiness (k >= 1 < n / 2): the figures are
    computed on the sample and say so ("heldout": false); before, sklearn's ValueError ended the fit
    as an internal error."""
    emb = _low_rank(60, dim=12, rank=3, seed=5)
    write_table(tmp_path / "shards", {"embedding": emb, "audio": np.zeros((60, 4), np.float32),
                                      "label": np.zeros(60, np.int32)}, CARD, shard_rows=32)
    sampling.sample_shards(tmp_path / "shards", tmp_path / "sample", 58,
                           **settings("sampling", strategy="random", progress=False))
    card = reduce.fit_sample(tmp_path / "shards", tmp_path / "sample", tmp_path / "red",
                             **settings("reduce/fit", method="pca", d=3, quality={"n_heldout": 200, "k": 10}))
    q = card["quality"]
    assert q["heldout"] is False and q["n_heldout"] == 58 and 0 <= q["trustworthiness"] <= 1
