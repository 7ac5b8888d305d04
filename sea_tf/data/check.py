"""``sea-tf data check ROOT``: validate a dataset root (:func:`check_dataset`, the command's entry point).

A fold dataset (UrbanSound8K, ESC-50) is checked for missing or unreadable audio; a SONYC-UST root
also for malformed annotation rows and classes without a positive file in the train or validate
split. The findings go to ``log`` line by line, and to a JSON file when ``cfg["report"]`` names one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sea_tf import atomic
from sea_tf.config import Config, write_resolved
from sea_tf.data.base import LabelledDataset
from sea_tf.data.ust import UST
from sea_tf.errors import DataError


def check_dataset(cfg: Config, root: Path | str, *, log: Callable[[str], object] = print,
                  progress: bool = True) -> dict[str, Any]:
    """Check the dataset at ``root``: its layout, and that every audio file is there and readable.

    Parameters
    ----------
    cfg : dict
        The resolved ``data/check`` config (``configs/data/defaults.yaml``: ``kind``, ``report``;
        ``sea_tf.config.load("data/check", kind="us8k")``).
    root : str or Path
        The dataset root (the folder holding ``audio/``).
    log : callable
        Called with each line of the findings (the counts, then one line per problem).
    progress : bool
        Show a progress bar while the audio is read.

    Returns
    -------
    dict
        The dataset's summary and its ``problems`` (and, for SONYC-UST, ``empty_classes``): what
        ``cfg["report"]`` receives, with the resolved config beside it (``data-check.config.yaml``).

    Raises
    ------
    DataError
        Not a dataset root, or any problem found (after every problem was logged).
    """
    from sea_tf.data import detect_kind, load_labelled_dataset  # the package's own functions (it imports this module)

    if cfg["kind"] == "ust" or (cfg["kind"] == "auto" and Path(root).is_dir() and detect_kind(root) == "ust"):
        return _check_ust(UST(root, strict=False), cfg, root, log=log, progress=progress)
    dataset = load_labelled_dataset(root, kind=cfg["kind"])
    assert isinstance(dataset, LabelledDataset)   # a UST root went to _check_ust above
    log(f"{dataset.kind} at {dataset.root}: {len(dataset)} clips, {len(dataset.class_counts())} classes "
        f"present of {len(dataset.classes)}, metadata {dataset.metadata_path or '(from file names)'}")
    log("clips per fold: " + ", ".join(f"{fold}: {n}" for fold, n in dataset.fold_counts().items()))
    problems = dataset.check_audio(progress=progress)
    for clip, reason in problems:
        log(f"  {reason}: {clip.path}")
    findings = {**dataset.summary(),
                "problems": [{"path": str(c.path), "fold": c.fold, "reason": r} for c, r in problems]}
    _write_report(findings, cfg, root)
    if problems:
        raise DataError(f"{dataset.root}: {len(problems)} of {len(dataset)} audio files are missing or unreadable "
                        "(listed above); restore them or re-download the dataset")
    log(f"all {len(dataset)} audio files readable")
    return findings


def _check_ust(dataset: UST, cfg: Config, root: Path | str, *, log: Callable[[str], object],
               progress: bool) -> dict[str, Any]:
    """``data check`` of a SONYC-UST root: malformed rows (file and line), missing or unreadable audio,
    and classes without a positive file in the train or validate split."""
    summary = dataset.summary()
    log(f"ust at {dataset.root}: {len(dataset)} files, {len(dataset.classes)} coarse classes, annotations "
        f"{dataset.annotations_path}")
    log("files per split: " + ", ".join(f"{s}: {n}" for s, n in summary["clips_per_split"].items()) +
        "; sensors: " + ", ".join(f"{s}: {n}" for s, n in summary["sensors_per_split"].items()) +
        "; verified (annotator 0): " + ", ".join(f"{s}: {n}" for s, n in summary["verified_per_split"].items()))
    for problem in dataset.row_problems:
        log(f"  malformed: {problem}")
    audio = dataset.check_audio(progress=progress)
    for clip, reason in audio:
        log(f"  {reason}: {clip.path or dataset.root / 'audio' / clip.audio_filename} "
            f"({dataset.annotations_path.name} line {clip.line})")
    # The test split is often released without labels; an empty class there says nothing.
    empty = [e for e in dataset.empty_classes() if not e.startswith("test:")]
    for entry in empty:
        log(f"  no positive file: {entry}")
    findings = {**summary, "problems": [{"path": str(c.path or c.audio_filename), "split": c.split,
                                         "line": c.line, "reason": r} for c, r in audio],
                "empty_classes": empty}
    _write_report(findings, cfg, root)
    if dataset.row_problems or audio or empty:
        raise DataError(f"{dataset.root}: {len(dataset.row_problems)} malformed annotation row(s), {len(audio)} "
                        f"missing or unreadable audio file(s), {len(empty)} class(es) with no positive in a split "
                        "(listed above); fix annotations.csv or restore the audio")
    log(f"all {len(dataset)} audio files readable; every class has positives in train and validate")
    return findings


def _write_report(findings: dict[str, Any], cfg: Config, root: Path | str) -> None:
    """The findings as JSON at ``cfg["report"]`` (when set), the resolved config and the root beside it."""
    if cfg["report"]:
        report = Path(cfg["report"])
        atomic.write_json(report, findings)
        write_resolved({**cfg, "root": str(root)}, report.parent, "data-check")
