"""The distillation table: teacher-shard audio windows paired row by row with reduced targets.

Everything here runs before any training and turns inconsistent inputs into :class:`TrainError`:
target shards of another length or computed from other teacher shards, a reducer that did not
make these targets, targets that do not re-compute from the teacher embeddings (misaligned rows),
and a train/validation split with an empty side. The split is by source file (dataset
``source``), never by window, so no recording contributes to both sides.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from sea_tf import atomic, cards
from sea_tf.errors import DataError, TrainError
from sea_tf.shards import ShardSet, canonical_sha256


@dataclass
class Pairs:
    """Opened, checked pairs.

    Attributes
    ----------
    shards : ShardSet
        With ``targets`` attached (key ``"target"`` readable).
    d : int
        Target dimension.
    frame_samples : int
        Audio samples per window (= the student sample rate × 1 s).
    targets_card, reducer_card : dict
    reducer_dir : Path or None
    """
    shards: ShardSet
    d: int
    frame_samples: int
    targets_card: dict
    reducer_card: dict
    reducer_dir: Path | None

    def reference(self) -> dict:
        """What the student card records about its targets (JSON-able)."""
        reducer = self.reducer_card
        return {"dir": None if self.reducer_dir is None else str(self.reducer_dir),
                "method": reducer.get("method"), "d": self.d,
                "reducer_sha256": self.targets_card.get("reducer_sha256"),
                "card_sha256": canonical_sha256(reducer),
                "targets_dir": str(self.shards.targets),
                "teacher": reducer.get("teacher_card", {}).get("name"),
                "teacher_card_sha256": self.shards.teacher_card_sha256}


def open_pairs(shard_dirs: Path | str | list[Path | str], targets_dir: Path | str, *,
               reducer_dir: Path | str | None = None, check_rows: int, seed: int,
               allow_partial: bool) -> Pairs:
    """Open teacher shards with their reduced targets and check that they belong together.

    Parameters
    ----------
    shard_dirs : str, Path or list
        ``sea-tf teacher-embed`` output directories.
    targets_dir : str or Path
        ``sea-tf reduce apply`` output directory.
    reducer_dir : str or Path, optional
        The reducer (``sea-tf reduce fit`` output); default: ``reducer_dir`` of the targets card.
    check_rows : int
        Rows per shard (first, last, then random) re-reduced from the teacher embeddings and compared
        with the stored targets (PCA / none reducers); 0 skips the check.
    seed : int
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    Pairs
    """
    if not shard_dirs:
        raise TrainError("no teacher shards given; set `shards` (or --shards) to `sea-tf teacher-embed` outputs")
    if not targets_dir:
        raise TrainError("no targets given; set `targets` (or --targets) to a `sea-tf reduce apply` output")
    targets_dir = Path(targets_dir)
    targets_card: dict | None = cards.read_card(targets_dir, required=False) if targets_dir.is_dir() else None
    if targets_card is None or targets_card.get("kind") != "targets":
        raise TrainError(f"{targets_dir}: no targets card (card.json of kind 'targets'); pass the output "
                         "directory of `sea-tf reduce apply`")
    if not targets_card.get("complete"):
        raise TrainError(f"{targets_dir}: `sea-tf reduce apply` has not finished here; re-run it to complete the targets")
    try:
        shards = ShardSet(shard_dirs, targets=targets_dir, allow_partial=allow_partial)
    except DataError as exc:
        raise TrainError(str(exc)) from exc
    d = int(targets_card["d"])
    _check_same_teacher_shards(shards, targets_card, targets_dir)
    checked_dir, reducer_card = _check_reducer(targets_card, targets_dir, reducer_dir, d)
    frame_samples = _check_shapes(shards, d)
    if check_rows and checked_dir is not None and reducer_card.get("method") in ("pca", "none"):
        _check_alignment(shards, checked_dir, check_rows, seed)
    return Pairs(shards, d, frame_samples, targets_card, reducer_card, checked_dir)


def _check_same_teacher_shards(shards: ShardSet, targets_card: dict, targets_dir: Path) -> None:
    made_from = {m["sha256"] for m in targets_card.get("teacher_shards", {}).get("manifests", [])}
    given = {m["sha256"] for m in shards.describe()["manifests"]}
    if made_from and not given <= made_from:
        raise TrainError(f"{targets_dir}: these targets were computed from other teacher shards "
                         f"({targets_card['teacher_shards'].get('dirs')}) than {', '.join(map(str, shards.dirs))} "
                         "(their manifests differ), so rows would be misaligned; run `sea-tf reduce apply` on these shards")


def _check_reducer(targets_card: dict, targets_dir: Path, given_dir: Path | str | None,
                   d: int) -> tuple[Path | None, dict]:
    reducer_dir = Path(given_dir) if given_dir else None
    if reducer_dir is None and targets_card.get("reducer_dir"):
        candidate = Path(targets_card["reducer_dir"])
        reducer_dir = candidate if (candidate / "card.json").is_file() else None
    if reducer_dir is None:  # the targets card embeds the reducer card: enough to know d and the method
        return None, dict(targets_card.get("reducer_card") or {})
    reducer_card: dict | None = cards.read_card(reducer_dir, required=False)
    if reducer_card is None or reducer_card.get("kind") != "reducer":
        raise TrainError(f"{reducer_dir}: no reducer card (card.json of kind 'reducer'); pass a `sea-tf reduce fit` output")
    sha = reducer_card.get("hashes", {}).get("reducer_sha256")
    if sha != targets_card.get("reducer_sha256") or int(reducer_card.get("d", -1)) != d:
        raise TrainError(f"{reducer_dir}: this reducer (d = {reducer_card.get('d')}, sha256 {str(sha)[:12]}…) did not "
                         f"make the targets in {targets_dir} (d = {d}, reducer sha256 "
                         f"{str(targets_card.get('reducer_sha256'))[:12]}…); pass the reducer those targets name "
                         f"({targets_card.get('reducer_dir')}) or re-run `sea-tf reduce apply` with this one")
    return reducer_dir, reducer_card


def _check_shapes(shards: ShardSet, d: int) -> int:
    widths: set[int] = set()
    for i, info in enumerate(shards.shards):
        target = shards.target_path(i)
        try:
            with h5py.File(info.path, "r") as fa, h5py.File(target, "r") as ft:
                audio_shape, target_shape = fa["audio"].shape, ft["target"].shape
        except (OSError, KeyError) as exc:
            raise TrainError(f"{info.path} / {target}: cannot read datasets 'audio' / 'target' ({exc}); re-run the "
                             "stage that wrote the damaged file") from exc
        if audio_shape[0] != info.n_rows or target_shape[0] != audio_shape[0]:
            raise TrainError(f"{target}: {target_shape[0]} target rows but {info.path} holds {audio_shape[0]} audio "
                             f"windows (manifest: {info.n_rows}); rows must pair one to one, re-run `sea-tf reduce "
                             "apply` on these shards")
        if len(target_shape) != 2 or target_shape[1] != d:
            raise TrainError(f"{target}: targets are {target_shape[1:]}-dimensional but the targets card says d = {d}; "
                             "re-run `sea-tf reduce apply`")
        widths.add(int(audio_shape[1]))
    if len(widths) != 1:
        raise TrainError(f"audio windows of different lengths {sorted(widths)} in {shards.dirs}; use shards of one "
                         "student sample rate")
    width = widths.pop()
    if width != shards.student_sample_rate:
        raise TrainError(f"{shards.dirs[0]}: audio windows hold {width} samples but the manifest's student rate is "
                         f"{shards.student_sample_rate} Hz (1-s windows expected); re-run `sea-tf teacher-embed`")
    return width


def _check_alignment(shards: ShardSet, reducer_dir: Path, check_rows: int, seed: int) -> None:
    """Re-reduce a few teacher embeddings per shard and compare with the stored targets."""
    from sea_tf.reduce import Reducer

    reducer = Reducer.load(reducer_dir)
    rng = np.random.default_rng(seed)
    for i, info in enumerate(shards.shards):
        if info.n_rows == 0:
            continue
        drawn = {0, info.n_rows - 1} | set(rng.integers(0, info.n_rows, max(0, check_rows - 2)).tolist())
        rows = sorted(drawn)[:max(1, check_rows)]
        index = np.asarray(rows) + info.offset
        expected = reducer.transform(shards.read("embedding", index))
        stored = shards.read("target", index)
        scale = max(1e-6, float(np.abs(expected).max()))
        if not np.allclose(stored, expected, atol=1e-3 * scale, rtol=1e-3):
            raise TrainError(f"{shards.target_path(i)}: row {rows[int(np.argmax(np.abs(stored - expected).max(1)))]} "
                             f"is not φ(teacher embedding) of the same row in {info.path}: targets and audio are "
                             "misaligned; re-run `sea-tf reduce apply` on these shards")


@dataclass
class Split:
    """Train/validation split by source file.

    Attributes
    ----------
    train_rows, valid_rows : np.ndarray [shape=(n,)], int64
        Global row numbers, ascending.
    train_sources, valid_sources : list of str
    """
    train_rows: npt.NDArray[np.int64]
    valid_rows: npt.NDArray[np.int64]
    train_sources: list[str]
    valid_sources: list[str]

    def summary(self) -> dict[str, int]:
        return {"n_train_rows": int(len(self.train_rows)), "n_valid_rows": int(len(self.valid_rows)),
                "n_train_sources": len(self.train_sources), "n_valid_sources": len(self.valid_sources)}


def split_by_source(shards: ShardSet, *, valid_fraction: float, seed: int) -> Split:
    """Hold out a seeded random share of the source files (all their windows) for validation.

    Parameters
    ----------
    shards : ShardSet
    valid_fraction : float
        Share of source files, in (0, 1); at least one file goes to each side.
    seed : int

    Returns
    -------
    Split
    """
    if not 0.0 < float(valid_fraction) < 1.0:
        raise TrainError(f"data.valid_fraction must be in (0, 1), got {valid_fraction!r}")
    sources = np.concatenate([chunk["source"] for chunk in shards.iter_chunks("source", rows=65536)]) \
        if shards.n_rows else np.empty(0, dtype=object)
    names, inverse = np.unique(sources.astype(str), return_inverse=True)
    if len(names) < 2:
        raise TrainError(f"the validation split would be empty: the shards in {', '.join(map(str, shards.dirs))} hold "
                         f"{len(names)} source file(s) and the split is by source file; embed at least 2 files")
    n_valid = min(len(names) - 1, max(1, int(round(valid_fraction * len(names)))))
    order = np.random.default_rng(seed).permutation(len(names))
    is_valid = np.zeros(len(names), bool)
    is_valid[order[:n_valid]] = True
    row_valid = is_valid[inverse]
    return Split(np.flatnonzero(~row_valid).astype(np.int64), np.flatnonzero(row_valid).astype(np.int64),
                 names[~is_valid].tolist(), names[is_valid].tolist())


def write_split(split: Split, path: Path | str, *, valid_fraction: float, seed: int) -> None:
    """Record the split as ``split.json`` (sources per side, row counts, sha256 of the row lists)."""
    atomic.write_json(path, {"by": "source", "valid_fraction": float(valid_fraction), "seed": int(seed),
                             **split.summary(),
                             "train_rows_sha256": canonical_sha256(split.train_rows.tolist()),
                             "valid_rows_sha256": canonical_sha256(split.valid_rows.tolist()),
                             "valid_sources": split.valid_sources, "train_sources": split.train_sources})


def check_split(split: Split, path: Path | str) -> None:
    """On resume: the split recomputed now must equal the one recorded in ``split.json``."""
    old = json.loads(Path(path).read_text())
    if old.get("valid_rows_sha256") != canonical_sha256(split.valid_rows.tolist()) or \
            old.get("train_rows_sha256") != canonical_sha256(split.train_rows.tolist()):
        raise TrainError(f"{path}: the shards now split into other train/validation rows than when this run "
                         "started (were shards added or changed?); start a new run directory")
