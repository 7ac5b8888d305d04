"""SONYC-UST v2 loader (docs/PROTOCOL.md §4.3): multi-label 10-s sensor recordings, 8 coarse classes.

Layout (as distributed, and as ``sea-tf data make-demo`` writes ``ust/``)::

    ROOT/annotations.csv            one row per (file, annotator): split, sensor_id, audio_filename,
                                    annotator_id, borough, block, latitude, longitude, year, week,
                                    day, hour, then <coarse>-<fine>_<name>_presence (fine tags,
                                    including the -X "uncertain" ones), <coarse>_<name>_presence,
                                    and _proximity columns; column order is free, extra columns
                                    are ignored
    ROOT/dcase-ust-taxonomy.yaml    coarse: {1: engine, ...}; fine: {1: {1: small-sounding-engine,
                                    ..., X: engine-of-uncertain-size}, ...}
    ROOT/audio/<audio_filename>     (or audio/train/, audio/validate/, ... sub-folders)

Targets (coarse mode): a file's ``annotator_id == 0`` row (verified by the SONYC team) when it
has one, otherwise a class is positive when the sum of the other annotators' presence values is
> 0; ``-1`` (no answer) counts as absent. Splits come from the ``split`` column.

Example
-------
>>> ds = UST("demo_out/data/ust")                       # doctest: +SKIP
>>> ds.classes[:2], len(ds.clips_in_split("validate"))  # doctest: +SKIP
(['engine', 'machinery-impact'], 18)
"""
from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sea_tf.errors import DataError

ANNOTATIONS = "annotations.csv"
TAXONOMY = "dcase-ust-taxonomy.yaml"
REQUIRED_COLUMNS = ["split", "sensor_id", "audio_filename", "annotator_id", "borough", "block", "latitude",
                    "longitude", "year", "week", "day", "hour"]
SPLITS = ("train", "validate", "test")
PRESENCE_VALUES = {"1": 1, "0": 0, "-1": -1}
_FINE_COLUMN = re.compile(r"^(\d+)-([0-9]+|X)_(.+)_presence$")
_COARSE_COLUMN = re.compile(r"^(\d+)_(.+)_presence$")


@dataclasses.dataclass(frozen=True)
class USTClip:
    """One 10-s recording with its file-level coarse targets.

    Attributes
    ----------
    path : Path
        The audio file (None when no file of that name is under ``audio/``).
    audio_filename : str
    split : str
        ``train``, ``validate`` or ``test``.
    sensor_id : str
    targets : tuple of int
        0/1 per coarse class (taxonomy order), by the rule in the module docstring.
    verified : tuple of int or None
        The annotator-0 row's 0/1 coarse values, None when the file has no such row.
    n_annotators : int
        Rows of the file other than annotator 0.
    line : int
        First line of the file in ``annotations.csv``.
    """
    path: Path | None
    audio_filename: str
    split: str
    sensor_id: str
    targets: tuple[int, ...]
    verified: tuple[int, ...] | None
    n_annotators: int
    line: int


def read_taxonomy(path: Path) -> tuple[dict[int, str], dict[int, dict[str, str]]]:
    """Coarse and fine tags of ``dcase-ust-taxonomy.yaml``.

    Returns
    -------
    coarse : dict
        ``{coarse id (int): name}`` in id order.
    fine : dict
        ``{coarse id: {fine key (str, "1".. or "X"): name}}``.

    Raises
    ------
    DataError
        Missing or unreadable file, no ``coarse`` section, a non-integer coarse id, or a ``fine``
        section naming a coarse id the ``coarse`` section does not have.
    """
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: taxonomy not found; a SONYC-UST root holds dcase-ust-taxonomy.yaml "
                        "beside annotations.csv") from None
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the taxonomy ({exc}); re-download it") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("coarse"), dict) or not doc["coarse"]:
        raise DataError(f"{path}: no 'coarse: {{1: engine, ...}}' section; re-download the taxonomy")
    coarse: dict[int, str] = {}
    for key, name in doc["coarse"].items():
        if not isinstance(key, int) or isinstance(key, bool) or not isinstance(name, str):
            raise DataError(f"{path}: coarse key {key!r} must be an integer with a name (e.g. 1: engine)")
        coarse[key] = name
    fine: dict[int, dict[str, str]] = {k: {} for k in coarse}
    for key, tags in (doc.get("fine") or {}).items():
        if key not in coarse:
            raise DataError(f"{path}: fine section names coarse key {key!r}, which the coarse section does not "
                            f"have ({sorted(coarse)}); fix the taxonomy")
        if not isinstance(tags, dict):
            raise DataError(f"{path}: fine[{key}] must map fine keys to names (1: small-sounding-engine)")
        fine[key] = {str(k): str(v) for k, v in tags.items()}
    return dict(sorted(coarse.items())), fine


