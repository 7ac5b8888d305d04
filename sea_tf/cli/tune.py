"""``sea-tf tune``: the best student for your boards and budget, from your audio, in one command."""
import argparse
from pathlib import Path

from sea_tf.cli.common import ListAction, Subparsers, add_command, key_value
from sea_tf.config import Config

EPILOG = """
The grid (configs/tune/): students (architecture × head × pruning × QAT), reductions (method × d),
sampling strategies, export modes × placements, and the boards' threads × XNNPACK. Shared work is
done once, each piece in its own folder of OUT with a card (step.json): one teacher-embed, one
sample per strategy, one reducer per (strategy, method, d), one distillation per student, one export
per (student, placement), the downstream accuracy of every exported file through its .tflite, and
one benchmark per (file, board). Re-running does no finished work and retries what failed; a board
that stops answering fails its own cells and the grid goes on.

Writes OUT/tune.json (every cell), OUT/choice.json (per board: the most accurate cell within every
--budget, or "nothing fits; closest: ..." with what it misses), OUT/tune.md and OUT/report.html
(Pareto plots per board, a sortable table, the board facts; open it in a browser, no network).

Budgets (--budget KEY=VALUE, several): latency_ms (p50 of one window, front end + network),
rss_mb (peak memory of the benchmark), flash_kb (the model file), accuracy_drop (below the grid's
most accurate cell, a fraction: 0.02 = 2 points).

examples:
  sea-tf tune --config tune/demo --data demo_out/data --audio demo_out/data/upstream --out tune_out
  sea-tf tune --config tune/paper-students --data ~/UrbanSound8K --audio ~/sonyc/audio \\
      --host pi@raspberrypi.local --budget latency_ms=25 --budget flash_kb=512 --slurm --out paper_students
  sea-tf tune --status tune_out
"""


def register(subparsers: Subparsers) -> None:
    parser, opts = add_command(subparsers, "tune", "find the most accurate student within a board's budget (a grid)",
                               "tune", run)
    parser.epilog = EPILOG
    opts.add("--data", key="data", metavar="ROOT", help="labelled dataset of the downstream task")
    opts.add("--audio", key="audio", metavar="DIR|LIST", help="in-domain audio the teacher embeds (none: --data's audio)")
    opts.add("--shards", key="shards", action="append", metavar="DIR",
             help="teacher shards made already, instead of embedding --audio (--shards A B or --shards A --shards B)")
    opts.add("--out", key="out", metavar="DIR", help="output folder (resumed when it holds a tune)")
    opts.add("--host", key="hosts", action="append", metavar="USER@HOST[:PORT]|ALIAS",
             help="a board to benchmark on beside this machine, or a Host of the ssh_config file (several: repeat)")
    opts.add("--no-local", key="local", action="store_false", help="do not benchmark on this machine")
    opts.add("--teacher", key="teacher", metavar="SPEC", help="teacher model (catalogue name, preset, .h5, .keras)")
    opts.add("--slurm", key="slurm", action="store_true",
             help="run the distillations as one SLURM array (configs/slurm/tune-distill-array.sbatch) and wait")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars (one line per step)")
    parser.add_argument("--budget", dest="budget_items", action=ListAction, item=lambda text: "=" in text,
                        type=key_value, default=[], metavar="KEY=VALUE",
                        help="a budget every chosen cell keeps: latency_ms, rss_mb, flash_kb, accuracy_drop "
                             "(several: --budget latency_ms=25 --budget flash_kb=512)")
    parser.add_argument("--status", metavar="OUT",
                        help="list every step of the tune in OUT as done/failed/running and exit (0: all done)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.tune import parse_budgets, status, tune

    if args.status is not None:
        return status(args.status)
    cfg["budget"] = parse_budgets(args.budget_items, base=cfg["budget"])
    result = tune(cfg)
    out = Path(cfg["out"])
    failed = sum(1 for cell in result["cells"] if cell["status"] != "done")
    print(f"tune: {len(result['cells'])} cell(s), {failed} failed; {out / 'tune.json'}, {out / 'choice.json'}, "
          f"{out / 'report.html'}")
    return 1 if failed else 0
