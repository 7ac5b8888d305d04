"""Sensor streams (docs/PROTOCOL.md §3.1): the published "dpp / day" setting samples each sensor's
recordings per timeframe.

A sensor manifest (:mod:`sea_tf.sensors`) or the shards' own ``sensor_id`` / ``recording_time``
columns name each row's sensor and time; :func:`plan_streams` gives each (sensor, timeframe) stream
its share, and :func:`sample_streams` chooses within each stream (:func:`~sea_tf.sampling.choose.select`).
"""
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sea_tf import cards
from sea_tf.atomic import save_npz
from sea_tf.errors import ConfigError, DataError, ReduceError
from sea_tf.sampling.choose import _column, select
from sea_tf.sampling.kdpp import check_dpp_options, check_kdpp_memory, mcmc_card
from sea_tf.sampling.quality import check_quality_options, dba_slot_quality, quality_card, zone
from sea_tf.sensors import SensorManifest, lookup_sensor, read_sensor_manifest
from sea_tf.shards import ShardSet, canonical_sha256

STREAM_TIMEFRAMES = ("day", "week", "month", "all")
_TIMEFRAME_FORMAT = {"day": "%j", "week": "%V", "month": "%m"}   # day of year, ISO week, month

#: Teacher-shard directories, read as one table (:class:`~sea_tf.shards.ShardSet`).
ShardDirs = Path | str | Sequence[Path | str]

#: ``(sensor, timeframe, rows int64 [n], k)``: one stream of :func:`plan_streams` and its share.
Stream = tuple[str, str, npt.NDArray[np.int64], int]
#: ``(sensor, timeframe, n_rows, k)``: a timeframe with fewer rows than its share ``k``.
Dropped = tuple[str, str, int, int]


def timeframes(times: npt.ArrayLike, *, timeframe: str = "day", timezone: str) -> np.ndarray:
    """Timeframe label (``"064"`` day of year, ``"10"`` ISO week, ``"03"`` month, or ``"all"``) of Unix times.

    Timeframes follow the published code (day of year, ISO week, month of local time), in the named
    ``timezone`` rather than the machine's own zone, which made the original's grouping depend on
    where it ran (the sensors' zone, America/New_York, reproduces it; daylight saving time included).

    Parameters
    ----------
    times : np.ndarray [shape=(n,)]
        Unix seconds (UTC).
    timeframe : {"day", "week", "month", "all"}
    timezone : str
        IANA time zone name (``"UTC"``, ``"America/New_York"``).

    Returns
    -------
    np.ndarray of str [shape=(n,), dtype=object]
    """
    if timeframe not in STREAM_TIMEFRAMES:
        raise ConfigError(f"timeframe must be one of {', '.join(STREAM_TIMEFRAMES)}; got {timeframe!r}")
    tz = zone(timezone)
    seconds = np.asarray(times, dtype=np.float64)
    if timeframe == "all":
        return np.full(len(seconds), "all", dtype=object)
    # Rows of one file share its time: format each distinct time once (millions of rows, few files).
    unique, inverse = np.unique(seconds, return_inverse=True)
    labels = [datetime.fromtimestamp(t, tz=tz).strftime(_TIMEFRAME_FORMAT[timeframe]) for t in unique]
    return np.array(labels, dtype=object)[inverse.reshape(-1)] if len(seconds) else np.empty(0, dtype=object)


