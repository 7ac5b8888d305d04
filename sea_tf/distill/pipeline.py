"""``tf.data`` input: (audio window, reduced target) batches read straight from the shards.

The training stream is an endless sequence of passes over the training rows, and which window
comes at which position is a function of ``(seed, position)`` alone. Each pass visits *blocks*
(≤ ``block_rows`` contiguous rows of one shard, all from the training side of the split) in an
order drawn from ``(seed, pass)``; consecutive blocks of that order form *groups* of about
``shuffle_buffer`` windows (so a group mixes blocks of many shards), and each group's rows are
permuted by a draw from ``(seed, pass, group)``. Batches are consecutive windows of that stream.
A resumed run therefore computes where window ``rows_done`` lies (pass, group, offset) and gets
exactly the batches the uninterrupted run would have had, without reading the skipped data; a
streaming shuffle buffer could not do that (its content at the kill is lost).

That is ``data.shuffle: blocks``. ``data.shuffle: iid`` instead orders each pass by a permutation of
all training rows drawn from ``(seed, pass)``, so every batch is a uniform draw (without
replacement) from the whole training split, as the published pairs nearly were; the pass is still
cut into groups of ``shuffle_buffer`` rows, each read by (shard, row) index, shard by shard in row
order, through the same :class:`BlockReader`. Every training row comes once per pass and a resumed
run again gets the uninterrupted run's batches.

Memory is bounded by ``(1 + cycle_length)`` groups (the one being batched and ``cycle_length``
read ahead; under ``iid`` also the pass's order, 8 bytes a training row), open files by
``max_open_files`` (``data.max_open_files``): one :class:`BlockReader` serves every dataset of a
run, whatever the number of shards.
"""
from __future__ import annotations

import collections
import math
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np
import numpy.typing as npt

from sea_tf.backend import tf
from sea_tf.distill.defaults import DEFAULTS
from sea_tf.errors import ConfigError, SeaTFWarning, TrainError
from sea_tf.shards import ShardSet


#: ``data.shuffle``: how the training stream is ordered (module docstring).
SHUFFLES = ("blocks", "iid")


def check_shuffle(shuffle: object) -> str:
    """``shuffle`` if it names a :data:`SHUFFLES` entry, else a one-line :class:`ConfigError`."""
    if not isinstance(shuffle, str) or shuffle not in SHUFFLES:
        raise ConfigError(f"data.shuffle must be one of {', '.join(SHUFFLES)}; got {shuffle!r}")
    return shuffle


class SmallValidationWarning(SeaTFWarning):
    """The validation split holds fewer batches than ``train.validation_steps``: all of it is used."""


def make_blocks(shards: ShardSet, rows: npt.ArrayLike, *, block_rows: int) -> npt.NDArray[np.int64]:
    """Cut sorted global ``rows`` into contiguous single-shard blocks.

    Parameters
    ----------
    shards : ShardSet
    rows : np.ndarray [shape=(n,)], int64, ascending
    block_rows : int

    Returns
    -------
    np.ndarray [shape=(n_blocks, 3)], int64
        ``(shard index, local start, local stop)`` per block.
    """
    row_array = np.asarray(rows, dtype=np.int64)
    if row_array.size == 0:
        return np.zeros((0, 3), np.int64)
    ends = np.array([s.offset + s.n_rows for s in shards.shards], np.int64)
    shard = np.searchsorted(ends, row_array, side="right")
    # A run breaks where rows stop being consecutive or the shard changes.
    breaks = np.flatnonzero((np.diff(row_array) != 1) | (np.diff(shard) != 0)) + 1
    blocks = []
    for run in np.split(np.arange(row_array.size), breaks):
        i = int(shard[run[0]])
        first = int(row_array[run[0]]) - shards.shards[i].offset
        last = int(row_array[run[-1]]) - shards.shards[i].offset + 1
        for a in range(first, last, int(block_rows)):
            blocks.append((i, a, min(a + int(block_rows), last)))
    return np.asarray(blocks, np.int64)


