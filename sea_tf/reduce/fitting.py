"""``sea-tf reduce fit``: fit φ on a sample of teacher rows and write the reducer folder as one unit.

:func:`fit` is the command's entry point (the resolved ``reduce/fit`` config); :func:`fit_sample`
does the same from explicit arguments.

Files (docs/PROTOCOL.md §3.2)::

    REDUCER_DIR/reducer.joblib   {"scaler", "model", "method", "d"} (a pickle: loaded only when its sha256
                                 is the card's hashes.reducer_sha256; use reducers from trusted sources only)
    REDUCER_DIR/card.json        method, d, params, sample card, teacher card, hashes, quality
    REDUCER_DIR/quality.json|png held-out quality (:mod:`sea_tf.reduce.quality`)

A fit writes these into a fresh ``.REDUCER_DIR.staging-<pid>-*`` folder and swaps it into place as
one unit (:func:`_install`), so a killed fit leaves the old reducer whole, never a new model beside
an old card.
"""
import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sea_tf import atomic, cards
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, OutputError, ReduceError
from sea_tf.reduce.quality import evaluate
from sea_tf.reduce.reducer import Reducer, _check_finite, _need_shards, _reducer_options, check_dims, fit_reducer
from sea_tf.reduce.targets import _chunked_sha256
from sea_tf.sampling import load_sample
from sea_tf.shards import ShardSet


class _SampleRows:
    """The sample's rows of the teacher embeddings, read ``[start, stop)`` at a time (a
    :class:`~sea_tf.reduce.reducer.ChunkReader`): out of core, one chunk of the sample in memory."""

    def __init__(self, shards: ShardSet, index: np.ndarray) -> None:
        self.shards, self.index, self.n_rows = shards, index, len(index)

    def __call__(self, start: int, stop: int, /) -> np.ndarray:
        return self.shards.read("embedding", self.index[start:stop])


def fit(cfg: Config) -> dict[str, Any]:
    """``sea-tf reduce fit``: fit φ on the sample ``cfg["sample"]`` of the teacher shards ``cfg["shards"]``.

    Parameters
    ----------
    cfg : dict
        The resolved ``reduce/fit`` config (the ``fit:`` section of ``configs/reduce/defaults.yaml``;
        ``sea_tf.config.load("reduce/fit", shards=[...], sample=..., out=...)``).

    Returns
    -------
    dict
        The reducer card (:func:`fit_sample`); the resolved config is written as
        ``OUT/reduce-fit.config.yaml``.

    Raises
    ------
    ConfigError
        No teacher shards or no sample given, or a bad setting.
    """
    _need_shards(cfg)
    if not cfg["sample"]:
        raise ConfigError("no sample given; pass --sample DIR (output of `sea-tf sample`)")
    quality = {"n_heldout": cfg["quality"]["n_heldout"], "k": cfg["quality"]["k"]} if cfg["quality"]["enabled"] else None
    out = Path(cfg["out"])
    card = fit_sample(cfg["shards"], cfg["sample"], out, method=cfg["method"], d=cfg["d"], seed=cfg["seed"],
                      quality=quality, progress=cfg["progress"], allow_partial=cfg["allow_partial"],
                      **_reducer_options(cfg))
    write_resolved(cfg, out, "reduce-fit")
    return card


