"""The reduction φ: ℝⁿ → ℝᵈ, fitted on a sample of teacher embeddings and applied to every row.

docs/PROTOCOL.md §3.2–3.3. ``StandardScaler`` then PCA (scikit-learn: exact ``PCA`` or ``IncrementalPCA``
fitted chunk by chunk for samples that do not fit in memory) or UMAP (umap-learn), or ``none``
(targets are the raw teacher embeddings, the original 512-d "mse" mode).

Files::

    REDUCER_DIR/reducer.joblib   {"scaler", "model", "method", "d"} (a pickle: loaded only when its sha256
                                 is the card's hashes.reducer_sha256; use reducers from trusted sources only)
    REDUCER_DIR/card.json        method, d, params, sample card, teacher card, hashes, quality
    REDUCER_DIR/quality.json|png held-out quality (:mod:`sea_tf.reduce_quality`)

A fit writes these into a fresh ``.REDUCER_DIR.staging-<pid>-*`` folder and swaps it into place as
one unit (:func:`_install`), so a killed fit leaves the old reducer whole, never a new model beside
an old card.
    TARGETS/<job id>/<teacher shard name>.h5   dataset ``target`` float32 [n, d], row i ↔ teacher row i;
                                 attributes source_sha256 (of the shard's embedding), reducer_sha256
    TARGETS/card.json            reducer card + teacher manifests; ``complete`` once every shard is done
"""
import contextlib
import ctypes
import errno
import hashlib
import io
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import h5py
import joblib
import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from sea_tf import atomic, cards
from sea_tf.errors import ConfigError, DataError, OutputError, ReduceError
from sea_tf.sampling import load_sample
from sea_tf.shards import ShardSet, hdf5_size_bound, reserved_h5

METHODS = ("pca", "umap", "none")
PCA_SOLVERS = ("exact", "incremental")


class Reducer:
    """A fitted φ: optional scaler + model, mapping teacher embeddings [n, D] to targets [n, d].

    Attributes
    ----------
    method : {"pca", "umap", "none"}
    d : int
        Output dimension.
    scaler : sklearn.preprocessing.StandardScaler or None
    model : fitted PCA / IncrementalPCA / umap.UMAP, or None for ``none``
    """

    def __init__(self, method, d, scaler=None, model=None):
        self.method, self.d, self.scaler, self.model = method, int(d), scaler, model

    def transform(self, embeddings):
        """Map teacher embeddings to targets.

        Parameters
        ----------
        embeddings : np.ndarray [shape=(n, D)]

        Returns
        -------
        np.ndarray [shape=(n, d), dtype=float32]
        """
        x = np.asarray(embeddings, dtype=np.float32)
        if self.method == "none":
            return x.copy()
        x = self.scaler.transform(x)
        return np.asarray(self.model.transform(x), dtype=np.float32)

    def save(self, out_dir):
        """Write ``out_dir/reducer.joblib``; returns its path."""
        path = Path(out_dir) / "reducer.joblib"
        with atomic.atomic_path(path, suffix=".joblib") as tmp:
            joblib.dump({"method": self.method, "d": self.d, "scaler": self.scaler, "model": self.model},
                        tmp, compress=3)
        return path

    @classmethod
    def load(cls, reducer_dir):
        """Read a reducer saved by :meth:`save`, only when its sha256 is the one its card records.

        ``reducer.joblib`` is a pickle: unpickling runs whatever code the file names. So it is read
        only when its bytes are the ones ``card.json`` beside it was written for (by ``sea-tf reduce
        fit``); a reducer folder must still come from a trusted source, since whoever can write the
        pickle can write the card.

        Raises
        ------
        DataError
            No reducer or card, or a ``reducer.joblib`` whose sha256 differs from the card's.
        """
        reducer_dir = Path(reducer_dir)
        path = reducer_dir / "reducer.joblib"
        if not path.is_file():
            raise DataError(f"{path}: no reducer found; run `sea-tf reduce fit` first")
        card = cards.read_card(reducer_dir, required=False)
        expected = ((card or {}).get("hashes") or {}).get("reducer_sha256") if isinstance(card, dict) else None
        if not expected:
            raise DataError(f"{path}: no card with its sha256 beside it ({cards.card_path(reducer_dir)}); a reducer is "
                            "a pickle, loaded only as written by `sea-tf reduce fit` with its card: re-run it")
        # Hash and unpickle the same bytes: the file cannot be swapped between the check and the load.
        blob = path.read_bytes()
        actual = hashlib.sha256(blob).hexdigest()
        if actual != expected:
            raise DataError(f"{path}: sha256 {actual[:12]}... differs from the {expected[:12]}... its card records; the "
                            "file was changed or replaced after the fit (a pickle: it was not loaded). Re-run "
                            "`sea-tf reduce fit`, and use reducers from trusted sources only")
        try:
            state = joblib.load(io.BytesIO(blob))
        except Exception as exc:  # noqa: BLE001 - joblib raises many types for damaged files
            raise DataError(f"{path}: cannot load the reducer ({exc}); re-run `sea-tf reduce fit`") from exc
        return cls(state["method"], state["d"], state["scaler"], state["model"])


