"""Which model file an artifact comes from, what it is called, and when an existing one may be replaced.

Identity contract (docs/ARCHITECTURE.md, "Exported artifacts"): every sidecar records
``"source": {"path", "name", "sha256"}`` — the model file the ``.tflite`` was converted from
(sha256 of its bytes; ``null`` for a preset built in memory) — and every report row carries the
``.tflite``'s ``sha256`` and that ``source_sha256``. Later stages (classify, device, report) join
results of one model by these hashes, so two students of one preset never merge into one row.

Names come from the model *file*: ``runs/a/student.keras`` exports as ``student.<mode>.tflite``
(``--name`` overrides). A name already in the output folder is replaced only when its sidecar
records the same source hash; anything else is an :class:`ExportError` unless ``overwrite``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sea_tf import cards
from sea_tf.errors import ExportError

from export.metadata import sidecar_path

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def model_file(spec: Any) -> Path | None:
    """The file behind a model spec: an existing path, a catalogue name's cached file, else ``None``.

    Presets and in-memory :class:`~sea_tf.models.SeaModel` objects have no file.
    """
    if not isinstance(spec, (str, Path)):
        return None
    path = Path(spec).expanduser()
    if path.is_file():
        return path.resolve()
    from sea_tf.models.resolve import is_catalogue_spec, resolve_catalogue

    if is_catalogue_spec(str(spec)):
        try:
            return Path(resolve_catalogue(str(spec))).resolve()
        except Exception:  # noqa: BLE001 - load_model reports a missing catalogue file with its own message
            return None
    return None


def source_of(spec: Any, card_name: str) -> dict[str, Any]:
    """``{"path", "name", "sha256"}`` of the model file ``spec`` names (path and sha256 ``None`` without a file).

    Parameters
    ----------
    spec : str, Path or SeaModel
        What the user named.
    card_name : str
        The model card's ``name``.
    """
    path = model_file(spec)
    return {"path": str(path) if path else None, "name": str(card_name),
            "sha256": cards.sha256_file(path) if path else None}


def default_name(spec: Any, card_name: str, *, override: str | None = None) -> str:
    """Artifact base name: ``override``, else the stem of a model file the user named, else the card's name.

    ``runs/a/student.keras`` → ``student``; ``student-qat.h5`` → ``student-qat``; a preset or a
    catalogue name (``edgel3/sea-64``) → its card name.
    """
    if override:
        return str(override)
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix in MODEL_SUFFIXES:
            return path.stem
    return str(card_name)


def recorded_source(tflite_path: Path) -> dict[str, Any] | None:
    """The ``source`` a sidecar records (``None`` when there is no readable sidecar or no source)."""
    try:
        meta = json.loads(sidecar_path(tflite_path).read_text())
    except (OSError, ValueError):
        return None
    source = meta.get("source") if isinstance(meta, dict) else None
    return source if isinstance(source, dict) else None


def _same(recorded: dict[str, Any] | None, source: dict[str, Any]) -> bool:
    if recorded is None:
        return False
    if source["sha256"] is not None:
        return recorded.get("sha256") == source["sha256"]
    # No file (a preset built in memory): the same only when neither has a file and the names agree.
    return recorded.get("sha256") is None and recorded.get("name") == source["name"]


def _describe(source: dict[str, Any] | None) -> str:
    if source is None:
        return "a model it does not record (no source in its sidecar)"
    where = source.get("path") or f"{source.get('name')} (in memory)"
    sha = source.get("sha256")
    return f"{where} (sha256 {sha[:12]})" if sha else where


def check_targets(out_dir: Path | str, planned: Iterable[tuple[str, dict[str, Any]]], *,
                  overwrite: bool) -> None:
    """Refuse, before anything is written, to replace an artifact converted from another model.

    Parameters
    ----------
    out_dir : str or Path
    planned : list of (str, dict)
        ``(stem, source)`` of every file the run will write (``<stem>.tflite``).
    overwrite : bool
        Replace such files anyway.

    Raises
    ------
    ExportError
        Two planned files share a stem, or ``<stem>.tflite`` / its sidecar exists and records another
        source (or none) and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    seen: dict[str, dict[str, Any]] = {}
    for stem, source in planned:
        if stem in seen and not _same(seen[stem], source):
            raise ExportError(f"{stem}.tflite would be written twice in one run, from {_describe(seen[stem])} and "
                              f"{_describe(source)}; pass --name so the two get different names")
        seen[stem] = source
        path = out_dir / f"{stem}.tflite"
        if overwrite or not (path.exists() or sidecar_path(path).exists()):
            continue
        recorded = recorded_source(path)
        if not _same(recorded, source):
            raise ExportError(f"{path}: already exported from {_describe(recorded)}, not from {_describe(source)}; "
                              "nothing written. Pass --name NAME (or --out DIR) to keep both, or --overwrite to "
                              "replace it")
