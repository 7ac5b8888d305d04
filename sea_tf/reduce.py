"""The reduction φ: ℝⁿ → ℝᵈ, fitted on a sample of teacher embeddings and applied to every row.

docs/PROTOCOL.md §3.2–3.3. ``StandardScaler`` then PCA (scikit-learn: exact ``PCA`` or ``IncrementalPCA``
fitted chunk by chunk for samples that do not fit in memory) or UMAP (umap-learn), or ``none``
(targets are the raw teacher embeddings, the original 512-d "mse" mode).

Files::

    REDUCER_DIR/reducer.joblib   {"scaler", "model", "method", "d"}
    REDUCER_DIR/card.json        method, d, params, sample card, teacher card, hashes, quality
    TARGETS/<job id>/<teacher shard name>.h5   dataset ``target`` float32 [n, d], row i ↔ teacher row i;
                                 attributes source_sha256 (of the shard's embedding), reducer_sha256
    TARGETS/card.json            reducer card + teacher manifests; ``complete`` once every shard is done
"""
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
from sea_tf.shards import ShardSet

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
        """Read a reducer saved by :meth:`save` (and check it matches its card)."""
        reducer_dir = Path(reducer_dir)
        path = reducer_dir / "reducer.joblib"
        if not path.is_file():
            raise DataError(f"{path}: no reducer found; run `sea-tf reduce fit` first")
        try:
            state = joblib.load(path)
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
    out_dir = Path(out_dir)
    path = reducer.save(out_dir)
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
        card["quality"] = evaluate(shards, reducer, index, out_dir, seed=seed, **quality)
    cards.write_card(out_dir, card)
    return card


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
    with atomic.atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as fh:
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
