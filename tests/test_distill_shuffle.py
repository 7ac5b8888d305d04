"""``data.shuffle: iid``: every batch a uniform draw from the whole training split, read by (shard, row).

The ``blocks`` stream takes a batch from a group of a few contiguous blocks, i.e. from a few shards;
``iid`` orders each pass by one permutation of every training row (a function of the seed and the
pass), so batches mix shards, every row comes once a pass, a resumed run gets the batches of an
uninterrupted one, and the reads go through the run's one bounded :class:`BlockReader`.
"""
import json
import math

import numpy as np
import pytest

from distill_fixtures import make_dataset, tiny_config
from sea_tf.distill import distill, pairs as pairs_mod, pipeline
from sea_tf.errors import ConfigError

BATCH = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 40 sources × 8 windows in shards of 16 rows: 20 shards; 8 sources held out leave 256 training rows.
    return make_dataset(tmp_path_factory.mktemp("shuffle-data"), n_sources=40, shard_rows=16)


@pytest.fixture(scope="module")
def stream(data):
    pairs = pairs_mod.open_pairs([str(data["shards"])], str(data["targets"]), reducer_dir=None, check_rows=0, seed=0,
                                 allow_partial=False)
    split = pairs_mod.split_by_source(pairs.shards, valid_fraction=0.2, seed=0)
    blocks = pipeline.make_blocks(pairs.shards, split.train_rows, block_rows=16)
    reader = pipeline.BlockReader(pairs.shards, max_open_files=4)
    yield pairs.shards, split.train_rows, blocks, reader
    reader.close()


def _targets(shards, blocks, reader, *, shuffle, shuffle_buffer, batch, n, rows_done=0):
    ds = pipeline.train_dataset(shards, blocks, batch_size=batch, seed=7, shuffle=shuffle,
                                shuffle_buffer=shuffle_buffer, cycle_length=2, rows_done=rows_done, reader=reader)
    return [t.numpy() for _, t in ds.take(n)]


def _miss_bound(shard_sizes, batch, k):
    """P(a uniform ``batch``-subset of the rows touches < ``k`` shards), union bound over (k−1)-sets of shards.

    The batch lies inside some k−1 shards; for one set U that has probability C(n_U, B) / C(N, B), and
    n_U is at most the k−1 largest shards together.
    """
    sizes = sorted(shard_sizes, reverse=True)
    return math.comb(len(sizes), k - 1) * math.comb(sum(sizes[:k - 1]), batch) / math.comb(sum(sizes), batch)