def check_dims(method, d, n_dims, n_samples):
    """Validate the output dimension; returns the effective d (``n_dims`` for ``none``)."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "none":
        return int(n_dims)
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ConfigError(f"d must be a positive integer, got {d!r}")
    if d >= n_dims:
        raise ReduceError(f"d = {d} must be smaller than the teacher embedding size n = {n_dims} "
                          "(use --method none to keep the raw embeddings)")
    if d >= n_samples:
        raise ReduceError(f"d = {d} must be smaller than the number of fitting samples ({n_samples}); "
                          "sample more rows with `sea-tf sample` or lower d")
    return int(d)


def fit_reducer(sample, method="pca", d=64, pca_solver="exact", umap_params=None, seed=20180216,
                chunk_rows=65536):
    """Fit φ on the sample.

    Parameters
    ----------
    sample : np.ndarray [shape=(m, D)] or callable
        The fitting rows, or ``sample(start, stop) -> rows [stop - start, D]`` together with
        ``pca_solver="incremental"``: the scaler and IncrementalPCA are then fitted chunk by chunk
        so the sample never sits in memory at once (``sample.n_rows`` must give m).
    method : {"pca", "umap", "none"}
    d : int
    pca_solver : {"exact", "incremental"}
    umap_params : dict, optional
        ``n_neighbors``, ``min_dist``, ``metric`` for umap-learn.
    seed : int
    chunk_rows : int
        Rows per partial fit (incremental PCA).

    Returns
    -------
    Reducer
    """
    if method == "pca" and pca_solver not in PCA_SOLVERS:
        raise ConfigError(f"pca.solver must be one of {', '.join(PCA_SOLVERS)}; got {pca_solver!r}")
    if callable(sample):
        if method != "pca" or pca_solver != "incremental":
            raise ConfigError("fitting from a chunk reader needs method=pca with pca.solver=incremental")
        return _fit_incremental(sample, d, chunk_rows)
    x = np.asarray(sample, dtype=np.float32)
    d = check_dims(method, d, x.shape[1], len(x))
    _check_finite(x, "the fitting sample")
    if method == "none":
        return Reducer("none", d)
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    if method == "pca":
        if pca_solver == "exact":
            model = PCA(n_components=d, svd_solver="full", random_state=seed).fit(xs)
            return Reducer("pca", d, scaler, model)
        return _fit_incremental(lambda a, b: x[a:b], d, chunk_rows, n_rows=len(x))
    import umap  # imported lazily: it pulls in numba (and TensorFlow) and takes seconds
    params = dict(umap_params or {})
    model = umap.UMAP(n_components=d, n_neighbors=int(params.get("n_neighbors", 15)),
                      min_dist=float(params.get("min_dist", 0.3)), metric=params.get("metric", "euclidean"),
                      random_state=seed, n_jobs=1, low_memory=True)  # seeded UMAP is single-threaded anyway
    model.fit(xs)
    return Reducer("umap", d, scaler, model)


def _fit_incremental(read, d, chunk_rows, n_rows=None):
    """Two passes over chunks: StandardScaler.partial_fit, then IncrementalPCA.partial_fit."""
    n_rows = read.n_rows if n_rows is None else n_rows
    step = max(int(chunk_rows), int(d))
    scaler = StandardScaler()
    for a in range(0, n_rows, step):
        part = np.asarray(read(a, min(a + step, n_rows)), dtype=np.float32)
        if a == 0:
            d = check_dims("pca", d, part.shape[1], n_rows)
        _check_finite(part, f"the fitting sample (rows {a}..)")
        scaler.partial_fit(part)
    model = IncrementalPCA(n_components=d)
    for a in range(0, n_rows, step):
        b = min(a + step, n_rows)
        if b - a < d:  # IncrementalPCA needs ≥ d rows per call; the short tail joins no batch
            break
        model.partial_fit(scaler.transform(np.asarray(read(a, b), dtype=np.float32)))
    return Reducer("pca", d, scaler, model)


def _check_finite(x, where):
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ReduceError(f"{where}: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite values "
                          f"({int(bad.sum())} rows in all); re-extract those teacher embeddings")


def check_rows_finite(x, shard_path, first_row):
    """Raise :class:`ReduceError` naming ``shard_path`` and the row when ``x`` has NaN/inf rows."""
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = first_row + int(np.flatnonzero(bad)[0])
        raise ReduceError(f"{shard_path}: row {row} of dataset 'embedding' holds NaN or infinite values "
                          f"({int(bad.sum())} such rows in this chunk); re-run `sea-tf teacher-embed` for that "
                          "shard (delete it and its manifest entry) or drop the source file")


def fit(shard_dirs, sample_dir, out_dir, method="pca", d=64, pca_solver="exact", umap_params=None,
        seed=20180216, quality=None, progress=True, allow_partial=False):
    """``sea-tf reduce fit``: fit φ on a sample of teacher rows and save it with its card.

    Parameters
    ----------
    shard_dirs : str, Path or list
        Teacher shard directories the sample indexes.
    sample_dir : str or Path
        Output of ``sea-tf sample`` (``sample.npz`` + ``card.json``).
    out_dir : str or Path
        Reducer directory to write.
    method, d, pca_solver, umap_params, seed
        See :func:`fit_reducer`.
    quality : dict, optional
        Settings for :func:`sea_tf.reduce_quality.evaluate` (``n_heldout``, ``k``); ``None`` skips it.
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    dict
        The reducer card.
    """
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)  # before the fit: a folder that is not a reducer's is never replaced
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    index, sample_card = load_sample(sample_dir)
    if sample_card.get("teacher_card_sha256") != shards.teacher_card_sha256 or \
            int(index.max(initial=-1)) >= shards.n_rows:
        raise ReduceError(f"{sample_dir}: this sample was drawn from other teacher shards "
                          f"({sample_card.get('teacher_shards', {}).get('dirs')}); re-run `sea-tf sample` on "
                          f"{', '.join(map(str, shards.dirs))}")
    d = check_dims(method, d, shards.embedding_size, len(index))
    if method == "pca" and pca_solver == "incremental":
        def read(a, b):  # out of core: only one chunk of the sample in memory at a time
            return shards.read("embedding", index[a:b])
        read.n_rows = len(index)
        reducer = fit_reducer(read, method, d, pca_solver, umap_params, seed)
        data_sha = _chunked_sha256(read, len(index))
    else:
        x = shards.read("embedding", index)
        _check_finite(x, f"sample {sample_dir}")
        reducer = fit_reducer(x, method, d, pca_solver, umap_params, seed)
        data_sha = _chunked_sha256(lambda a, b: x[a:b], len(x))
    folder = Path(os.path.abspath(out_dir))  # its parent holds the stage, even for --out .
    with _staging(folder) as stage:
        card = _write_reducer(stage, out_dir, reducer, shards, index, sample_card, sample_dir, method, d, pca_solver,
                              umap_params, seed, data_sha, quality)
        _install(stage, folder)
    return card


def _write_reducer(stage, out_dir, reducer, shards, index, sample_card, sample_dir, method, d, pca_solver,
                   umap_params, seed, data_sha, quality):
    """Write model, quality report and card into ``stage`` (paths in them name ``out_dir``); returns the card."""
    path = reducer.save(stage)
    params = {"pca_solver": pca_solver} if method == "pca" else dict(umap_params or {}) if method == "umap" else {}
    card = {"kind": "reducer", "method": method, "d": d, "params": params, "seed": int(seed),
            "embedding_size": shards.embedding_size,
            "sample": {**sample_card, "path": str(sample_dir)},
            "teacher_card": shards.teacher_card, "teacher_card_sha256": shards.teacher_card_sha256,
            "teacher_shards": shards.describe(),
            "hashes": {"sample_index_sha256": sample_card.get("index_sha256"),
                       "sample_data_sha256": data_sha, "reducer_sha256": cards.sha256_file(path)}}
    if method == "pca":
        card["explained_variance_ratio"] = [float(v) for v in reducer.model.explained_variance_ratio_]
    if quality is not None:
        from sea_tf.reduce_quality import evaluate  # reduce_quality imports this module
        card["quality"] = evaluate(shards, reducer, index, stage, seed=seed, **quality)
        if card["quality"].get("png"):  # written in the stage; named where it will be
            card["quality"]["png"] = str(out_dir / Path(card["quality"]["png"]).name)
            atomic.write_json(stage / "quality.json", card["quality"])
    cards.write_card(stage, card)
    return card


#: What ``sea-tf reduce fit`` writes in a reducer folder (besides ``<command>.config.yaml``).
REDUCER_FILES = ("reducer.joblib", "card.json", "quality.json", "quality.png")
_RENAME_EXCHANGE = 2  # linux/fs.h: renameat2 swaps the two names atomically


def _check_replaceable(out_dir):
    """Refuse an ``out_dir`` that exists and holds anything but a reducer (it is replaced as a whole)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory; choose another --out for the reducer")
    entries = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))
    foreign = [n for n in entries if n not in REDUCER_FILES and not n.endswith(".config.yaml")]
    card = cards.read_card(out_dir, required=False) if "card.json" in entries else None
    if foreign or (entries and not (isinstance(card, dict) and card.get("kind") == "reducer")):
        raise OutputError(f"{out_dir}: holds {', '.join(foreign or entries)[:200]}, not only a reducer, and a new fit "
                          "replaces the whole folder; choose another --out (nothing was written)")


