"""``sea-tf data make-demo`` (write the embedded demo dataset) and ``sea-tf data check`` (validate a root)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config


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
    from sea_tf.data import make_demo_dataset

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
    from sea_tf.data import check_dataset

    check_dataset(cfg, args.root, log=print, progress=True)
    return 0
