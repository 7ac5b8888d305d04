"""``sea-tf export MODEL``: TFLite files in every quantization mode, sidecars and a fidelity/cost report."""
import argparse

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config

_EPILOG = """
Writes OUT/<name>.<mode>.tflite + OUT/<name>.<mode>.json (sidecar: model card, mode, tensors with
dtypes and quantization, front end, sha256) and OUT/report.{json,md,png}. fp32 and fp16 files take
raw 1-s audio (front end inside); dynamic, int8 and int16x8 files take the dB mel image, which the
device computes with device/frontends.py (the sidecar says so). int8 and int16x8 are calibrated on
real audio windows drawn across the --calibration files (any rate: resampled) or teacher shards
(must be at the model's rate). Fidelity and latency are measured with the LiteRT interpreter at
1 thread on --held-out audio, leaving out every recording calibration drew from (default: a share of
the calibration sources' recordings, split by file, that never calibrates). File names come from the
model file (runs/a/student.keras -> student.int8.tflite; --name overrides); a file exported from
another model is never replaced without --overwrite. A QAT student (`distill --qat`, student-qat.h5
and its card) is converted with the ranges it learnt, in int8 and dynamic, and reported beside PTQ
of its float student on the same held-out windows: pass it as --qat-model, or as MODEL (its card names the
float student).

examples:
  sea-tf export edgel3/sea-64 --calibration demo_out/data/upstream --held-out demo_out/data/audio --out exports/
  sea-tf export runs/sea64/student.keras --modes fp32,int8 --calibration shards/ --classifier clf/us8k.keras
  sea-tf export runs/sea64/student.keras --qat-model runs/sea64/student-qat.h5 --modes int8,dynamic --calibration shards/
  sea-tf export l3-mel256-512 --modes fp32 --held-out audio/ --out exports/teacher
"""


def _modes(text: str) -> list[str]:
    # Validated (with the list of known modes in the error) by export.convert.parse_modes.
    return [m.strip() for m in text.split(",") if m.strip()]


def register(subparsers: Subparsers) -> None:

    parser, opts = add_command(subparsers, "export", "convert a model (and its classifier) to TFLite in every "
                               "quantization mode, with a fidelity and cost report", "export", run)
    parser.epilog = _EPILOG
    parser.add_argument("model_arg", nargs="?", metavar="MODEL",
                        help="preset, catalogue name, .keras (with its card), published .h5, or a QAT student-qat.h5 "
                             "(with its card; its float student is exported beside it) (default: config 'model')")
    opts.add("--modes", key="modes", type=_modes, nargs="+", metavar="MODE", help="modes among "
             "fp32,dynamic,fp16,int8,int16x8 (--modes fp32,int8 or --modes fp32 int8)")
    opts.add("--calibration", key="calibration.sources", nargs="+", metavar="AUDIO_OR_SHARDS",
             help="audio files/directories or teacher-shard directories for int8/int16x8 calibration")
    opts.add("--held-out", key="held_out.sources", nargs="+", metavar="AUDIO",
             help="audio files/directories or shards for the fidelity figures")
    opts.add("--out", key="out", metavar="DIR", help="output directory")
    opts.add("--classifier", key="classifier", metavar="FILE",
             help="downstream classifier (sea-tf classify final) to export in the same modes")
    opts.add("--name", key="name", help="artifact base name; None: the model file's stem (student.keras -> "
             "student), a preset's card name")
    opts.add("--overwrite", key="overwrite", action="store_true",
             help="replace OUT/<name>.<mode>.tflite files converted from another model (else refused)")
    # --qat-model: `distill --qat` is the switch that makes this file.
    opts.add("--qat-model", key="qat", metavar="QAT.h5",
             help="the QAT student of the same distill run (student-qat.h5): exported in int8/dynamic with its "
                  "learnt ranges, beside PTQ of MODEL, in one report")
    opts.add("--allow-partial", key="calibration.allow_partial", action="store_true",
             help="calibrate on shard directories whose split run lacks some jobs (held-out: "
                  "--set held_out.allow_partial=true)")
    opts.add("--calibration-windows", key="calibration.windows", type=int, metavar="N",
             help="calibration windows, drawn across files")
    opts.add("--held-out-windows", key="held_out.windows", type=int, metavar="N", help="held-out windows")
    opts.add("--int8-io", key="int8_io", choices=["int8", "float"], help="input/output dtype of int8 files")
    opts.add("--placement", key="placement", choices=["auto", "device", "measure"],
             help="front end: inside the file when the mode carries it exactly (auto), always on the device, or "
                  "where audio -> embedding measures faster on this machine (measure)")
    opts.add("--dft", key="dft", choices=["rfft", "matmul"], help="DFT of in-model front ends (RFFT2D or matmul)")
    opts.add("--latency-windows", key="latency.runs", type=int, metavar="N", help="timed windows per file")
    opts.alias("--runs", key="latency.runs", type=int)
    opts.add("--threads", key="latency.threads", type=int, metavar="N", help="interpreter threads for latency")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from export.pipeline import export_model
    from export.report import markdown_table

    if args.model_arg:
        cfg["model"] = args.model_arg
    summary = export_model(cfg, log=print)
    print(markdown_table(summary["artifacts"]))
    print(f"report: {summary['report']['markdown']}")
    return 0