class BlockReader:
    """Reads (audio, target) rows of one block; keeps at most ``max_open_files`` HDF5 files open.

    Opening a shard costs far less than reading a block from it, but one open file per shard runs
    out of descriptors at scale (``ulimit -n 1024`` failed at shard 509: two files per shard). So
    the handles form a least-recently-used cache. Pass one reader to every dataset of a run
    (training, validation, evaluation): the bound then holds for the whole process. Thread-safe:
    ``tf.data`` calls :meth:`read` from several threads.

    Parameters
    ----------
    shards : ShardSet
        With targets attached.
    max_open_files : int, optional
        Largest number of files open at once (teacher shards and target files together), ≥ 2 so
        that one block's audio and target files can stay open together; default
        ``data.max_open_files`` of ``configs/distill/defaults.yaml``.
    """

    def __init__(self, shards: ShardSet, *, max_open_files: int | None = None) -> None:
        if max_open_files is None:
            max_open_files = DEFAULTS["data"]["max_open_files"]
        if isinstance(max_open_files, bool) or not isinstance(max_open_files, int) or max_open_files < 2:
            raise TrainError(f"data.max_open_files must be an integer of at least 2 (a shard and its target "
                             f"file), got {max_open_files!r}")
        self.shards = shards
        self.max_open_files = max_open_files
        # path -> h5py.File, least recently used first
        self._files: collections.OrderedDict[Path | str, h5py.File] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _open(self, path: Path | str) -> h5py.File:
        handle = self._files.pop(path, None)
        if handle is None:
            while len(self._files) >= self.max_open_files:
                _, oldest = self._files.popitem(last=False)
                oldest.close()
            handle = h5py.File(path, "r")
        self._files[path] = handle  # now the most recently used
        return handle

    def read(self, i: int, start: int, stop: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """``audio float32 [n, frame_samples]``, ``target float32 [n, d]`` of shard ``i`` rows [start, stop)."""
        info = self.shards.shards[int(i)]
        target_path = self.shards.target_path(i)
        # One lock for the reads and the cache: h5py serialises access anyway, and a handle must
        # not be closed by another thread's eviction while it is being read.
        with self._lock:
            audio = self._open(info.path)["audio"][int(start):int(stop)]
            target = self._open(target_path)["target"][int(start):int(stop)]
        return audio.astype(np.float32, copy=False), target.astype(np.float32, copy=False)

    def read_rows(self, i: int, rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float32],
                                                                      npt.NDArray[np.float32]]:
        """``audio``, ``target`` of shard ``i``'s strictly ascending local ``rows`` (``np.ndarray [n]``).

        Rows that fill most of their span are read as one slice (one HDF5 read, then a take);
        scattered rows one by one (h5py's point selection ``ds[rows]`` measured 5–30× slower a row).
        """
        info = self.shards.shards[int(i)]
        target_path = self.shards.target_path(i)
        first, last = int(rows[0]), int(rows[-1]) + 1
        with self._lock:
            audio_ds, target_ds = self._open(info.path)["audio"], self._open(target_path)["target"]
            if last - first <= 2 * len(rows):
                audio, target = audio_ds[first:last][rows - first], target_ds[first:last][rows - first]
            else:
                audio = np.stack([audio_ds[int(r)] for r in rows])
                target = np.stack([target_ds[int(r)] for r in rows])
        return audio.astype(np.float32, copy=False), target.astype(np.float32, copy=False)

    @property
    def n_open(self) -> int:
        """Files open now (int)."""
        with self._lock:
            return len(self._files)

    def close(self) -> None:
        """Close every open file (files are reopened as needed if the reader is used again)."""
        with self._lock:
            while self._files:
                self._files.popitem()[1].close()


def blocks_per_group(blocks: np.ndarray, shuffle_buffer: int) -> int:
    """Blocks whose rows are permuted together: about ``shuffle_buffer`` windows (1: no shuffling).

    Parameters
    ----------
    blocks : np.ndarray [shape=(n_blocks, 3)]
    shuffle_buffer : int
        ``data.shuffle_buffer``; ≤ 1 keeps every block's rows in order.

    Returns
    -------
    int
    """
    if not shuffle_buffer or int(shuffle_buffer) <= 1 or len(blocks) == 0:
        return 1
    return max(1, min(len(blocks), int(shuffle_buffer) // int((blocks[:, 2] - blocks[:, 1]).max())))


def pass_groups(blocks: np.ndarray, seed: int, pass_no: int,
                per_group: int) -> tuple[list[np.ndarray], npt.NDArray[np.int64]]:
    """The groups of pass ``pass_no``: block indices per group and each group's first row in the pass.

    Returns
    -------
    groups : list of np.ndarray [shape=(≤ per_group,)]
        Block indices (into ``blocks``) of each group, in pass order.
    starts : np.ndarray [shape=(n_groups + 1,)], int64
        Row of the pass where each group begins; ``starts[-1]`` is the pass's row count.
    """
    order = np.random.default_rng([int(seed), int(pass_no)]).permutation(len(blocks))
    groups = [order[a:a + per_group] for a in range(0, len(order), per_group)]
    sizes = (blocks[:, 2] - blocks[:, 1]).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum([sizes[g].sum() for g in groups])]).astype(np.int64)
    return groups, starts


def group_permutation(n_rows: int, seed: int, pass_no: int, group_no: int, *, shuffle: bool) -> np.ndarray:
    """Order of a group's ``n_rows`` rows: a draw from ``(seed, pass, group)``, or as read."""
    if not shuffle:
        return np.arange(n_rows)
    return np.random.default_rng([int(seed), int(pass_no), int(group_no)]).permutation(n_rows)


