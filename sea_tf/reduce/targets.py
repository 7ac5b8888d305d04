"""``sea-tf reduce apply``: every teacher row through φ, into target files aligned row by row with the shards.

:func:`apply` is the command's entry point (the resolved ``reduce/apply`` config); :func:`apply_reducer`
does the same from explicit arguments.

Files (docs/PROTOCOL.md §3.3)::

    TARGETS/<job id>/<teacher shard name>.h5   dataset ``target`` float32 [n, d], row i ↔ teacher row i;
                                 attributes source_sha256 (of the shard's embedding), reducer_sha256,
                                 target_sha256 (of ``target``'s own float32 bytes)
    TARGETS/card.json            reducer card + teacher manifests; ``complete`` once every shard is done

Crash safety: each target is written atomically (temporary file, rename) but flushed to disk with all
the others at the end (:class:`sea_tf.atomic.BatchedWrites`: a fsync per file and folder, after the
last write), and only then does the card say ``complete``. A target that a crashed machine kept
without its data fails its ``target_sha256`` check and is recomputed by the next run.
"""
import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from sea_tf import atomic, cards
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, OutputError, ReduceError
from sea_tf.reduce.reducer import Reducer, _need_shards
from sea_tf.shards import ShardSet


def check_rows_finite(x: np.ndarray, shard_path: Path | str, first_row: int) -> None:
    """Raise :class:`ReduceError` naming ``shard_path`` and the row when ``x`` has NaN/inf rows."""
    if np.isfinite(x).all():   # the usual case, in half the time of the per-row test
        return
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
    source shard's ``embedding`` dataset (``source_sha256``; hashed from the rows read for the
    transform, and on resume re-read: the embedding is ~1/17 of a shard's bytes at 512-d with 1-s
    8 kHz audio; a shard of at most ``chunk_rows`` rows is then transformed from that one read), the
    reducer's sha256 and the sha256 of its own data (``target_sha256``). A re-run reuses a target
    only when all three match (resume), recomputes it when its source shard changed, and refuses a
    directory holding targets of another reducer. A PCA reducer runs as one float32 product, its
    scaler folded in (:meth:`~sea_tf.reduce.Reducer.projection`). Memory: ``chunk_rows`` rows of
    embeddings and one shard's targets. The targets are flushed to disk together before the card
    says ``complete`` (module docstring).

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
    # Over an old card, durably: a finished run's card says complete, and must not survive a crash
    # once its targets are being replaced. In a new folder, flushed with the targets: a crashed
    # machine that loses it leaves targets no card names (the next run recomputes them). Inside
    # OUT, made first: the card of a folder not yet there went beside it (OUT.card.json).
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write in {out_dir}: {exc.strerror}; choose a writable output directory") from exc
    names = shards.target_names()
    # Targets a finished run flushed; any other target found here may be a killed run's, not yet durable.
    flushed = set(old.get("shards") or ()) if old is not None and old.get("complete") else set()
    transform = reducer.projection() or reducer.transform
    bar = tqdm(total=shards.n_rows, desc=f"reduce apply ({reducer.method}, d={reducer.d})", unit="row",
               disable=not progress)
    # One BLAS thread: a shard's product is ~0.3 ms of work, and splitting it waits on a second thread
    # that a busy machine may not run for a while (3x slower at load 7 on 2 cores); the hasher
    # thread keeps the other core busy instead.
    with atomic.BatchedWrites(out_dir) as batch, bar, threadpool_limits(1, user_api="blas"), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sea-tf-sha256") as hasher:
        if old is not None:
            cards.write_card(out_dir, card)
        else:
            batch.write_json(cards.card_path(out_dir), card)
        for i, info in enumerate(shards.shards):
            path = out_dir / names[i]
            rows = None
            recorded = _recorded_source(path, reducer_sha, info.n_rows) if old is not None else None
            if recorded is not None:
                source_sha, rows = _hash_source(shards, i, chunk_rows)
                if source_sha == recorded:
                    if names[i] not in flushed:
                        batch.add(path)
                    bar.update(info.n_rows)
                    continue
            _write_target(batch, path, shards, i, transform, reducer.d, reducer_sha, chunk_rows, rows=rows,
                          hasher=hasher)
            bar.update(info.n_rows)
        # The card names the targets only once they are on disk: every fsync waited for here.
        batch.flush()
    card["complete"] = True
    card["shards"] = names
    cards.write_card(out_dir, card)
    return card