@contextlib.contextmanager
def _staging(out_dir):
    """A fresh folder beside ``out_dir`` (``.<name>.staging-<pid>-*``), removed unless installed.

    Stale stages of writers that died (their pid gone) are swept first, and a reducer folder left
    aside by an interrupted :func:`_install` fallback is put back.
    """
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _sweep(out_dir)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write in {parent}: {exc.strerror or exc}; choose a writable --out") from exc
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _sweep(out_dir):
    for prefix in ("staging", "old"):
        for stale in out_dir.parent.glob(f".{out_dir.name}.{prefix}-*"):
            pid = stale.name[len(f".{out_dir.name}.{prefix}-"):].split("-")[0]
            if pid.isdigit() and _alive(int(pid)):
                continue
            if prefix == "old" and not out_dir.exists():
                os.rename(stale, out_dir)  # killed between the fallback's two renames: the old one is whole
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _install(stage, out_dir):
    """Put the finished ``stage`` at ``out_dir`` as one unit: a reader sees the old reducer or the new one.

    A new ``out_dir`` is one ``rename``. An existing one is swapped with ``renameat2(RENAME_EXCHANGE)``
    (Linux ≥ 3.15; ext4, xfs, btrfs, tmpfs), then the old contents, now in ``stage``, are deleted.
    Where the swap is unsupported (NFS, other systems) the old folder is renamed aside first; a kill
    between the two renames leaves it at ``.<name>.old-<pid>-*``, which the next fit puts back.
    """
    atomic.fsync_dir(stage)
    try:
        if not out_dir.exists():
            os.rename(stage, out_dir)
        elif not _exchange(stage, out_dir):
            aside = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(out_dir, aside)
            os.rename(stage, out_dir)
            shutil.rmtree(aside, ignore_errors=True)
        atomic.fsync_dir(out_dir.parent)
    except OSError as exc:
        raise OutputError(f"cannot put the reducer in place at {out_dir}: {exc.strerror or exc}; check the folder "
                          "and its permissions") from exc


