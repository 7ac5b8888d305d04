"""``sea-tf distill``: train a student on reduced teacher targets (resumable, pruning, QAT, multi-device)."""
import argparse

from sea_tf.cli.common import Subparsers, add_command, percent
from sea_tf.config import Config

DESCRIPTION = """\
Distil a student (SEA preset or custom) to regress the reduced teacher targets from its own
audio windows: Adam, MSE loss, MAE metric, ReduceLROnPlateau, EarlyStopping (docs/PROTOCOL.md §3.4).

examples:
  sea-tf distill --config configs/distill/sea-64.yaml --shards teacher/ --targets targets-64/ --out runs/sea64
  sea-tf distill --config configs/distill/demo.yaml --set train.epochs=5 ...
  sea-tf distill --config configs/distill/sea-64-pruned.yaml --set student.init=runs/sea64/student.keras ...

Re-running the same command resumes from the latest checkpoint in --out. The run directory
holds the resolved config, split.json, checkpoints/, history.csv, tensorboard/, loss.png,
student.keras (+ card) and report.json."""


def register(subparsers: Subparsers) -> None:
    parser, opts = add_command(subparsers, "distill", "train a student on reduced teacher targets",
                               "distill", run, description=DESCRIPTION)
    opts.add("--shards", key="shards", nargs="+", metavar="DIR", help="teacher-shard directories (--shards A B or --shards A --shards B)")
    opts.add("--allow-partial", key="allow_partial", action="store_true",
             help="read shard directories whose split run lacks some jobs (`sea-tf teacher-embed --status`)")
    opts.add("--targets", key="targets", metavar="DIR", help="reduced targets (`sea-tf reduce apply` output)")
    opts.add("--reducer", key="reducer", metavar="DIR", help="reducer directory; None: the one the targets card names")
    opts.add("--out", key="out", metavar="DIR", help="run directory (resumed if it exists)")
    opts.add("--preset", key="student.preset", metavar="NAME", help="student preset (sea-64|128|256|512, edgel3-sparse)")
    opts.add("--init", key="student.init", metavar="MODEL", help="warm-start from this model (.keras, .h5, edgel3/...)")
    opts.add("--epochs", key="train.epochs", type=int, metavar="N", help="maximum epochs")
    opts.add("--steps-per-epoch", key="train.steps_per_epoch", type=int, metavar="N",
             help="training steps per epoch; None: one pass over the training windows")
    opts.add("--batch-size", key="train.batch_size", type=int, metavar="N", help="windows per step, split across replicas (train.scale_batch_with_replicas: true makes it per replica)")
    opts.add("--lr", key="train.learning_rate", type=float, metavar="LR", help="Adam learning rate")
    opts.add("--prune", key="pruning.enabled", action="store_true", help="prune while distilling")
    opts.add("--sparsity", key="pruning.target_sparsity", type=percent, metavar="PERCENT",
             help="target sparsity per pruned layer in percent of zero weights, as in the preset names "
                  "(e.g. 53.5; the config holds the fraction)")
    opts.add("--qat", key="qat.enabled", action="store_true", help="quantization-aware fine-tune afterwards")
    opts.add("--distribution", key="strategy.kind", choices=["auto", "default", "mirrored", "multiworker"],
             help="tf.distribute strategy")
    opts.alias("--strategy", key="strategy.kind", choices=["auto", "default", "mirrored", "multiworker"])
    opts.add("--cpu-devices", key="strategy.cpu_devices", type=int, metavar="N",
             help="split the CPU into N logical devices (tests MirroredStrategy without GPUs)")
    opts.add("--mixed-precision", key="strategy.mixed_precision", action="store_true",
             help="mixed_float16 compute with float32 loss and outputs (GPUs)")
    opts.add("--seed", key="seed", type=int, metavar="N", help="seed of the split, shuffling and initial weights")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.distill import distill
    report = distill(cfg)
    if report.get("already_done"):  # distill() printed the one line saying so
        return 0
    held = report["held_out"]
    print(f"student: {report['student']}  held-out R² {held['r2']:.3f}, MSE {held['mse']:.4g}, "
          f"cosine {held['cosine']:.3f}  ({report['epochs_run']} epochs, stopped: {report['stopped']})")
    print(f"report: {report['run_dir']}/report.json")
    return 0
