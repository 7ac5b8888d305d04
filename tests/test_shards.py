"""Teacher shard format: deterministic HDF5 bytes, one table over many directories, clear errors."""
import json

import numpy as np
import pytest

from sea_tf.errors import DataError
from sea_tf.shards import ShardSet, write_h5, write_table

CARD = {"name": "synthetic-teacher", "embedding_size": 8}


def _table(tmp_path, name, n, seed, card=CARD, shard_rows=40):
    rng = np.random.default_rng(seed)
    arrays = {"embedding": rng.normal(size=(n, 8)).astype(np.float32),
              "audio": rng.normal(size=(n, 50)).astype(np.float32),
              "source": np.array([f"{name}/f{i // 10}.wav" for i in range(n)], dtype=object),
              "label": (np.arange(n) % 3).astype(np.int32)}
    write_table(tmp_path / name, arrays, card, shard_rows=shard_rows)
    return arrays


def test_h5_bytes_are_reproducible(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"embedding": rng.normal(size=(100, 8)).astype(np.float32), "source": ["a.wav"] * 100,
              "timestamp": np.arange(100) * 0.5}
    write_h5(tmp_path / "a.h5", arrays)
    write_h5(tmp_path / "b.h5", arrays)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_shardset_reads_many_dirs_as_one_table(tmp_path):
    a = _table(tmp_path, "a", 130, 1)
    b = _table(tmp_path, "b", 55, 2)
    shards = ShardSet([tmp_path / "a", tmp_path / "b"])
    assert shards.n_rows == 185 and len(shards.shards) == 4 + 2
    assert shards.embedding_size == 8 and shards.student_sample_rate == 50
    full = np.concatenate([a["embedding"], b["embedding"]])
    chunks = list(shards.iter_chunks(["embedding", "source"], rows=17))
    assert np.array_equal(np.concatenate([c["embedding"] for c in chunks]), full)
    assert np.array_equal(np.concatenate([c["row"] for c in chunks]), np.arange(185))
    assert all(c["embedding"].shape[0] <= 17 for c in chunks)
    index = np.array([184, 0, 131, 39, 40, 130, 39])  # sparse and dense reads, a repeated row
    assert np.array_equal(shards.read("embedding", index), full[index])
    assert list(shards.read("source", [0, 184])) == ["a/f0.wav", "b/f5.wav"]
    assert np.array_equal(shards.read("label", [3, 4, 5]), [0, 1, 2])


def test_shardset_refuses_mixed_teachers_and_unfinished_jobs(tmp_path):
    _table(tmp_path, "a", 20, 1)
    _table(tmp_path, "b", 20, 2, card={"name": "another-teacher"})
    with pytest.raises(DataError, match="teacher_card_sha256"):
        ShardSet([tmp_path / "a", tmp_path / "b"])
    manifest = tmp_path / "a" / "manifest-0of1.json"
    data = json.loads(manifest.read_text())
    data["complete"] = False
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError, match="has not finished"):
        ShardSet(tmp_path / "a")
    assert ShardSet(tmp_path / "a", allow_incomplete=True).n_rows == 20
    with pytest.raises(DataError, match="no manifest"):
        ShardSet(tmp_path)
    with pytest.raises(DataError, match="no such directory"):
        ShardSet(tmp_path / "missing")