def _exchange(a, b):
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``); False where the system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _chunked_sha256(read, n_rows, step=65536):
    """sha256 of the float32 bytes of rows [0, n_rows), read ``step`` rows at a time."""
    import hashlib
    digest = hashlib.sha256()
    for a in range(0, n_rows, step):
        digest.update(np.ascontiguousarray(read(a, min(a + step, n_rows)), dtype=np.float32).tobytes())
    return digest.hexdigest()


def apply(reducer_dir, shard_dirs, out_dir, chunk_rows=16384, progress=True, allow_partial=False):
    """``sea-tf reduce apply``: transform every teacher row into ``OUT/<job id>/<shard name>.h5`` (``target``).

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
        if old is not None and _reusable(path, reducer_sha, lambda a, b, i=i: shards.read_shard(i, "embedding", a, b),
                                         info.n_rows, chunk_rows):
            bar.update(info.n_rows)
        else:
            _write_target(path, shards, i, reducer, reducer_sha, chunk_rows, bar)
    bar.close()
    card["complete"] = True
    card["shards"] = names
    cards.write_card(out_dir, card)
    return card


def _write_target(path, shards, i, reducer, reducer_sha, chunk_rows, bar):
    """Transform shard ``i`` chunk by chunk into ``path`` (atomic), hashing its embedding on the way."""
    import hashlib
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


def _reusable(path, reducer_sha, read, n_rows, chunk_rows):
    """True when ``path`` holds targets of this reducer for exactly these embedding rows (``read(a, b)``)."""
    try:
        with h5py.File(path, "r") as fh:
            recorded = (fh.attrs.get("source_sha256"), fh.attrs.get("reducer_sha256"), fh["target"].shape[0])
    except (OSError, KeyError):  # missing, damaged or pre-naming target: recompute it
        return False
    if recorded[1] != reducer_sha or recorded[2] != n_rows or recorded[0] is None:
        return False
    return _chunked_sha256(read, n_rows, step=chunk_rows) == recorded[0]
