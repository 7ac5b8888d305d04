"""``tf.data`` input: (audio window, reduced target) batches read straight from the shards.

The training stream is an endless sequence of passes over the training rows. Each pass visits
*blocks* (≤ ``block_rows`` contiguous rows of one shard, all from the training side of the split)
in an order drawn from ``(seed, pass)``; ``cycle_length`` blocks are read in parallel and
interleaved, windows are mixed in a shuffle buffer, batched and prefetched. Because the block
order depends only on the seed and the pass, a resumed run restarts the stream at the block where
the killed run was (to within the shuffle buffer) without reading the skipped data.

Memory is bounded by ``shuffle_buffer + cycle_length × block_rows`` windows, open files by
``max_open_files`` (``data.max_open_files``): one :class:`BlockReader` serves every dataset of a
run, whatever the number of shards.
"""
import collections
import threading

import h5py
import numpy as np

from sea_tf.backend import tf
from sea_tf.distill.defaults import DEFAULTS
from sea_tf.errors import TrainError


def make_blocks(shards, rows, block_rows=256):
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
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.zeros((0, 3), np.int64)
    ends = np.array([s.offset + s.n_rows for s in shards.shards], np.int64)
    shard = np.searchsorted(ends, rows, side="right")
    # A run breaks where rows stop being consecutive or the shard changes.
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(shard) != 0)) + 1
    blocks = []
    for run in np.split(np.arange(rows.size), breaks):
        i = int(shard[run[0]])
        first, last = int(rows[run[0]]) - shards.shards[i].offset, int(rows[run[-1]]) - shards.shards[i].offset + 1
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

    def __init__(self, shards, max_open_files=None):
        if max_open_files is None:
            max_open_files = DEFAULTS["data"]["max_open_files"]
        if isinstance(max_open_files, bool) or not isinstance(max_open_files, int) or max_open_files < 2:
            raise TrainError(f"data.max_open_files must be an integer of at least 2 (a shard and its target "
                             f"file), got {max_open_files!r}")
        self.shards = shards
        self.max_open_files = max_open_files
        self._files = collections.OrderedDict()  # path -> h5py.File, least recently used first
        self._lock = threading.Lock()

    def _open(self, path):
        handle = self._files.pop(path, None)
        if handle is None:
            while len(self._files) >= self.max_open_files:
                _, oldest = self._files.popitem(last=False)
                oldest.close()
            handle = h5py.File(path, "r")
        self._files[path] = handle  # now the most recently used
        return handle

    def read(self, i, start, stop):
        """``audio float32 [n, frame_samples]``, ``target float32 [n, d]`` of shard ``i`` rows [start, stop)."""
        info = self.shards.shards[int(i)]
        target_path = self.shards.target_path(i)
        # One lock for the reads and the cache: h5py serialises access anyway, and a handle must
        # not be closed by another thread's eviction while it is being read.
        with self._lock:
            audio = self._open(info.path)["audio"][int(start):int(stop)]
            target = self._open(target_path)["target"][int(start):int(stop)]
        return audio.astype(np.float32, copy=False), target.astype(np.float32, copy=False)

    @property
    def n_open(self):
        """Files open now (int)."""
        with self._lock:
            return len(self._files)

    def close(self):
        """Close every open file (files are reopened as needed if the reader is used again)."""
        with self._lock:
            while self._files:
                self._files.popitem()[1].close()


def block_order(n_blocks, seed, start_pass=0, start_block=0):
    """Endless block indices: pass p visits ``permutation(n_blocks)`` drawn from ``(seed, p)``."""
    p, skip = int(start_pass), int(start_block)
    while True:
        order = np.random.default_rng([int(seed), p]).permutation(n_blocks)
        yield from order[skip:]
        p, skip = p + 1, 0


def train_dataset(shards, blocks, batch_size, seed, shuffle_buffer=4096, cycle_length=4, rows_done=0,
                  reader=None):
    """The endless, shuffled training stream of ``(audio [B, S], target [B, d])`` batches.

    Parameters
    ----------
    shards : ShardSet
        With targets attached.
    blocks : np.ndarray [shape=(n_blocks, 3)]
        From :func:`make_blocks` on the training rows.
    batch_size : int
        Global batch (windows per step).
    seed : int
    shuffle_buffer : int
        Windows mixed across blocks (and therefore shards).
    cycle_length : int
        Blocks read and interleaved in parallel.
    rows_done : int
        Windows already consumed by the run being resumed (0 for a new run).
    reader : BlockReader, optional
        Shared with the run's other datasets (bounds the open files); default: a new one.

    Returns
    -------
    tf.data.Dataset
    """
    start_pass, start_block = _start(blocks, seed, rows_done)

    def order():
        for k in block_order(len(blocks), seed, start_pass, start_block):
            yield blocks[k]

    ds = tf.data.Dataset.from_generator(order, output_signature=tf.TensorSpec([3], tf.int64))
    ds = ds.interleave(_block_reader(shards, reader), cycle_length=max(1, int(cycle_length)), block_length=16,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle_buffer and shuffle_buffer > 1:
        ds = ds.shuffle(int(shuffle_buffer), seed=int(seed) + int(rows_done), reshuffle_each_iteration=False)
    ds = ds.batch(int(batch_size), drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return _with_options(ds)


def eval_dataset(shards, blocks, batch_size, max_batches=None, reader=None):
    """The held-out windows in row order (the same batches every epoch, like the original SEA code's validator).

    ``reader``: a :class:`BlockReader` shared with the run's other datasets (default: a new one).
    """
    ds = tf.data.Dataset.from_tensor_slices(blocks.astype(np.int64))
    ds = ds.interleave(_block_reader(shards, reader), cycle_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size))
    if max_batches:
        ds = ds.take(int(max_batches))
    return _with_options(ds.prefetch(tf.data.AUTOTUNE))


def _block_reader(shards, reader=None):
    """``block [3] -> Dataset of (audio [frame_samples], target [d])`` rows, read through ``reader``."""
    reader = reader if reader is not None else BlockReader(shards)
    frame_samples, d = shards.student_sample_rate, _target_dim(shards)

    def read(block):
        audio, target = tf.numpy_function(lambda b: reader.read(*b), [block], [tf.float32, tf.float32])
        audio.set_shape([None, frame_samples])
        target.set_shape([None, d])
        return tf.data.Dataset.from_tensor_slices((audio, target))

    return read


def _start(blocks, seed, rows_done):
    if not rows_done or len(blocks) == 0:
        return 0, 0
    sizes = (blocks[:, 2] - blocks[:, 1]).astype(np.int64)
    start_pass, left = divmod(int(rows_done), int(sizes.sum()))
    order = np.random.default_rng([int(seed), start_pass]).permutation(len(blocks))
    start_block = int(np.searchsorted(np.cumsum(sizes[order]), left, side="right"))
    return start_pass, start_block


def _target_dim(shards):
    with h5py.File(shards.target_path(0), "r") as fh:
        return int(fh["target"].shape[1])


def _with_options(ds):
    options = tf.data.Options()
    # Blocks come from a Python generator: shard the data (not files) when several workers read.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