def stream_position(blocks: np.ndarray, seed: int, per_group: int, rows_done: int) -> tuple[int, int, int]:
    """Where window ``rows_done`` of the training stream lies: ``(pass, group, offset in the group)``."""
    total = int((blocks[:, 2] - blocks[:, 1]).sum())
    pass_no, left = divmod(int(rows_done), total)
    _, starts = pass_groups(blocks, seed, pass_no, per_group)
    group_no = int(np.searchsorted(starts, left, side="right")) - 1
    return pass_no, group_no, left - int(starts[group_no])


def iid_pass_order(n_rows: int, seed: int, pass_no: int) -> npt.NDArray[np.int64]:
    """``data.shuffle: iid``: the order of pass ``pass_no`` over ``n_rows`` training rows, a draw from ``(seed, pass)``.

    Returns
    -------
    np.ndarray [shape=(n_rows,)], int64
        Positions in the training rows' order (block by block, as :func:`make_blocks` lists them).
    """
    return np.random.default_rng([int(seed), int(pass_no)]).permutation(int(n_rows)).astype(np.int64)


def block_rows_at(blocks: np.ndarray, positions: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64],
                                                                                   npt.NDArray[np.int64]]:
    """``(shard index, local row)`` of training-row ``positions`` (indices into the blocks' rows, in order)."""
    sizes = (blocks[:, 2] - blocks[:, 1]).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    k = np.searchsorted(starts, positions, side="right") - 1
    return blocks[k, 0].astype(np.int64), (blocks[k, 1] + positions - starts[k]).astype(np.int64)


