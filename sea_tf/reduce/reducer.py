"""φ itself: a fitted scaler + model that maps teacher embeddings [n, D] to targets [n, d].

docs/PROTOCOL.md §3.2. ``StandardScaler`` then PCA (scikit-learn: exact ``PCA`` or ``IncrementalPCA``
fitted chunk by chunk for samples that do not fit in memory) or UMAP (umap-learn), or ``none``
(targets are the raw teacher embeddings, the original 512-d "mse" mode).

``reducer.joblib`` holds ``{"scaler", "model", "method", "d"}``; it is a pickle, so
:meth:`Reducer.load` reads it only when its sha256 is the one its card records.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import joblib
import numpy as np
import numpy.typing as npt
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler

from sea_tf import atomic, cards
from sea_tf.errors import ConfigError, DataError, ReduceError

if TYPE_CHECKING:
    import umap

METHODS = ("pca", "umap", "none")
PCA_SOLVERS = ("exact", "incremental")


class ChunkReader(Protocol):
    """Rows ``[start, stop)`` of a fitting sample too large for memory, read on demand; ``n_rows`` in all."""

    n_rows: int

    def __call__(self, start: int, stop: int, /) -> np.ndarray: ...


class Projection:
    """An affine map ``x ↦ x @ weight + bias`` in float32: a PCA reducer with its scaler folded in.

    Attributes
    ----------
    weight : np.ndarray [shape=(D, d), dtype=float32]
    bias : np.ndarray [shape=(d,), dtype=float32]
    """

    def __init__(self, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]) -> None:
        self.weight, self.bias = weight, bias

    def __call__(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``x @ weight + bias`` for rows ``x`` [n, D] (float32); returns [n, d] float32."""
        out = np.matmul(x, self.weight)
        out += self.bias
        return out


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

    def __init__(self, method: str, d: int, *, scaler: StandardScaler | None = None,
                 model: PCA | IncrementalPCA | umap.UMAP | None = None) -> None:
        self.method, self.d, self.scaler, self.model = method, int(d), scaler, model

    def transform(self, embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
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
        projection = self.projection()
        if projection is not None:
            return projection(x)
        if self.scaler is None or self.model is None:  # only "none" is fitted without them
            raise ReduceError(f"this {self.method} reducer has no fitted scaler and model; re-run `sea-tf reduce fit`")
        x = self.scaler.transform(x)
        return np.asarray(self.model.transform(x), dtype=np.float32)

    def projection(self) -> Projection | None:
        """The scaler folded into the PCA: one affine map ``x @ weight + bias`` (None but for ``pca``).

        scikit-learn's ``pca.transform(scaler.transform(x))`` is ``((x - m) / s - μ) @ Cᵀ``, with
        ``m, s`` the scaler's mean and scale, ``μ`` the PCA's mean and ``C`` its components (rows
        divided by ``sqrt(explained_variance_)`` when whitened), which equals ``x @ W + b`` with
        ``W = Cᵀ / s`` (row i divided by ``s_i``) and ``b = -(m / s + μ) @ Cᵀ``. Folded in float64,
        then rounded to float32: one float32 matrix product instead of two passes over the
        embeddings and a float64 product. Its rounding (``tests/test_reduce_fold.py``): per output,
        at most ``γ_{D+2} (|x| @ |W| + |b|)`` from the exact value, ``γ_n = n u / (1 - n u)``, u the
        float32 unit roundoff (Higham 2002, §3.1).
        """
        if self.method != "pca" or self.scaler is None or self.model is None:
            return None
        components = np.asarray(self.model.components_, dtype=np.float64)   # [d, D]
        if getattr(self.model, "whiten", False):   # as sklearn's _transform: variances clipped at eps
            scale = np.sqrt(np.asarray(self.model.explained_variance_, dtype=np.float64))
            components = components / np.maximum(scale, np.finfo(scale.dtype).eps)[:, None]
        n_features = components.shape[1]
        mean = np.zeros(n_features) if self.scaler.mean_ is None else np.asarray(self.scaler.mean_, np.float64)
        std = np.ones(n_features) if self.scaler.scale_ is None else np.asarray(self.scaler.scale_, np.float64)
        pca_mean = np.asarray(self.model.mean_, dtype=np.float64)
        weight = components.T / std[:, None]                    # [D, d]
        bias = -((mean / std + pca_mean) @ components.T)        # [d]
        return Projection(np.ascontiguousarray(weight, dtype=np.float32), bias.astype(np.float32))

    def save(self, out_dir: Path | str) -> Path:
        """Write ``out_dir/reducer.joblib``; returns its path."""
        path = Path(out_dir) / "reducer.joblib"
        with atomic.atomic_path(path, suffix=".joblib") as tmp:
            joblib.dump({"method": self.method, "d": self.d, "scaler": self.scaler, "model": self.model},
                        tmp, compress=3)
        return path

    @classmethod
    def load(cls, reducer_dir: Path | str) -> Reducer:
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
        return cls(state["method"], state["d"], scaler=state["scaler"], model=state["model"])


def check_dims(method: str, d: int, n_dims: int, n_samples: int) -> int:
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


def fit_reducer(sample: np.ndarray | ChunkReader, *, method: str, d: int, pca_solver: str = "exact",
                umap_params: Mapping[str, Any] | None = None, seed: int, chunk_rows: int = 65536) -> Reducer:
    """Fit φ on the sample.

    Parameters
    ----------
    sample : np.ndarray [shape=(m, D)] or ChunkReader
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
        return _fit_incremental(sample, d, chunk_rows, n_rows=sample.n_rows)
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
            return Reducer("pca", d, scaler=scaler, model=model)
        return _fit_incremental(lambda a, b: x[a:b], d, chunk_rows, n_rows=len(x))
    import umap  # imported lazily: it pulls in numba (and TensorFlow) and takes seconds
    params = dict(umap_params or {})
    model = umap.UMAP(n_components=d, n_neighbors=int(params.get("n_neighbors", 15)),
                      min_dist=float(params.get("min_dist", 0.3)), metric=params.get("metric", "euclidean"),
                      random_state=seed, n_jobs=1, low_memory=True)  # seeded UMAP is single-threaded anyway
    model.fit(xs)
    return Reducer("umap", d, scaler=scaler, model=model)


def _fit_incremental(read: Callable[[int, int], np.ndarray], d: int, chunk_rows: int, *, n_rows: int) -> Reducer:
    """Two passes over chunks: StandardScaler.partial_fit, then IncrementalPCA.partial_fit."""
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
    return Reducer("pca", d, scaler=scaler, model=model)


def _check_finite(x: np.ndarray, where: str) -> None:
    """Raise :class:`ReduceError` naming ``where`` and the first row of ``x`` that holds NaN or inf."""
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ReduceError(f"{where}: row {int(np.flatnonzero(bad)[0])} holds NaN or infinite values "
                          f"({int(bad.sum())} rows in all); re-extract those teacher embeddings")


# -- the stage config, as the entry points (fit, apply, compare) read it ------------------------

def _need_shards(cfg: Mapping[str, Any]) -> None:
    """A ConfigError when a ``reduce`` config names no teacher shards."""
    if not cfg["shards"]:
        raise ConfigError("no teacher shards given; pass --shards DIR (output of `sea-tf teacher-embed`)")


def _reducer_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The reducer options of a ``reduce/fit`` or ``reduce/compare`` config, as :func:`fit_reducer` takes them."""
    return {"pca_solver": cfg["pca"]["solver"], "umap_params": dict(cfg["umap"])}
