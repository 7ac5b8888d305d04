"""``sea-tf reduce apply``: every teacher row through φ, into target files aligned row by row with the shards.

:func:`apply` is the command's entry point (the resolved ``reduce/apply`` config); :func:`apply_reducer`
does the same from explicit arguments.

Files (docs/PROTOCOL.md §3.3)::

    TARGETS/<job id>/<teacher shard name>.h5   dataset ``target`` float32 [n, d], row i ↔ teacher row i;
                                 attributes source_sha256 (of the shard's embedding), reducer_sha256
    TARGETS/card.json            reducer card + teacher manifests; ``complete`` once every shard is done
"""
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from sea_tf import cards
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, OutputError, ReduceError
from sea_tf.reduce.reducer import Reducer, _need_shards
from sea_tf.shards import ShardSet, hdf5_size_bound, reserved_h5


def check_rows_finite(x: np.ndarray, shard_path: Path | str, first_row: int) -> None:
    """Raise :class:`ReduceError` naming ``shard_path`` and the row when ``x`` has NaN/inf rows."""
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = first_row + int(np.flatnonzero(bad)[0])
        raise ReduceError(f"{shard_path}: row {row} of dataset 'embedding' holds NaN or infinite values "
                          f"({int(bad.sum())} such rows in this chunk); re-run `sea-tf teacher-embed` for that "
                          "shard (delete it and its manifest entry) or drop the source file")


def _chunked_sha256(read: Callable[[int, int], np.ndarray], n_rows: int, *, step: int = 65536) -> str:
    """sha256 of the float32 bytes of rows [0, n_rows), read ``step`` rows at a time."""
    digest = hashlib.sha256()
    for a in range(0, n_rows, step):
        digest.update(np.ascontiguousarray(read(a, min(a + step, n_rows)), dtype=np.float32).tobytes())
    return digest.hexdigest()


def apply(cfg: Config) -> dict[str, Any]:
    """``sea-tf reduce apply``: every row of the teacher shards ``cfg["shards"]`` through the reducer ``cfg["reducer"]``.

    Parameters
    ----------
    cfg : dict
        The resolved ``reduce/apply`` config (the ``apply:`` section of ``configs/reduce/defaults.yaml``;
        ``sea_tf.config.load("reduce/apply", reducer=..., shards=[...], out=...)``).

    Returns
    -------
    dict
        The targets card (:func:`apply_reducer`); the resolved config is written as
        ``OUT/reduce-apply.config.yaml``.

    Raises
    ------
    ConfigError
        No teacher shards or no reducer given.
    """
    _need_shards(cfg)
    if not cfg["reducer"]:
        raise ConfigError("no reducer given; pass --reducer DIR (output of `sea-tf reduce fit`)")
    out = Path(cfg["out"])
    card = apply_reducer(cfg["reducer"], cfg["shards"], out, chunk_rows=cfg["chunk_rows"], progress=cfg["progress"],
                         allow_partial=cfg["allow_partial"])
    write_resolved(cfg, out, "reduce-apply")
    return card


