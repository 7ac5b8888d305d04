"""``sea-tf demo``: run the whole pipeline on the embedded default dataset."""
import argparse
from pathlib import Path

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config, write_resolved



def register(subparsers: Subparsers) -> None:
    parser, opts = add_command(subparsers, "demo", "run every stage end to end on the embedded demo dataset",
                               "demo", run)
    opts.add("--out", key="out", metavar="DIR", help="output root (dataset, models, report)")
    opts.add("--seed", key="seed", type=int, help="seed for every random choice")
    opts.add("--stages", key="stages", type=lambda s: [stage for stage in s.split(",") if stage], nargs="+",
             metavar="STAGE", help="subset of stages to run (--stages data,teacher or --stages data teacher); None: all")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.demo import check_step_settings, run_demo
    check_step_settings(cfg["steps"])  # a bad override is one line before anything is written
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out, "demo")
    report_dir = run_demo(out, seed=cfg["seed"], stages=cfg["stages"], step_settings=cfg["steps"])
    print(f"report: {report_dir / 'report.md'} (figures in {report_dir / 'report.json'})")
    return 0
