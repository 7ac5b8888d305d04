"""Sample teacher shards: choose ``m`` rows and write them as ``OUT/sample.npz`` + ``OUT/card.json``.

``sea-tf sample`` runs :func:`sample` (the stage's entry point: the resolved config), which runs
:func:`sample_shards`; the reduce stage reads the sample back with :func:`load_sample`. Contiguous groupings choose here (:func:`~sea_tf.sampling.choose.select` over
:func:`~sea_tf.sampling.groups.group_bounds`); the sensor groupings hand over to
:func:`~sea_tf.sampling.streams.sample_streams`.
"""
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sea_tf import cards
from sea_tf.atomic import save_npz
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, DataError, ReduceError
from sea_tf.sampling.choose import _column, select
from sea_tf.sampling.groups import _CONTIGUOUS, GROUP_BY, group_bounds
from sea_tf.sampling.kdpp import check_dpp_options, mcmc_card
from sea_tf.sampling.quality import check_quality_options, dba_slot_quality, quality_card
from sea_tf.sampling.streams import ShardDirs, sample_streams
from sea_tf.sensors import SensorManifest
from sea_tf.shards import ShardSet, canonical_sha256


def sample(cfg: Config) -> tuple[npt.NDArray[np.int64], dict]:
    """``sea-tf sample``: choose ``cfg["m"]`` rows of the teacher shards ``cfg["shards"]`` (:func:`sample_shards`).

    Parameters
    ----------
    cfg : dict
        The resolved ``sampling`` config (``configs/sampling/defaults.yaml``;
        ``sea_tf.config.load("sampling", shards=[...], out=...)``).

    Returns
    -------
    index : np.ndarray [shape=(m,), dtype=int64]
        Sorted global row numbers (also in ``OUT/sample.npz``).
    card : dict
        ``OUT/card.json``; the resolved config is written as ``OUT/sample.config.yaml``.

    Raises
    ------
    ConfigError
        No teacher shards given, or a bad setting.
    """
    if not cfg["shards"]:
        raise ConfigError("no teacher shards given; pass --shards DIR (output of `sea-tf teacher-embed`)")
    out = Path(cfg["out"])
    index, card = sample_shards(cfg["shards"], out, cfg["m"], strategy=cfg["strategy"], seed=cfg["seed"],
                                group_by=cfg["group_by"], group_rows=cfg["group_rows"],
                                dpp_solver=cfg["dpp_solver"], dpp_kernel=cfg["dpp_kernel"], ridge=cfg["ridge"],
                                mcmc_iterations=cfg["mcmc_iterations"], mcmc_start_seed=cfg["mcmc_start_seed"],
                                max_kdpp_mb=cfg["max_kdpp_mb"], quality=cfg["quality"], timezone=cfg["timezone"],
                                progress=cfg["progress"], sensor_manifest=cfg["sensor_manifest"],
                                allow_partial=cfg["allow_partial"])
    write_resolved(cfg, out, "sample")
    return index, card


