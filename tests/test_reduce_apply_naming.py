"""reduce apply names targets per source job: two runs' ``shard-0of1-*`` never collide; resume checks the source."""
import os

import h5py
import numpy as np
import pytest

from sea_tf import cards, reduce, sampling
from sea_tf.cli.main import main
from sea_tf.shards import ShardSet, write_table
from stage_args_support import settings

CARD = {"name": "synthetic-teacher"}


def _table(path, seed, n=300, config=None):
    """A one-job (``0of1``) teacher table of ``n`` random 24-d rows; returns the embeddings."""
    emb = np.random.default_rng(seed).normal(size=(n, 24)).astype(np.float32)
    write_table(path, {"embedding": emb, "audio": np.zeros((n, 4), np.float32)}, CARD, shard_rows=128, config=config)
    return emb


def _fit(root, dirs):
    sampling.sample_shards(dirs, root / "sample", 200, **settings("sampling", strategy="random", progress=False))
    reduce.fit_sample(dirs, root / "sample", root / "reducer",
                      **settings("reduce/fit", method="pca", d=4, quality=None))
    return reduce.Reducer.load(root / "reducer")


def _expected(reducer, directory):
    """φ of each shard of ``directory`` transformed on its own (the same call apply makes per shard)."""
    shards = ShardSet(directory)
    return np.concatenate([reducer.transform(shards.read_shard(i, "embedding")) for i in range(len(shards.shards))])


@pytest.mark.parametrize("configs", [({"run": "A"}, {"run": "B"}), (None, None)],
                         ids=["two-runs", "identical-manifests"])
def test_two_0of1_runs_keep_their_own_targets(tmp_path, configs):
    """Both directories hold shard-0of1-00000..2; before per-job names, A's target files were B's."""
    a, b = tmp_path / "A", tmp_path / "B"
    _table(a, 1, config=configs[0])
    _table(b, 2, config=configs[1])
    reducer = _fit(tmp_path, [a, b])
    code = main(["reduce", "apply", "--reducer", str(tmp_path / "reducer"), "--shards", str(a), "--shards", str(b),
                 "--out", str(tmp_path / "targets"), "--no-progress"])
    assert code == 0
    both = ShardSet([a, b], targets=tmp_path / "targets")
    target = both.read("target", np.arange(both.n_rows))
    np.testing.assert_array_equal(target[:300], _expected(reducer, a))
    np.testing.assert_array_equal(target[300:], _expected(reducer, b))
    assert len(set(both.target_names())) == len(both.shards) == 6
    assert np.abs(target[:300] - target[300:]).max() > 0.1  # the two tables really differ


def test_resume_recomputes_a_target_whose_source_shard_changed(tmp_path):
    a = tmp_path / "A"
    _table(a, 1)
    reducer = _fit(tmp_path, [a])
    out = tmp_path / "targets"
    reduce.apply_reducer(tmp_path / "reducer", a, out, **settings("reduce/apply", progress=False))
    mtimes = {path: os.stat(path).st_mtime_ns for path in out.rglob("*.h5")}
    # Re-embedding changed shard 1's rows (same file name, same manifest): its targets are stale now.
    with h5py.File(ShardSet(a).shards[1].path, "r+") as fh:
        fh["embedding"][...] = -fh["embedding"][...]
    reduce.apply_reducer(tmp_path / "reducer", a, out, **settings("reduce/apply", progress=False))
    shards = ShardSet(a, targets=out)
    np.testing.assert_array_equal(shards.read("target", np.arange(300)), _expected(reducer, a))
    # only the changed shard's targets were rewritten; the others were reused after their hash check
    assert [path for path, t in mtimes.items() if os.stat(path).st_mtime_ns != t] == [shards.target_path(1)]
    with h5py.File(shards.target_path(0), "r") as fh:
        assert len(fh.attrs["source_sha256"]) == 64 and fh.attrs["reducer_sha256"] == \
            cards.read_card(tmp_path / "reducer")["hashes"]["reducer_sha256"]


def test_resume_recomputes_targets_a_crash_or_an_old_version_left_unverifiable(tmp_path, monkeypatch):
    """Targets are flushed together at the end, so a machine crash before that can keep a target's name
    and attributes without its data: the resume compares each target with its own ``target_sha256``.
    Each shard's embedding is read once: the rows the resume check hashed are the ones transformed."""
    a = tmp_path / "A"
    _table(a, 1, n=512)   # 4 shards of 128 rows
    reducer = _fit(tmp_path, [a])
    out = tmp_path / "targets"
    reduce.apply_reducer(tmp_path / "reducer", a, out, **settings("reduce/apply", progress=False))
    shards = ShardSet(a, targets=out)
    # The machine crashed before the flush: the card never said complete ...
    cards.write_card(out, {**cards.read_card(out), "complete": False})
    with h5py.File(shards.target_path(2), "r+") as fh:   # ... and target 2's data never reached the disk
        fh["target"][...] = 0
    with h5py.File(shards.target_path(0), "r+") as fh:   # written before targets carried their own sha256
        del fh.attrs["target_sha256"]
    with h5py.File(shards.shards[1].path, "r+") as fh:   # and shard 1 was re-embedded since
        fh["embedding"][...] = -fh["embedding"][...]
    mtimes = {path: os.stat(path).st_mtime_ns for path in out.rglob("*.h5")}
    reads = []
    read_shard = ShardSet.read_shard

    def counted(self, i, key, *rows):
        reads.append((i, key))
        return read_shard(self, i, key, *rows)

    monkeypatch.setattr(ShardSet, "read_shard", counted)
    card = reduce.apply_reducer(tmp_path / "reducer", a, out, **settings("reduce/apply", progress=False))
    monkeypatch.undo()
    assert card["complete"]
    assert sorted(path for path, t in mtimes.items() if os.stat(path).st_mtime_ns != t) == \
        sorted(shards.target_path(i) for i in (0, 1, 2))   # target 3 reused after its checks
    np.testing.assert_array_equal(ShardSet(a, targets=out).read("target", np.arange(512)), _expected(reducer, a))
    assert sorted(i for i, key in reads if key == "embedding") == [0, 1, 2, 3]