def read_scattered(reader: BlockReader, shard: npt.NDArray[np.int64], local: npt.NDArray[np.int64],
                   *, frame_samples: int, d: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Rows ``(shard[j], local[j])`` in the given order, read shard by shard in row order (HDF5 reads forward).

    Returns
    -------
    audio : np.ndarray [shape=(n, frame_samples)], float32
    target : np.ndarray [shape=(n, d)], float32
    """
    audio = np.empty((len(shard), int(frame_samples)), np.float32)
    target = np.empty((len(shard), int(d)), np.float32)
    by_row = np.lexsort((local, shard))
    cuts = np.flatnonzero(np.diff(shard[by_row])) + 1
    for run in np.split(by_row, cuts):
        if len(run):
            audio[run], target[run] = reader.read_rows(int(shard[run[0]]), local[run])
    return audio, target


def train_dataset(shards: ShardSet, blocks: npt.ArrayLike, *, batch_size: int, seed: int, shuffle: str,
                  shuffle_buffer: int, cycle_length: int, rows_done: int = 0,
                  reader: BlockReader | None = None) -> tf.data.Dataset:
    """The endless, shuffled training stream of ``(audio [B, S], target [B, d])`` batches.

    Batch ``k`` holds windows ``k·B … (k+1)·B − 1`` of the stream described in the module
    docstring, whatever ``rows_done`` the dataset started from, so a resumed run (``rows_done`` =
    optimizer steps × ``B``) sees the batches of an uninterrupted one.

    Parameters
    ----------
    shards : ShardSet
        With targets attached.
    blocks : np.ndarray [shape=(n_blocks, 3)]
        From :func:`make_blocks` on the training rows.
    batch_size : int
        Global batch (windows per step).
    seed : int
    shuffle : str
        ``data.shuffle``: ``blocks`` (groups of contiguous blocks, permuted within) or ``iid``
        (each pass a permutation of every training row).
    shuffle_buffer : int
        ``blocks``: windows permuted together (a group of blocks from random shards; ≤ 1: no
        shuffling). ``iid``: rows read together (at least one batch).
    cycle_length : int
        Groups read ahead of training (memory: ``1 + cycle_length`` groups).
    rows_done : int
        Windows already consumed by the run being resumed (0 for a new run).
    reader : BlockReader, optional
        Shared with the run's other datasets (bounds the open files); default: a new one.

    Returns
    -------
    tf.data.Dataset
    """
    block_array = np.asarray(blocks, np.int64)
    if len(block_array) == 0:
        raise TrainError("no training windows to stream; embed more audio or lower data.valid_fraction")
    check_shuffle(shuffle)
    block_reader = reader if reader is not None else BlockReader(shards)
    seed = int(seed)
    frame_samples, d = shards.student_sample_rate, _target_dim(shards)
    if shuffle == "iid":
        total = int((block_array[:, 2] - block_array[:, 1]).sum())
        group_rows = max(int(shuffle_buffer or 1), int(batch_size))
        n_groups = -(-total // group_rows)
        pass_no, left = divmod(int(rows_done), total)
        start = (pass_no, left // group_rows, left % group_rows)
    else:
        per_group = blocks_per_group(block_array, shuffle_buffer)
        permute = bool(shuffle_buffer) and int(shuffle_buffer) > 1
        start = stream_position(block_array, seed, per_group, rows_done)
    # pass -> its groups (blocks) or its order (iid); a pass's groups are read in order, so one entry is enough
    cache: dict[int, list[np.ndarray]] = {}

    def positions() -> Iterator[npt.NDArray[np.int64]]:
        pass_no, group_no, offset = start
        while True:
            count = n_groups if shuffle == "iid" else len(pass_groups(block_array, seed, pass_no, per_group)[0])
            for g in range(group_no, count):
                yield np.array([pass_no, g, offset], np.int64)
                offset = 0
            pass_no, group_no = pass_no + 1, 0

    def read_group(position: np.ndarray) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        pass_no, group_no, offset = (int(v) for v in position)
        if pass_no not in cache:
            cache.clear()
            cache[pass_no] = [iid_pass_order(total, seed, pass_no)] if shuffle == "iid" else \
                pass_groups(block_array, seed, pass_no, per_group)[0]
        if shuffle == "iid":
            wanted = cache[pass_no][0][group_no * group_rows + offset:(group_no + 1) * group_rows]
            shard, local = block_rows_at(block_array, wanted)
            return read_scattered(block_reader, shard, local, frame_samples=frame_samples, d=d)
        parts = [block_reader.read(*block_array[k]) for k in cache[pass_no][group_no]]
        audio = np.concatenate([a for a, _ in parts])
        target = np.concatenate([t for _, t in parts])
        order = group_permutation(len(audio), seed, pass_no, group_no, shuffle=permute)[offset:]
        return audio[order], target[order]

    def read(position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        audio, target = tf.numpy_function(read_group, [position], [tf.float32, tf.float32])
        audio.set_shape([None, frame_samples])
        target.set_shape([None, d])
        return audio, target

    ds = tf.data.Dataset.from_generator(positions, output_signature=tf.TensorSpec([3], tf.int64))
    # One reader call at a time (the cache above and h5py are not for concurrent use); reading
    # ahead overlaps the reads with training.
    ds = ds.map(read).prefetch(max(1, int(cycle_length)))
    ds = ds.unbatch().batch(int(batch_size), drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _with_options(ds)


def validation_batches(n_windows: int, batch_size: int, *, validation_steps: int | None = None) -> int:
    """Batches of held-out windows evaluated at the end of every epoch.

    Parameters
    ----------
    n_windows : int
        Windows on the validation side of the split.
    batch_size : int
        Global batch.
    validation_steps : int, optional
        ``train.validation_steps``; None (or 0): every held-out window.

    Returns
    -------
    int
        ``validation_steps``, or every batch of the split when it holds fewer (the last may be
        short), with a :class:`SmallValidationWarning` naming both numbers.
    """
    available = math.ceil(int(n_windows) / int(batch_size))
    if not validation_steps:
        return available
    if int(validation_steps) > available:
        warnings.warn(f"train.validation_steps is {int(validation_steps)} batches of {int(batch_size)} but the "
                      f"validation split holds {int(n_windows)} windows ({available} batches): every epoch "
                      f"validates on all {int(n_windows)}", SmallValidationWarning, stacklevel=2)
        return available
    return int(validation_steps)


def eval_dataset(shards: ShardSet, blocks: np.ndarray, *, batch_size: int, max_batches: int | None = None,
                 reader: BlockReader | None = None) -> tf.data.Dataset:
    """The held-out windows in row order (the same batches every epoch, like the original SEA code's validator).

    ``reader``: a :class:`BlockReader` shared with the run's other datasets (default: a new one).
    """
    ds = tf.data.Dataset.from_tensor_slices(blocks.astype(np.int64))
    ds = ds.interleave(_block_reader(shards, reader), cycle_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size))
    if max_batches:
        ds = ds.take(int(max_batches))
    return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def _block_reader(shards: ShardSet, reader: BlockReader | None = None) -> Callable[[tf.Tensor], tf.data.Dataset]:
    """``block [3] -> Dataset of (audio [frame_samples], target [d])`` rows, read through ``reader``."""
    block_reader = reader if reader is not None else BlockReader(shards)
    frame_samples, d = shards.student_sample_rate, _target_dim(shards)

    def read(block: tf.Tensor) -> tf.data.Dataset:
        audio, target = tf.numpy_function(lambda b: block_reader.read(*b), [block], [tf.float32, tf.float32])
        audio.set_shape([None, frame_samples])
        target.set_shape([None, d])
        return tf.data.Dataset.from_tensor_slices((audio, target))

    return read


def _target_dim(shards: ShardSet) -> int:
    with h5py.File(shards.target_path(0), "r") as fh:
        return int(fh["target"].shape[1])


def _with_options(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    # Blocks come from a Python generator: shard the data (not files) when several workers read.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