def sample_shards(shard_dirs: ShardDirs, out_dir: Path | str, m: int, *, strategy: str, seed: int, group_by: str,
                  group_rows: int, dpp_solver: str, dpp_kernel: str, ridge: float, mcmc_iterations: int,
                  mcmc_start_seed: int | None, max_kdpp_mb: float, quality: str, timezone: str, progress: bool,
                  sensor_manifest: Path | str | SensorManifest | None = None,
                  allow_partial: bool) -> tuple[npt.NDArray[np.int64], dict]:
    """Sample ``m`` rows of teacher shards and write ``OUT/sample.npz`` (``index``) + ``OUT/card.json``.

    ``group_by="sensor-<timeframe>"`` hands over to :func:`~sea_tf.sampling.streams.sample_streams`
    (then ``group_rows`` is unused and fewer than ``m`` rows may be picked).

    Parameters
    ----------
    shard_dirs : str, Path or list
        Teacher-shard directories (``sea-tf teacher-embed`` outputs), read as one table.
    out_dir : str or Path
    m : int
        Number of rows to pick.
    strategy, seed, group_by, group_rows, dpp_solver, dpp_kernel, ridge, mcmc_iterations, mcmc_start_seed, max_kdpp_mb
        See :func:`~sea_tf.sampling.choose.select` and :func:`~sea_tf.sampling.groups.group_bounds`.
    quality : {"rms-group", "dba-slot"}
        The q of ``loudness`` and ``dpp-quality`` (:mod:`sea_tf.sampling.quality`); ``dba-slot`` needs
        the rows' sensors (the shards' columns or ``sensor_manifest``) and shards that hold ``dBA``.
    timezone : str
        IANA name of the sensors' local time: ``dba-slot``'s 2-hour slots and the sensor streams' days.
    progress : bool
        Show a tqdm bar over groups (DPP strategies).
    sensor_manifest : str, Path or dict, optional
        For the sensor groupings: a sensor manifest CSV (or its parsed dict) to use instead of the shards' own
        ``sensor_id`` / ``recording_time`` columns.
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    index : np.ndarray [shape=(m,), dtype=int64]
        Sorted global row numbers.
    card : dict
    """
    if group_by not in GROUP_BY:
        raise ConfigError(f"group_by must be one of {', '.join(GROUP_BY)}; got {group_by!r}")
    check_quality_options(quality=quality, timezone=timezone)
    if group_by not in _CONTIGUOUS:
        return sample_streams(shard_dirs, out_dir, m, sensor_manifest, timeframe=group_by.removeprefix("sensor-"),
                              strategy=strategy, seed=seed, dpp_solver=dpp_solver, dpp_kernel=dpp_kernel, ridge=ridge,
                              mcmc_iterations=mcmc_iterations, mcmc_start_seed=mcmc_start_seed,
                              max_kdpp_mb=max_kdpp_mb, quality=quality, timezone=timezone, progress=progress,
                              allow_partial=allow_partial)
    check_dpp_options(solver=dpp_solver, kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                      max_kdpp_mb=max_kdpp_mb)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    if m > shards.n_rows:
        raise ReduceError(f"cannot pick {m} samples from {shards.n_rows} teacher rows in "
                          f"{', '.join(map(str, shards.dirs))}; ask for at most {shards.n_rows}")
    sources = _column(shards, "source") if group_by == "source" else None
    bounds = group_bounds(shards.n_rows, sources, group_by=group_by, group_rows=group_rows)
    ranked = strategy in ("loudness", "dpp-quality")
    relevance = dba_slot_quality(shards, sensor_manifest, timezone=timezone) if ranked and quality == "dba-slot" \
        else None
    loud = _column(shards, "loudness_db") if ranked and relevance is None else None
    bar = tqdm(total=len(bounds) - 1, desc=f"sample {strategy}", unit="group",
               disable=not progress or strategy not in ("dpp", "dpp-quality"))
    index = select(shards.n_rows, m, strategy=strategy, seed=seed, bounds=bounds, loudness_db=loud,
                   relevance=relevance,
                   read_embeddings=lambda a, b: shards.read("embedding", np.arange(a, b)),
                   dpp_solver=dpp_solver, dpp_kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                   mcmc_start_seed=mcmc_start_seed, max_kdpp_mb=max_kdpp_mb, progress=bar.update)
    bar.close()
    card = {"kind": "sample", "strategy": strategy, "m": int(m), "seed": int(seed), "group_by": group_by,
            "group_rows": int(group_rows), "n_groups": int(len(bounds) - 1), "dpp_solver": dpp_solver,
            "dpp_kernel": dpp_kernel, "ridge": float(ridge), **mcmc_card(dpp_solver, mcmc_iterations, mcmc_start_seed),
            **quality_card(quality=quality, timezone=timezone),
            "teacher_shards": shards.describe(),
            "teacher_card_sha256": shards.teacher_card_sha256,
            "index_sha256": canonical_sha256(index.tolist())}
    out_dir = Path(out_dir)
    save_npz(out_dir / "sample.npz", index=index)
    cards.write_card(out_dir, card)
    return index, card


def load_sample(sample_dir: Path | str) -> tuple[npt.NDArray[np.int64], dict]:
    """Read a sample written by :func:`sample_shards`: ``(index int64 [m], card dict)``."""
    sample_dir = Path(sample_dir)
    path = sample_dir / "sample.npz"
    if not path.is_file():
        raise DataError(f"{path}: no sample found; run `sea-tf sample` first")
    with np.load(path) as data:
        index = data["index"].astype(np.int64)
    return index, cards.read_card(sample_dir)