def test_iid_passes_are_permutations_and_batches_mix_shards(stream):
    shards, train_rows, blocks, reader = stream
    n_train = len(train_rows)
    assert n_train == 256
    passes = 2
    iid = _targets(shards, blocks, reader, shuffle="iid", shuffle_buffer=64, batch=BATCH, n=passes * n_train // BATCH)
    expected = shards.read("target", train_rows)
    shard_of = {bytes(t): int(s) for t, s in zip(expected, blocks_shard_of_rows(shards, train_rows))}
    assert len(shard_of) == n_train  # targets identify rows
    rows = np.concatenate(iid)
    for p in range(passes):  # every training row once a pass, each pass in its own order
        one = rows[p * n_train:(p + 1) * n_train]
        assert sorted(map(bytes, one)) == sorted(map(bytes, expected))
        assert not np.array_equal(one, expected)
    assert not np.array_equal(rows[:n_train], rows[n_train:])

    # Mixing: with the seed drawn at random, some batch of the two passes touches fewer than k
    # shards with probability ≤ batches × the union bound; k = 5 keeps that under 1e-3.
    k = 5
    sizes = np.bincount(blocks_shard_of_rows(shards, train_rows))
    bound = len(iid) * _miss_bound(sizes[sizes > 0], BATCH, k)
    assert bound < 1e-3, bound
    touched = [len({shard_of[bytes(t)] for t in batch}) for batch in iid]
    assert min(touched) >= k, touched
    # The blocks stream (groups of 2 blocks of ≤ 16 rows) takes each batch from at most 2 groups: ≤ 4 shards.
    blocks_batches = _targets(shards, blocks, reader, shuffle="blocks", shuffle_buffer=32, batch=BATCH, n=16)
    assert max(len({shard_of[bytes(t)] for t in batch}) for batch in blocks_batches) < k
    assert reader.n_open <= reader.max_open_files


def blocks_shard_of_rows(shards, rows):
    ends = np.array([s.offset + s.n_rows for s in shards.shards])
    return np.searchsorted(ends, rows, side="right")


def test_iid_stream_restarts_at_any_position(stream):
    """Batch k of an iid stream started at ``rows_done = j·B`` is batch j + k of the stream from the start.

    Passes of 256 rows read in groups of 64, batches of 24: inside a group (24), at a group
    boundary (192), past a pass boundary (264), at a group boundary of pass 2 (384), in pass 3 (528).
    """
    shards, _, blocks, reader = stream
    batch, n = 24, 30
    full = _targets(shards, blocks, reader, shuffle="iid", shuffle_buffer=64, batch=batch, n=n)
    for j in (1, 8, 11, 16, 22):
        resumed = _targets(shards, blocks, reader, shuffle="iid", shuffle_buffer=64, batch=batch, n=n - j,
                           rows_done=j * batch)
        for k, target in enumerate(resumed):
            assert np.array_equal(target, full[j + k]), (j, k)
    # The read granularity is not part of the order: groups of 32 rows give the same stream.
    assert all(np.array_equal(a, b) for a, b in
               zip(full, _targets(shards, blocks, reader, shuffle="iid", shuffle_buffer=32, batch=batch, n=n)))


def test_read_rows_dense_and_scattered(stream):
    shards, _, _, reader = stream
    for rows in ([0, 1, 3], [0, 15], [2, 9, 14]):  # a slice then a take; reads by index
        local = np.array(rows, np.int64)
        audio, target = reader.read_rows(3, local)
        global_rows = shards.shards[3].offset + local
        np.testing.assert_array_equal(audio, shards.read("audio", global_rows))
        np.testing.assert_array_equal(target, shards.read("target", global_rows))


def test_iid_resumed_run_is_bit_identical(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "run", epochs=2)
    cfg["data"]["shuffle"] = "iid"
    distill(cfg, log=lambda *_: None)
    cfg["train"]["epochs"] = 4  # a resumable change: two more epochs from the epoch-2 checkpoint
    resumed = distill(cfg, log=lambda *_: None)
    straight = distill({**cfg, "out": str(tmp_path / "straight")}, log=lambda *_: None)
    history = [json.loads((tmp_path / name / "state.json").read_text())["history"] for name in ("run", "straight")]
    assert [h["loss"] for h in history[0]] == [h["loss"] for h in history[1]]
    assert [h["val_loss"] for h in history[0]] == [h["val_loss"] for h in history[1]]
    assert resumed["held_out"]["mse"] == straight["held_out"]["mse"]


def test_unknown_shuffle_is_one_config_error_line(data, tmp_path, capsys, stream):
    from sea_tf.cli.main import main

    out = tmp_path / "run"
    argv = ["distill", "--shards", str(data["shards"]), "--targets", str(data["targets"]), "--out", str(out),
            "--no-progress", "--set", "data.shuffle=random"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sea-tf distill: error: data.shuffle must be one of blocks, iid; got 'random'"], err
    assert not out.exists()  # refused before any work
    shards, _, blocks, reader = stream
    with pytest.raises(ConfigError, match="data.shuffle must be one of blocks, iid"):
        pipeline.train_dataset(shards, blocks, batch_size=BATCH, seed=0, shuffle="uniform", shuffle_buffer=64,
                               cycle_length=1, reader=reader)
