"""The sensor manifest: which sensor recorded each source file, and when.

A file format, like :mod:`sea_tf.shards`, that two stages read: the teacher stores each file's sensor
and time in its shards (``sea-tf teacher --sensor-manifest``), and sampling groups rows into
per-sensor streams by it (docs/PROTOCOL.md §3.1). It lives here, below both, so that sampling never
imports the teacher.

A manifest is a CSV with the columns ``file, sensor_id, timestamp``; ``timestamp`` is Unix seconds or
ISO 8601 (a time without an offset is UTC).
"""
import csv
from datetime import datetime, timezone
from pathlib import Path

from sea_tf.errors import DataError

_MANIFEST_COLUMNS = ("file", "sensor_id", "timestamp")

#: ``(sensor_id, recording time)`` of one source file; the time is timezone-aware.
SensorEntry = tuple[str, datetime]
#: ``{file: entry}`` as :func:`read_sensor_manifest` returns it; None marks a base name that two files
#: with other values share (it names neither).
SensorManifest = dict[str, SensorEntry | None]


def read_sensor_manifest(path: Path | str) -> SensorManifest:
    """``{file: (sensor_id, datetime)}`` from a CSV with columns ``file``, ``sensor_id``, ``timestamp``.

    ``timestamp`` is Unix seconds or ISO 8601; a time without an offset is read as UTC. Each file is
    also reachable by its base name (:func:`lookup_sensor`), so a manifest of relative paths matches
    the shards' sources.

    Raises
    ------
    DataError
        Missing file, a missing or unknown column, an empty cell, a file listed twice with other
        values, or a timestamp that is neither form (naming the line).
    """
    path = Path(path)
    out: SensorManifest = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing = sorted(set(_MANIFEST_COLUMNS) - set(header))
            unknown = [name for name in header if name not in _MANIFEST_COLUMNS]
            if missing or unknown:
                what = "; ".join(part for part in (missing and f"missing column(s) {', '.join(missing)}",
                                                   unknown and f"unknown column(s) {', '.join(unknown)}") if part)
                raise DataError(f"{path} line 1: {what}; a sensor manifest has the columns file, sensor_id, "
                                "timestamp (Unix seconds or ISO 8601)")
            bases: SensorManifest = {}
            for row in reader:
                # csv gives a short row's missing cells None and keeps a long row's extra cells under the key None.
                if None in row or any(row[name] is None or not row[name].strip() for name in _MANIFEST_COLUMNS):
                    raise DataError(f"{path} line {reader.line_num}: expected 3 non-empty cells (file, sensor_id, "
                                    "timestamp); fix the row")
                text = row["timestamp"].strip()
                try:
                    when = datetime.fromtimestamp(float(text), tz=timezone.utc)
                except (ValueError, OverflowError, OSError):  # not a number, NaN, or out of datetime's range
                    try:
                        when = datetime.fromisoformat(text)
                    except ValueError:
                        raise DataError(f"{path} line {reader.line_num}: timestamp {text!r} is neither Unix "
                                        "seconds nor ISO 8601; fix the row") from None
                    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
                entry = (row["sensor_id"].strip(), when)
                name = row["file"].strip()
                if out.get(name, entry) != entry:
                    raise DataError(f"{path} line {reader.line_num}: {name} is listed again with another sensor or "
                                    "time; keep one row per file")
                out[name] = entry
                base = Path(name).name
                # A base name that two files with other values share names neither (lookup_sensor).
                bases[base] = entry if bases.get(base, entry) == entry else None
    except FileNotFoundError:
        raise DataError(f"{path}: sensor manifest not found; pass a CSV with columns file, sensor_id, "
                        "timestamp") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text CSV ({exc}); save the sensor manifest as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the sensor manifest ({exc})") from exc
    for base, base_entry in bases.items():
        out.setdefault(base, base_entry)
    return out


def lookup_sensor(manifest: SensorManifest, source: Path | str) -> SensorEntry | None:
    """``(sensor_id, datetime)`` of a source file: by its path, else by its base name; None if unnamed.

    A base name that two files of the manifest share matches neither (it would be a guess).
    """
    entry = manifest.get(str(source))
    return entry if entry is not None else manifest.get(Path(str(source)).name)
