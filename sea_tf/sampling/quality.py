"""The quality score q of the loudness strategies (docs/PROTOCOL.md §3.1): which windows count as loud.

Two scores, the ``quality`` setting:

``rms-group``  the rank of the window's unweighted RMS level (``loudness_db``) within its sampling
               group (:func:`~sea_tf.sampling.groups.loudness_rank`): sea-tf's score before the
               published one was reproduced; kept so that earlier runs reproduce.
``dba-slot``   the published score: the rank of the window's A-weighted level (``dBA``,
               :func:`sea_tf.audio.weighting.window_dba`) among its sensor's windows of the same
               2-hour slot of local time (``timezone``), ``rank(dBA, method="min") / count`` ∈ (0, 1].
               A night window is compared with the other windows of its night, not with the day.

Both need the level per row; ``dba-slot`` also the row's sensor and time (the shards' ``sensor_id``
and ``recording_time`` columns, or a sensor manifest). Slots and day boundaries are wall-clock time
in ``timezone`` (an IANA name, :mod:`zoneinfo`), so they follow daylight saving time.
"""
from __future__ import annotations

from datetime import datetime, timezone as dt_timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from sea_tf.errors import ConfigError, DataError
from sea_tf.sampling.choose import _column
from sea_tf.sensors import SensorManifest, lookup_sensor, read_sensor_manifest
from sea_tf.shards import ShardSet

QUALITIES = ("rms-group", "dba-slot")
#: Hours in one ranking slot of ``dba-slot`` (the published 2-hour windows).
SLOT_HOURS = 2
# UTC offsets change on a quarter hour in every zone's modern rules: one offset per quarter hour.
_QUARTER_S = 900


def check_quality_options(*, quality: str, timezone: str) -> ZoneInfo:
    """Refuse an unknown ``quality`` or ``timezone`` in one line; the zone of ``timezone``.

    Raises
    ------
    ConfigError
    """
    if quality not in QUALITIES:
        raise ConfigError(f"quality must be one of {', '.join(QUALITIES)}; got {quality!r}")
    return zone(timezone)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``"UTC"``, ``"America/New_York"``); ConfigError when there is none."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timezone {name!r} is not an IANA time zone name (e.g. UTC, America/New_York): "
                          f"{exc}") from None