def stream_keys(sources: Iterable[Path | str], manifest: SensorManifest, *,
                timeframe: str = "day", timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """Sensor and timeframe (:func:`timeframes`) of every row, from its source file.

    Returns
    -------
    sensors, frames : np.ndarray [shape=(n_rows,)], str
    """
    if timeframe not in STREAM_TIMEFRAMES:
        raise ConfigError(f"timeframe must be one of {', '.join(STREAM_TIMEFRAMES)}; got {timeframe!r}")
    sensors: list[str] = []
    times: list[float] = []
    unknown: set[str] = set()
    for source in sources:
        entry = lookup_sensor(manifest, source)
        if entry is None:
            unknown.add(str(source))
            continue
        sensors.append(entry[0])
        times.append(entry[1].timestamp())
    frames = timeframes(np.array(times, dtype=np.float64), timeframe=timeframe, timezone=timezone)
    if unknown:
        shown = ", ".join(sorted(unknown)[:5])
        raise DataError(f"the sensor manifest does not name {len(unknown)} source file(s) of the shards, e.g. "
                        f"{shown}; list every embedded file with its sensor_id and timestamp")
    return np.array(sensors, dtype=object), np.array(frames, dtype=object)


def plan_streams(sensors: np.ndarray, frames: np.ndarray, m: int) -> tuple[list[Stream], list[Dropped]]:
    """The published per-sensor, per-timeframe allocation.

    Each of the S sensors gets ceil(m / S) picks, split evenly over its T timeframes: ceil(ceil(m / S) / T)
    per timeframe; a timeframe with fewer rows than that is dropped (as the original code did,
    so the total can fall short of m).

    Returns
    -------
    streams : list of (sensor, frame, rows int64 [n], k)
    dropped : list of (sensor, frame, n_rows, k)
    """
    streams: list[Stream] = []
    dropped: list[Dropped] = []
    unique_sensors = sorted(set(sensors.tolist()))
    per_sensor = -(-int(m) // max(1, len(unique_sensors)))
    for sensor in unique_sensors:
        mine = sensors == sensor
        sensor_frames = sorted(set(frames[mine].tolist()))
        k = -(-per_sensor // len(sensor_frames))
        for frame in sensor_frames:
            rows = np.flatnonzero(mine & (frames == frame)).astype(np.int64)
            (streams.append((sensor, frame, rows, k)) if len(rows) >= k else dropped.append((sensor, frame, len(rows), k)))
    return streams, dropped


def sample_streams(shard_dirs: ShardDirs, out_dir: Path | str, m: int, manifest: Path | str | SensorManifest | None,
                   *, timeframe: str = "day", strategy: str, seed: int, dpp_solver: str, dpp_kernel: str,
                   ridge: float, mcmc_iterations: int, mcmc_start_seed: int | None, max_kdpp_mb: float,
                   quality: str, timezone: str, progress: bool, allow_partial: bool) -> tuple[npt.NDArray[np.int64], dict]:
    """Like :func:`~sea_tf.sampling.select_shards.sample_shards`, with one group per (sensor, timeframe) stream (:func:`plan_streams`).

    Each stream is sampled on its own with :func:`~sea_tf.sampling.choose.select`, seeded by ``seed`` and the stream's
    sensor and timeframe (not its position in the list), with loudness ranked within the stream. With
    ``dpp_solver: mcmc`` each stream's chain starts from ``RandomState(mcmc_start_seed)`` re-seeded for
    every stream, as the published code did for every day stream (streams of one size start from the same
    rows); its swap proposals follow the stream's own seed.

    Parameters
    ----------
    manifest : str, Path, dict or None
        A sensor manifest CSV (:func:`~sea_tf.sensors.read_sensor_manifest`) or its parsed dict; None: the shards'
        own ``sensor_id`` and ``recording_time`` columns (``sea-tf teacher-embed --sensor-manifest``).
    timeframe : {"day", "week", "month", "all"}
        ``all``: one stream per sensor.
    quality, timezone : str
        :func:`~sea_tf.sampling.select_shards.sample_shards`'; days, weeks and months are those of ``timezone``,
        and ``dba-slot`` ranks each row within its sensor's 2-hour slot of the whole pool, not of its stream.

    Returns
    -------
    index : np.ndarray [shape=(n_picked,), dtype=int64]
        Sorted global row numbers (n_picked ≤ S·ceil(ceil(m/S)/T) per the allocation).
    card : dict
        :func:`~sea_tf.sampling.select_shards.sample_shards`' card with ``group_by: "sensor-<timeframe>"``, ``streams`` and ``dropped``.
    """
    check_dpp_options(solver=dpp_solver, kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                      max_kdpp_mb=max_kdpp_mb)
    check_quality_options(quality=quality, timezone=timezone)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    if manifest is None:
        if "sensor_id" not in shards.columns:
            raise DataError(f"{', '.join(map(str, shards.dirs))}: the shards carry no sensor ids; embed with "
                            "`sea-tf teacher-embed --sensor-manifest CSV`, or pass "
                            "`sea-tf sample --sensor-manifest CSV`")
        sensors = _column(shards, "sensor_id").astype(object)
        frames = timeframes(_column(shards, "recording_time"), timeframe=timeframe, timezone=timezone)
    else:
        table = manifest if isinstance(manifest, dict) else read_sensor_manifest(manifest)
        sensors, frames = stream_keys(_column(shards, "source"), table, timeframe=timeframe, timezone=timezone)
    streams, dropped = plan_streams(sensors, frames, m)
    if not streams:
        raise ReduceError(f"every (sensor, {timeframe}) stream has fewer rows than its share of {m} samples; ask "
                          "for fewer samples or a longer timeframe")
    if strategy in ("dpp", "dpp-quality"):  # every stream's k-DPP bound, before the first is solved
        dims = shards.read("embedding", streams[0][2][:1]).shape[1]
        check_kdpp_memory([(len(rows), k) for _, _, rows, k in streams], dims, solver=dpp_solver, max_mb=max_kdpp_mb)
    ranked = strategy in ("loudness", "dpp-quality")
    relevance = dba_slot_quality(shards, manifest, timezone=timezone) if ranked and quality == "dba-slot" else None
    loud = _column(shards, "loudness_db") if ranked and relevance is None else None
    picked = []
    for s, (sensor, frame, rows, k) in enumerate(tqdm(streams, desc=f"sample {strategy} per stream", unit="stream",
                                                      disable=not progress)):
        key = list(f"{sensor}/{frame}".encode())
        stream_seed = int(np.random.SeedSequence([int(seed), *key]).generate_state(1)[0])

        def read_rows(a: int, b: int, rows: npt.NDArray[np.int64] = rows) -> np.ndarray:
            return shards.read("embedding", rows[a:b])

        local = select(len(rows), k, strategy=strategy, seed=stream_seed, bounds=np.array([0, len(rows)]),
                       loudness_db=None if loud is None else loud[rows],
                       relevance=None if relevance is None else relevance[rows],
                       read_embeddings=read_rows,
                       dpp_solver=dpp_solver, dpp_kernel=dpp_kernel, ridge=ridge, mcmc_iterations=mcmc_iterations,
                       mcmc_start_seed=mcmc_start_seed, max_kdpp_mb=max_kdpp_mb)
        picked.append(rows[local])
    index = np.sort(np.concatenate(picked)).astype(np.int64)
    card = {"kind": "sample", "strategy": strategy, "m": int(m), "n_picked": int(len(index)), "seed": int(seed),
            "group_by": f"sensor-{timeframe}", "n_groups": len(streams), "dpp_solver": dpp_solver,
            "dpp_kernel": dpp_kernel, "ridge": float(ridge),
            **mcmc_card(dpp_solver, mcmc_iterations, mcmc_start_seed),
            **quality_card(quality=quality, timezone=timezone),
            "streams": [{"sensor": a, "timeframe": b, "rows": int(len(r)), "picked": int(k)} for a, b, r, k in streams],
            "dropped": [{"sensor": a, "timeframe": b, "rows": int(n), "needed": int(k)} for a, b, n, k in dropped],
            "sensors_from": "shards" if manifest is None else str(manifest) if isinstance(manifest, (str, Path))
            else "a parsed manifest",
            "teacher_shards": shards.describe(), "teacher_card_sha256": shards.teacher_card_sha256,
            "index_sha256": canonical_sha256(index.tolist())}
    out_dir = Path(out_dir)
    save_npz(out_dir / "sample.npz", index=index)
    cards.write_card(out_dir, card)
    return index, card
