"""``sea-tf data make-demo`` (write the embedded demo dataset) and ``sea-tf data check`` (validate a root)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config
from sea_tf.errors import DataError

if TYPE_CHECKING:
    from sea_tf.data.ust import UST


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="make the demo dataset or check an UrbanSound8K / ESC-50 / SONYC-UST root",
        description="Datasets: `data make-demo` writes the synthetic UrbanSound8K-layout demo dataset; "
                    "`data check ROOT` validates a real or generated dataset and lists bad audio files.")
    parser.set_defaults(_run=lambda cfg, args: _print_help(parser), _defaults={}, _command="data",
                        config=None, set_items=[], debug=False)
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    make, opts = add_command(
        sub, "make-demo", "write the synthetic demo dataset (UrbanSound8K layout + upstream/ + ust/)", "data/make-demo",
        run_make_demo,
        description="Write a deterministic synthetic dataset in the exact UrbanSound8K layout "
                    "(audio/fold1..fold10, metadata/UrbanSound8K.csv) plus upstream/ unlabelled scenes and ust/ "
                    "(the SONYC-UST v2 layout: annotations.csv, dcase-ust-taxonomy.yaml, audio/).\n"
                    "All settings and their defaults: configs/data/defaults.yaml (`sea-tf configs show data/defaults`).")
    make.set_defaults(_command="data make-demo")
    opts.add("--out", key="out", metavar="DIR", help="output directory (refused when non-empty unless --overwrite)")
    opts.add("--clips-per-class", key="clips_per_class", type=int, metavar="N", help="labelled clips per class")
    opts.add("--upstream", key="upstream.recordings", type=int, metavar="N", help="number of unlabelled 5-10 s upstream scenes")
    opts.add("--seed", key="seed", type=int, metavar="S", help="seed: the same seed and config give byte-identical files")
    opts.add("--overwrite", key="overwrite", action="store_true", help="replace an existing demo dataset at --out")

    check, opts = add_command(
        sub, "check", "validate an UrbanSound8K, ESC-50 or SONYC-UST root and list missing/unreadable audio",
        "data/check",
        run_check)
    check.set_defaults(_command="data check")
    check.add_argument("root", help="dataset root: the folder holding audio/ (and metadata/, meta/ or annotations.csv)")
    opts.add("--kind", key="kind", choices=["auto", "us8k", "esc50", "ust"], help="dataset layout")
    opts.add("--report", key="report", metavar="FILE.json", help="also write the findings as JSON (config beside it)")


def _print_help(parser: argparse.ArgumentParser) -> int:
    """``sea-tf data`` without a subcommand: its help, exit code 2."""
    parser.print_help()
    return 2


def run_make_demo(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.data.demo_dataset import make_demo_dataset

    start = time.perf_counter()
    card = make_demo_dataset(cfg, progress=True)
    out = Path(cfg["out"])
    print(f"wrote {card['n_clips']} clips ({card['n_sources']} sources) in folds 1-10 to {out / 'audio'}, "
          f"metadata {out / 'metadata' / 'UrbanSound8K.csv'}, and {card['upstream']['n_recordings']} upstream "
          f"scenes ({card['upstream']['total_duration_s']} s) to {out / 'upstream'}"
          + (f", and {card['ust']['n_clips']} SONYC-UST-layout clips to {out / 'ust'}" if card.get("ust") else "")
          + f" in {time.perf_counter() - start:.1f} s")
    return 0


def run_check(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf import atomic
    from sea_tf.config import write_resolved
    from sea_tf.data import UST, LabelledDataset, detect_kind, load_labelled_dataset

    if cfg["kind"] == "ust" or (cfg["kind"] == "auto" and Path(args.root).is_dir() and detect_kind(args.root) == "ust"):
        return _check_ust(UST(args.root, strict=False), cfg, args)
    dataset = load_labelled_dataset(args.root, kind=cfg["kind"])
    assert isinstance(dataset, LabelledDataset)   # a UST root went to _check_ust above
    print(f"{dataset.kind} at {dataset.root}: {len(dataset)} clips, {len(dataset.class_counts())} classes "
          f"present of {len(dataset.classes)}, metadata {dataset.metadata_path or '(from file names)'}")
    print("clips per fold: " + ", ".join(f"{fold}: {n}" for fold, n in dataset.fold_counts().items()))
    problems = dataset.check_audio(progress=True)
    for clip, reason in problems:
        print(f"  {reason}: {clip.path}")
    if cfg["report"]:
        report = Path(cfg["report"])
        atomic.write_json(report, {**dataset.summary(),
                                   "problems": [{"path": str(c.path), "fold": c.fold, "reason": r} for c, r in problems]})
        write_resolved({**cfg, "root": str(args.root)}, report.parent, "data-check")
    if problems:
        raise DataError(f"{dataset.root}: {len(problems)} of {len(dataset)} audio files are missing or unreadable "
                        "(listed above); restore them or re-download the dataset")
    print(f"all {len(dataset)} audio files readable")
    return 0


def _check_ust(dataset: UST, cfg: Config, args: argparse.Namespace) -> int:
    """``data check`` of a SONYC-UST root: malformed rows (file and line), missing or unreadable audio,
    and classes without a positive file in the train or validate split."""
    from sea_tf import atomic
    from sea_tf.config import write_resolved

    summary = dataset.summary()
    print(f"ust at {dataset.root}: {len(dataset)} files, {len(dataset.classes)} coarse classes, annotations "
          f"{dataset.annotations_path}")
    print("files per split: " + ", ".join(f"{s}: {n}" for s, n in summary["clips_per_split"].items()) +
          "; sensors: " + ", ".join(f"{s}: {n}" for s, n in summary["sensors_per_split"].items()) +
          "; verified (annotator 0): " + ", ".join(f"{s}: {n}" for s, n in summary["verified_per_split"].items()))
    for problem in dataset.row_problems:
        print(f"  malformed: {problem}")
    audio = dataset.check_audio(progress=True)
    for clip, reason in audio:
        print(f"  {reason}: {clip.path or dataset.root / 'audio' / clip.audio_filename} "
              f"({dataset.annotations_path.name} line {clip.line})")
    # The test split is often released without labels; an empty class there says nothing.
    empty = [e for e in dataset.empty_classes() if not e.startswith("test:")]
    for entry in empty:
        print(f"  no positive file: {entry}")
    if cfg["report"]:
        report = Path(cfg["report"])
        atomic.write_json(report, {**summary, "problems": [{"path": str(c.path or c.audio_filename), "split": c.split,
                                                            "line": c.line, "reason": r} for c, r in audio],
                                   "empty_classes": empty})
        write_resolved({**cfg, "root": str(args.root)}, report.parent, "data-check")
    if dataset.row_problems or audio or empty:
        raise DataError(f"{dataset.root}: {len(dataset.row_problems)} malformed annotation row(s), {len(audio)} "
                        f"missing or unreadable audio file(s), {len(empty)} class(es) with no positive in a split "
                        "(listed above); fix annotations.csv or restore the audio")
    print(f"all {len(dataset)} audio files readable; every class has positives in train and validate")
    return 0