def utc_offsets(times: npt.ArrayLike, tz: ZoneInfo) -> npt.NDArray[np.float64]:
    """The UTC offset (s) of ``tz`` at each Unix time, daylight saving time included.

    One offset per distinct quarter hour (millions of windows, few quarter hours); a quarter hour
    whose ends differ holds a transition, and its rows are looked up one by one.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    seconds = np.asarray(times, dtype=np.float64)
    if not len(seconds):
        return np.empty(0, np.float64)
    quarters, inverse = np.unique(np.floor(seconds / _QUARTER_S), return_inverse=True)

    def offset(t: float) -> float:
        delta = datetime.fromtimestamp(t, tz=dt_timezone.utc).astimezone(tz).utcoffset()
        return 0.0 if delta is None else delta.total_seconds()

    start = np.array([offset(q * _QUARTER_S) for q in quarters])
    end = np.array([offset(q * _QUARTER_S + _QUARTER_S - 1) for q in quarters])
    out = start[inverse.reshape(-1)]
    mixed = np.flatnonzero((start != end)[inverse.reshape(-1)])
    out[mixed] = [offset(float(t)) for t in seconds[mixed]]
    return out


def local_slots(times: npt.ArrayLike, tz: ZoneInfo) -> npt.NDArray[np.int64]:
    """The 2-hour slot of local wall-clock time of each Unix time: ``local day * 12 + hour // 2``.

    Slots of one local day are consecutive; 01:30 on the day clocks go back is in slot 0 both times
    it occurs, and on the day they go forward slot 1 (02:00–04:00) lasts one hour.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=int64]
    """
    seconds = np.asarray(times, dtype=np.float64)
    local = np.floor(seconds + utc_offsets(seconds, tz)).astype(np.int64)
    day, second = np.divmod(local, 86400)
    return day * (24 // SLOT_HOURS) + second // (3600 * SLOT_HOURS)


def slot_rank(levels: npt.ArrayLike, sensors: npt.ArrayLike, slots: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``rank(level, method="min") / count`` within each (sensor, slot) ∈ (0, 1] (louder → higher).

    Parameters
    ----------
    levels : np.ndarray [shape=(n,)]
        dB (the A-weighted level for ``dba-slot``).
    sensors : np.ndarray [shape=(n,)]
        Sensor of each row (any hashable labels).
    slots : np.ndarray [shape=(n,), dtype=int64]
        :func:`local_slots`.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    level = np.asarray(levels, dtype=np.float64)
    _, sensor_code = np.unique(np.asarray(sensors).astype(str), return_inverse=True)
    _, group = np.unique(np.stack([sensor_code.reshape(-1), np.asarray(slots, dtype=np.int64)]), axis=1,
                         return_inverse=True)
    group = group.reshape(-1)
    order = np.lexsort((level, group))
    g, v = group[order], level[order]
    position = np.arange(len(order))
    new_group = np.r_[True, g[1:] != g[:-1]] if len(order) else np.empty(0, bool)
    new_value = new_group | np.r_[True, v[1:] != v[:-1]] if len(order) else new_group
    group_start = np.maximum.accumulate(np.where(new_group, position, 0))
    value_start = np.maximum.accumulate(np.where(new_value, position, 0))
    counts = np.bincount(g, minlength=int(g.max()) + 1 if len(g) else 0)[g]
    q = np.empty(len(order), np.float64)
    q[order] = (value_start - group_start + 1) / counts
    return q


def row_sensors(shards: ShardSet,
                manifest: Path | str | SensorManifest | None) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Sensor and recording start (Unix s) of every row: the shards' columns, or ``manifest`` by source file.

    Raises
    ------
    DataError
        No manifest and shards without sensor columns, or a manifest that misses a source file.
    """
    if manifest is None:
        if "sensor_id" not in shards.columns:
            raise DataError(f"{', '.join(map(str, shards.dirs))}: the shards carry no sensor ids; embed with "
                            "`sea-tf teacher-embed --sensor-manifest CSV`, or pass "
                            "`sea-tf sample --sensor-manifest CSV`")
        return _column(shards, "sensor_id").astype(object), _column(shards, "recording_time").astype(np.float64)
    table = manifest if isinstance(manifest, dict) else read_sensor_manifest(manifest)
    sources = _column(shards, "source")
    names, inverse = np.unique(sources.astype(str), return_inverse=True)
    found = [lookup_sensor(table, name) for name in names]
    missing = [str(n) for n, e in zip(names, found) if e is None]
    if missing:
        raise DataError(f"the sensor manifest does not name {len(missing)} source file(s) of the shards, e.g. "
                        f"{', '.join(missing[:5])}; list every embedded file with its sensor_id and timestamp")
    sensor = np.array([e[0] for e in found if e is not None], dtype=object)
    start = np.array([e[1].timestamp() for e in found if e is not None], dtype=np.float64)
    return sensor[inverse.reshape(-1)], start[inverse.reshape(-1)]


def dba_slot_quality(shards: ShardSet, manifest: Path | str | SensorManifest | None, *,
                     timezone: str) -> npt.NDArray[np.float64]:
    """The published q of every row (``quality: dba-slot``): dBA ranked per (sensor, 2-hour local slot).

    A window's time is its recording's start plus its own ``timestamp`` (window centre, s).

    Raises
    ------
    DataError
        Shards without the ``dBA`` column (embedded before it was stored) or without sensors.
    """
    tz = zone(timezone)
    if "dBA" not in shards.columns:
        raise DataError(f"{', '.join(map(str, shards.dirs))}: these shards carry no A-weighted level dBA "
                        "(embedded before sea-tf stored it); re-run `sea-tf teacher-embed`, or sample with "
                        "`quality: rms-group` (the unweighted loudness_db)")
    sensors, starts = row_sensors(shards, manifest)
    times = starts + _column(shards, "timestamp").astype(np.float64)
    return slot_rank(_column(shards, "dBA"), sensors, local_slots(times, tz))


def quality_card(*, quality: str, timezone: str) -> dict[str, str]:
    """The quality settings for a sample card: none for ``rms-group`` in UTC, whose cards stay as they were."""
    return {} if quality == "rms-group" and timezone == "UTC" else {"quality": quality, "timezone": timezone}