class UST:
    """A SONYC-UST v2 root (or the demo's ``ust/``).

    Parameters
    ----------
    root : str or Path
    strict : bool
        True: a malformed row raises :class:`DataError` naming the file and line. False (``sea-tf
        data check``): the row is skipped and listed in :attr:`row_problems`.

    Attributes
    ----------
    root, annotations_path, taxonomy_path : Path
    kind : str
        ``"ust"``.
    coarse : dict
        ``{coarse id: name}``.
    fine : dict
        ``{coarse id: {fine key: name}}``.
    classes : list of str
        Coarse names in id order (the columns of every target array).
    coarse_columns : list of str
        ``<id>_<name>`` (the DCASE submission's coarse columns), class order.
    fine_columns : list of str
        ``<id>-<key>_<name>``, taxonomy order.
    clips : list of USTClip
        One per audio file, in first-appearance order.
    missing : list of USTClip
        Clips whose audio is not under ``audio/`` (listed; the rest goes on).
    row_problems : list of str
        ``"annotations.csv line N: ..."`` for skipped rows (``strict=False`` only).

    Raises
    ------
    DataError
        Missing annotations or taxonomy, a missing required column, a presence column whose
        coarse or fine key the taxonomy lacks, a coarse class without a presence column, and (when
        strict) a presence value other than 0/1/-1, a bad split or annotator id, or a file whose
        rows disagree on split or sensor.
    """
    kind = "ust"
    title = "SONYC-UST"

    def __init__(self, root: Path | str, *, strict: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root not found (or not a directory); pass the SONYC-UST root "
                            "(the folder holding annotations.csv, dcase-ust-taxonomy.yaml and audio/)")
        self.annotations_path = self.root / ANNOTATIONS
        self.taxonomy_path = self.root / TAXONOMY
        self.metadata_path = self.annotations_path
        self.strict = strict
        self.row_problems: list[str] = []
        self.coarse, self.fine = read_taxonomy(self.taxonomy_path)
        self.classes = list(self.coarse.values())
        self.coarse_columns = [f"{k}_{v}" for k, v in self.coarse.items()]
        self.fine_columns = [f"{k}-{f}_{name}" for k, tags in self.fine.items() for f, name in tags.items()]
        self.clips = self._load()
        self.missing = [c for c in self.clips if c.path is None]

    # ---------------------------------------------------------------------------------- reading
    def _header(self, header: list[str]) -> list[str]:
        for col in REQUIRED_COLUMNS:
            if col not in header:
                raise DataError(f"{self.annotations_path}: missing column {col!r}; a SONYC-UST annotations.csv "
                                f"has {', '.join(REQUIRED_COLUMNS)} and the presence columns")
        coarse_cols: dict[int, str] = {}
        for col in header:
            fine = _FINE_COLUMN.match(col)
            coarse = None if fine else _COARSE_COLUMN.match(col)
            if fine:
                cid, key, name = int(fine.group(1)), fine.group(2), fine.group(3)
                if self.fine.get(cid, {}).get(key) != name:
                    raise DataError(f"{self.annotations_path}: column {col!r} names fine tag {cid}-{key} "
                                    f"{name!r}, which {self.taxonomy_path.name} does not have; the annotations and "
                                    "the taxonomy must be from the same release")
            elif coarse:
                cid, name = int(coarse.group(1)), coarse.group(2)
                if self.coarse.get(cid) != name:
                    raise DataError(f"{self.annotations_path}: column {col!r} names coarse tag {cid} {name!r}, "
                                    f"which {self.taxonomy_path.name} does not have; the annotations and the "
                                    "taxonomy must be from the same release")
                coarse_cols[cid] = col
        absent = [f"{k}_{v}_presence" for k, v in self.coarse.items() if k not in coarse_cols]
        if absent:
            raise DataError(f"{self.annotations_path}: no presence column for coarse class(es) {', '.join(absent)}; "
                            "coarse-mode targets need one per class of the taxonomy")
        return [coarse_cols[k] for k in self.coarse]

    def _row_problem(self, message: str) -> None:
        if self.strict:
            raise DataError(message)
        self.row_problems.append(message)

    def _load(self) -> list[USTClip]:
        try:
            with open(self.annotations_path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip() for h in (reader.fieldnames or [])]
                reader.fieldnames = header
                presence_cols = self._header(header)
                rows = [(reader.line_num, row) for row in reader]
        except FileNotFoundError:
            raise DataError(f"{self.annotations_path}: annotations not found; pass the SONYC-UST root, or "
                            "generate the demo set with `sea-tf data make-demo --out DIR` (it writes DIR/ust)") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataError(f"{self.annotations_path}: cannot read the annotations ({exc}); re-download them") from exc
        files: dict[str, dict[str, Any]] = {}
        for line, row in rows:
            where = f"{self.annotations_path} line {line}"
            if None in row or any(row.get(c) is None for c in REQUIRED_COLUMNS + presence_cols):
                self._row_problem(f"{where}: wrong number of fields for the header; fix the row")
                continue
            name = row["audio_filename"].strip()
            split = row["split"].strip()
            if not name or "/" in name or "\\" in name:
                self._row_problem(f"{where}: audio_filename {name!r} must be a bare file name; fix the row")
                continue
            if split not in SPLITS:
                self._row_problem(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}; fix the row")
                continue
            try:
                annotator = int(float(row["annotator_id"]))
            except ValueError:
                self._row_problem(f"{where}: annotator_id {row['annotator_id']!r} is not an integer; fix the row")
                continue
            values: list[int] = []
            for col in presence_cols:
                cell = row[col].strip()
                cell = cell[:-2] if cell.endswith(".0") else cell   # pandas writes 1.0 for 1
                if cell not in PRESENCE_VALUES:
                    self._row_problem(f"{where}: {col} is {row[col]!r}; presence values must be 1, 0 or -1 "
                                      "(no answer); fix the row")
                    break
                values.append(PRESENCE_VALUES[cell])
            if len(values) < len(presence_cols):   # a cell was refused
                continue
            entry = files.setdefault(name, {"split": split, "sensor": row["sensor_id"].strip(), "line": line,
                                            "crowd": np.zeros(len(values), int), "verified": None, "n": 0})
            if entry["split"] != split or entry["sensor"] != row["sensor_id"].strip():
                self._row_problem(f"{where}: {name} is in split {split!r} / sensor {row['sensor_id']!r} here but "
                                  f"{entry['split']!r} / {entry['sensor']!r} on line {entry['line']}; every row "
                                  "of one file must agree")
                continue
            present = np.maximum(np.asarray(values), 0)   # -1 (no answer) counts as absent
            if annotator == 0:
                entry["verified"] = tuple(int(v) for v in present)
            else:
                entry["crowd"] += present
                entry["n"] += 1
        audio = self._audio_index()
        clips: list[USTClip] = []
        for name, e in files.items():
            targets = e["verified"] if e["verified"] is not None else tuple(int(v > 0) for v in e["crowd"])
            clips.append(USTClip(path=self._find(audio, name, e["split"]), audio_filename=name, split=e["split"],
                                 sensor_id=e["sensor"], targets=tuple(targets), verified=e["verified"],
                                 n_annotators=e["n"], line=e["line"]))
        if not clips:
            raise DataError(f"{self.annotations_path}: the annotations list no usable rows; check that this is the "
                            "right root")
        return clips

    def _audio_index(self) -> dict[str, list[Path]]:
        # The release unpacks into audio/ or into audio/<split>/ (or audio-eval/); index once by name.
        index: dict[str, list[Path]] = {}
        for base in (self.root / "audio", self.root / "audio-eval"):
            if base.is_dir():
                for p in base.rglob("*"):
                    if p.is_file():
                        index.setdefault(p.name, []).append(p)
        return index

    @staticmethod
    def _find(index: dict[str, list[Path]], name: str, split: str) -> Path | None:
        candidates = index.get(name) or []
        for p in candidates:
            if p.parent.name == split:
                return p
        return candidates[0] if candidates else None

    # --------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.clips)

    def __repr__(self) -> str:
        return f"UST({str(self.root)!r}: {len(self.clips)} files, splits {self.split_counts()})"

    def clips_in_split(self, split: str) -> list[USTClip]:
        """The clips of ``split`` (``train``, ``validate``, ``test``) whose audio exists."""
        if split not in SPLITS:
            raise DataError(f"{self.root}: unknown split {split!r}; SONYC-UST splits are {', '.join(SPLITS)}")
        return [c for c in self.clips if c.split == split and c.path is not None]

    def targets(self, clips: list[USTClip], *, verified_only: bool = False) -> np.ndarray:
        """Coarse targets ``int [n_clips, n_classes]``; ``verified_only``: the annotator-0 rows.

        Raises
        ------
        DataError
            ``verified_only`` and a clip has no annotator-0 row.
        """
        if verified_only:
            lacking = [c.audio_filename for c in clips if c.verified is None]
            if lacking:
                raise DataError(f"{self.annotations_path}: {len(lacking)} file(s) have no annotator_id 0 "
                                f"(verified) row, e.g. {lacking[0]}; evaluation needs the verified ground truth")
            return np.array([c.verified for c in clips], dtype=int).reshape(len(clips), len(self.classes))
        return np.array([c.targets for c in clips], dtype=int).reshape(len(clips), len(self.classes))

    def split_counts(self) -> dict[str, int]:
        """``{split: number of files}`` (all listed files, with or without audio)."""
        return {s: sum(c.split == s for c in self.clips) for s in SPLITS}

    def positives(self) -> dict:
        """``{split: {class: files with a positive target}}``; validate/test also count verified rows."""
        out = {}
        for split in SPLITS:
            clips = [c for c in self.clips if c.split == split]
            if clips:
                y = self.targets(clips)
                out[split] = {c: int(y[:, i].sum()) for i, c in enumerate(self.classes)}
        return out

    def check_audio(self, *, progress: bool = False) -> list[tuple[USTClip, str]]:
        """``(clip, reason)`` for every file that is missing or unreadable."""
        import soundfile as sf
        from tqdm import tqdm

        problems = []
        for clip in tqdm(self.clips, desc="checking ust audio", unit="file", disable=not progress):
            if clip.path is None:
                problems.append((clip, "missing"))
                continue
            try:
                info = sf.info(str(clip.path))
            except (RuntimeError, OSError) as exc:
                problems.append((clip, f"unreadable: {str(exc).splitlines()[0]}"))
                continue
            if info.frames == 0:
                problems.append((clip, "empty"))
        return problems

    def summary(self) -> dict[str, Any]:
        """JSON-able overview: files per split, sensors per split, positives per split and class."""
        sensors = {s: sorted({c.sensor_id for c in self.clips if c.split == s}) for s in SPLITS}
        return {"kind": self.kind, "root": str(self.root), "n_clips": len(self.clips),
                "n_classes": len(self.classes), "classes": self.classes, "clips_per_split": self.split_counts(),
                "sensors_per_split": {s: len(v) for s, v in sensors.items() if v},
                "verified_per_split": {s: sum(c.split == s and c.verified is not None for c in self.clips)
                                       for s in SPLITS},
                "positives": self.positives(), "missing_audio": [c.audio_filename for c in self.missing],
                "row_problems": list(self.row_problems)}

    def empty_classes(self) -> list[str]:
        """``"<split>: <class>"`` for each class with no positive file in a split that has files."""
        return [f"{split}: {c}" for split, counts in self.positives().items() for c, n in counts.items() if n == 0]