def fit_sample(shard_dirs: Path | str | Sequence[Path | str], sample_dir: Path | str, out_dir: Path | str, *,
               method: str, d: int, pca_solver: str = "exact", umap_params: Mapping[str, Any] | None = None,
               seed: int, quality: Mapping[str, Any] | None = None, progress: bool,
               allow_partial: bool) -> dict[str, Any]:
    """Fit φ on a sample of teacher rows and save it with its card (``sea-tf reduce fit``, explicit arguments).

    Parameters
    ----------
    shard_dirs : str, Path or list
        Teacher shard directories the sample indexes.
    sample_dir : str or Path
        Output of ``sea-tf sample`` (``sample.npz`` + ``card.json``).
    out_dir : str or Path
        Reducer directory to write.
    method, d, pca_solver, umap_params, seed
        See :func:`~sea_tf.reduce.reducer.fit_reducer`.
    quality : dict, optional
        Settings for :func:`sea_tf.reduce.quality.evaluate` (``n_heldout``, ``k``); ``None`` skips it.
    progress : bool
        Accepted as :func:`~sea_tf.reduce.targets.apply_reducer` accepts it; a fit shows no progress bar.
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
        read = _SampleRows(shards, index)
        reducer = fit_reducer(read, method=method, d=d, pca_solver=pca_solver, umap_params=umap_params, seed=seed)
        data_sha = _chunked_sha256(read, len(index))
    else:
        x = shards.read("embedding", index)
        _check_finite(x, f"sample {sample_dir}")
        reducer = fit_reducer(x, method=method, d=d, pca_solver=pca_solver, umap_params=umap_params, seed=seed)
        data_sha = _chunked_sha256(lambda a, b: x[a:b], len(x))
    folder = Path(os.path.abspath(out_dir))  # its parent holds the stage, even for --out .
    with _staging(folder) as stage:
        card = _write_reducer(stage, out_dir, reducer, shards, index, sample_card, sample_dir, method=method, d=d,
                              pca_solver=pca_solver, umap_params=umap_params, seed=seed, data_sha=data_sha,
                              quality=quality)
        _install(stage, folder)
    return card


def _write_reducer(stage: Path, out_dir: Path, reducer: Reducer, shards: ShardSet, index: np.ndarray,
                   sample_card: dict[str, Any], sample_dir: Path | str, *, method: str, d: int, pca_solver: str,
                   umap_params: Mapping[str, Any] | None, seed: int, data_sha: str,
                   quality: Mapping[str, Any] | None) -> dict[str, Any]:
    """Write model, quality report and card into ``stage`` (paths in them name ``out_dir``); returns the card."""
    path = reducer.save(stage)
    params = {"pca_solver": pca_solver} if method == "pca" else dict(umap_params or {}) if method == "umap" else {}
    card: dict[str, Any] = {
        "kind": "reducer", "method": method, "d": d, "params": params, "seed": int(seed),
        "embedding_size": shards.embedding_size,
        "sample": {**sample_card, "path": str(sample_dir)},
        "teacher_card": shards.teacher_card, "teacher_card_sha256": shards.teacher_card_sha256,
        "teacher_shards": shards.describe(),
        "hashes": {"sample_index_sha256": sample_card.get("index_sha256"),
                   "sample_data_sha256": data_sha, "reducer_sha256": cards.sha256_file(path)}}
    if method == "pca" and reducer.model is not None:
        card["explained_variance_ratio"] = [float(v) for v in reducer.model.explained_variance_ratio_]
    if quality is not None:
        card["quality"] = evaluate(shards, reducer, index, stage, seed=seed, **quality)
        if card["quality"].get("png"):  # written in the stage; named where it will be
            card["quality"]["png"] = str(out_dir / Path(card["quality"]["png"]).name)
            atomic.write_json(stage / "quality.json", card["quality"])
    cards.write_card(stage, card)
    return card


#: What ``sea-tf reduce fit`` writes in a reducer folder (besides ``<command>.config.yaml``).
REDUCER_FILES = ("reducer.joblib", "card.json", "quality.json", "quality.png")
_RENAME_EXCHANGE = 2  # linux/fs.h: renameat2 swaps the two names atomically


def _check_replaceable(out_dir: Path) -> None:
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
def _staging(out_dir: Path) -> Iterator[Path]:
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


def _sweep(out_dir: Path) -> None:
    """Remove the stages (and put back the folder) that writers which died left beside ``out_dir``."""
    for prefix in ("staging", "old"):
        for stale in out_dir.parent.glob(f".{out_dir.name}.{prefix}-*"):
            pid = stale.name[len(f".{out_dir.name}.{prefix}-"):].split("-")[0]
            if pid.isdigit() and atomic.pid_alive(int(pid)):
                continue
            if prefix == "old" and not out_dir.exists():
                os.rename(stale, out_dir)  # killed between the fallback's two renames: the old one is whole
            else:
                shutil.rmtree(stale, ignore_errors=True)


def _install(stage: Path, out_dir: Path) -> None:
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


def _exchange(a: Path, b: Path) -> bool:
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