def apply_reducer(reducer_dir: Path | str, shard_dirs: Path | str | Sequence[Path | str], out_dir: Path | str, *,
                  chunk_rows: int, progress: bool, allow_partial: bool) -> dict[str, Any]:
    """Transform every teacher row into ``OUT/<job id>/<shard name>.h5`` (``target``; ``sea-tf reduce apply``).

    Target files are named by :meth:`sea_tf.shards.ShardSet.target_names`, so shards of different
    runs that share a name (two runs without ``--shard`` both write ``shard-0of1-*``) never overwrite
    each other. Each target file records, as HDF5 attributes, the sha256 of the float32 bytes of its
    source shard's ``embedding`` dataset (``source_sha256``; hashed while transforming, and on resume
    re-read: the embedding is ~1/17 of a shard's bytes at 512-d with 1-s 8 kHz audio) and the
    reducer's sha256. A re-run reuses a target only when both match (resume), recomputes it when its
    source shard changed, and refuses a directory holding targets of another reducer. Memory is
    bounded by ``chunk_rows`` rows.

    Parameters
    ----------
    reducer_dir : str or Path
    shard_dirs : str, Path or list
    out_dir : str or Path
    chunk_rows : int
    progress : bool
        Show a progress bar (rows).
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    dict
        The targets card; ``shards`` lists the target files (relative to ``out_dir``) in row order.
    """
    reducer_dir, out_dir = Path(reducer_dir), Path(out_dir)
    reducer_card = cards.read_card(reducer_dir)
    reducer = Reducer.load(reducer_dir)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    if reducer_card.get("teacher_card_sha256") != shards.teacher_card_sha256:
        raise ReduceError(f"{reducer_dir}: this reducer was fitted on embeddings of another teacher "
                          f"({reducer_card.get('teacher_card', {}).get('name')!r}) than the shards in "
                          f"{', '.join(map(str, shards.dirs))} ({shards.teacher_card.get('name')!r}); fit one on these")
    if reducer_card.get("embedding_size") != shards.embedding_size:
        raise ReduceError(f"{reducer_dir}: fitted on {reducer_card.get('embedding_size')}-d embeddings, the shards "
                          f"hold {shards.embedding_size}-d ones")
    reducer_sha = reducer_card["hashes"]["reducer_sha256"]
    card = {"kind": "targets", "d": reducer.d, "method": reducer.method, "reducer_dir": str(reducer_dir),
            "reducer_sha256": reducer_sha, "reducer_card": reducer_card,
            "teacher_shards": shards.describe(), "complete": False}
    old = cards.read_card(out_dir, required=False) if out_dir.is_dir() else None
    if old is not None and (old.get("kind") != "targets" or old.get("reducer_sha256") != reducer_sha):
        raise OutputError(f"{out_dir}: holds targets of another reducer ({old.get('reducer_dir')}); "
                          "choose a new output directory or delete this one")
    # Written first so that a killed run leaves a card naming its reducer (another one is refused
    # here); which targets are done is read from the target files themselves, not from this card.
    cards.write_card(out_dir, card)
    names = shards.target_names()
    bar = tqdm(total=shards.n_rows, desc=f"reduce apply ({reducer.method}, d={reducer.d})", unit="row",
               disable=not progress)
    for i, info in enumerate(shards.shards):
        path = out_dir / names[i]
        # _reusable reads through the lambda before the loop moves on: binding i late is safe
        if old is not None and _reusable(path, reducer_sha, lambda a, b: shards.read_shard(i, "embedding", a, b),
                                         info.n_rows, chunk_rows):
            bar.update(info.n_rows)
        else:
            _write_target(path, shards, i, reducer, reducer_sha, chunk_rows, bar)
    bar.close()
    card["complete"] = True
    card["shards"] = names
    cards.write_card(out_dir, card)
    return card


def _write_target(path: Path, shards: ShardSet, i: int, reducer: Reducer, reducer_sha: str, chunk_rows: int,
                  bar: tqdm) -> None:
    """Transform shard ``i`` chunk by chunk into ``path`` (atomic), hashing its embedding on the way."""
    info = shards.shards[i]
    digest = hashlib.sha256()
    # Space reserved before HDF5's chunked writes, as for teacher shards: a full disk is one OutputError.
    bound = hdf5_size_bound([(info.n_rows * reducer.d * 4, info.n_rows)], compressed=False)
    with reserved_h5(path, bound) as fh:
        dset = fh.create_dataset("target", shape=(info.n_rows, reducer.d), dtype=np.float32,
                                 chunks=(max(1, min(64, info.n_rows)), reducer.d), track_times=False)
        for a in range(0, info.n_rows, chunk_rows):
            b = min(a + chunk_rows, info.n_rows)
            x = np.ascontiguousarray(shards.read_shard(i, "embedding", a, b), dtype=np.float32)
            check_rows_finite(x, info.path, a)
            digest.update(x.data)
            dset[a:b] = reducer.transform(x)
            bar.update(b - a)
        fh.attrs["source_sha256"] = digest.hexdigest()
        fh.attrs["reducer_sha256"] = reducer_sha
        fh.attrs["source_shard"] = str(info.path)


def _reusable(path: Path, reducer_sha: str, read: Callable[[int, int], np.ndarray], n_rows: int,
              chunk_rows: int) -> bool:
    """True when ``path`` holds targets of this reducer for exactly these embedding rows (``read(a, b)``)."""
    try:
        with h5py.File(path, "r") as fh:
            recorded = (fh.attrs.get("source_sha256"), fh.attrs.get("reducer_sha256"), fh["target"].shape[0])
    except (OSError, KeyError):  # missing, damaged or pre-naming target: recompute it
        return False
    if recorded[1] != reducer_sha or recorded[2] != n_rows or recorded[0] is None:
        return False
    return _chunked_sha256(read, n_rows, step=chunk_rows) == recorded[0]