def _write_target(batch: atomic.BatchedWrites, path: Path, shards: ShardSet, i: int,
                  transform: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]], d: int, reducer_sha: str,
                  chunk_rows: int, *, rows: npt.NDArray[np.float32] | None, hasher: Executor) -> None:
    """Transform shard ``i`` chunk by chunk into ``path`` (atomic; durable at ``batch.flush()``).

    The source's sha256 is taken from the bytes read for the transform (``rows``: the shard's
    embedding already read by the resume check, when one chunk held it). The file is built in
    memory (one shard's targets, smaller than the shard teacher-embed held to write it) and written
    in one call: HDF5 never meets the disk (a full disk is one OutputError from that write), and
    the reservation a streamed HDF5 write needs (``sea_tf.shards.reserved_h5``) is not paid per file.
    ``target_sha256`` records the sha256 of the target's own float32 bytes, checked before a
    resumed run reuses the file (a machine crash before the flush can keep the name without the data).
    """
    info = shards.shards[i]
    digest = hashlib.sha256()
    hashed: Future[None] | None = None
    target = np.empty((info.n_rows, d), dtype=np.float32)
    for a in range(0, info.n_rows, chunk_rows):
        b = min(a + chunk_rows, info.n_rows)
        x = rows if rows is not None else _read_embedding(shards, i, a, b)
        if hashed is not None:   # one chunk in flight: memory stays two chunks
            hashed.result()
        # sha256 (~1 ms per 2 MB) on the hasher's thread while this one checks, transforms and builds
        # the file: hashlib releases the GIL
        hashed = hasher.submit(digest.update, x.data)
        check_rows_finite(x, info.path, a)
        target[a:b] = transform(x)
    # Contiguous, not chunked: built in half the time, and distill reads targets in row ranges.
    image = io.BytesIO()
    with h5py.File(image, "w", libver="earliest", track_order=False) as fh:
        fh.create_dataset("target", data=target, track_times=False)
        fh.attrs["target_sha256"] = hashlib.sha256(target.data).hexdigest()
        fh.attrs["reducer_sha256"] = reducer_sha
        fh.attrs["source_shard"] = str(info.path)
        if hashed is not None:
            hashed.result()
        fh.attrs["source_sha256"] = digest.hexdigest()
    batch.write_bytes(path, image.getbuffer())


def _read_embedding(shards: ShardSet, i: int, a: int, b: int) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(shards.read_shard(i, "embedding", a, b), dtype=np.float32)


def _hash_source(shards: ShardSet, i: int, chunk_rows: int) -> tuple[str, npt.NDArray[np.float32] | None]:
    """sha256 of shard ``i``'s embedding (float32 bytes), and the rows when one chunk held them (else None)."""
    n_rows = shards.shards[i].n_rows
    if n_rows <= chunk_rows:
        x = _read_embedding(shards, i, 0, n_rows)
        return hashlib.sha256(x.data).hexdigest(), x
    return _chunked_sha256(lambda a, b: shards.read_shard(i, "embedding", a, b), n_rows, step=chunk_rows), None


def _recorded_source(path: Path, reducer_sha: str, n_rows: int) -> str | None:
    """The source sha256 recorded in ``path`` when it holds whole targets of this reducer for ``n_rows`` rows.

    None (recompute it) for a missing or damaged file, another reducer's, another row count, or
    data whose sha256 differs from the ``target_sha256`` recorded beside it: a target written
    before the last run's flush and lost in a machine crash, or one written before targets carried it.
    """
    try:
        with h5py.File(path, "r") as fh:
            source, reducer, content = (fh.attrs.get(k) for k in ("source_sha256", "reducer_sha256", "target_sha256"))
            if reducer != reducer_sha or fh["target"].shape[0] != n_rows or source is None or content is None:
                return None
            data = np.ascontiguousarray(fh["target"][...], dtype=np.float32)
    except (OSError, KeyError):  # missing, damaged or pre-naming target: recompute it
        return None
    return str(source) if hashlib.sha256(data.data).hexdigest() == content else None
