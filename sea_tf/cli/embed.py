"""``sea-tf embed INPUTS...``: openl3/edgel3-style embedding of audio files into ``<base>[_suffix].npz``."""
import argparse
import sys
from pathlib import Path

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config, write_resolved


DESCRIPTION = """Embed audio files with a sea-tf model, like the openl3 / edgel3 command lines.

Each input file gives <output-dir or its directory>/<basename>[_suffix].npz with `embedding`
(T x D float32) and `timestamps` (T, seconds). Windows of several files are batched together.
Existing outputs are skipped unless --overwrite (so re-running resumes). A file that fails is
reported and the others still complete; the command ends with a summary.

MODEL is a catalogue name (edgel3/sea-64, openl3/mel256-env), a published .h5, a saved .keras
model, or a preset (sea-64, sea-128, sea-256, sea-512, edgel3-sparse, l3-mel256-512, ...). Without
--model it is the published SEA-64, edgel3/sea-64, from the weights cache: put it there once with
`sea-tf models fetch edgel3/sea-64` (or `sea-tf models import PATH` on a machine without
network). Presets are seeded and untrained: they work, with a warning.

example:
  sea-tf models import edgel3_sea_ust_audio_emb_64.h5
  sea-tf embed clips/ --recursive -o emb/
"""


def register(subparsers: Subparsers) -> None:
    parser, opts = add_command(subparsers, "embed", "embed audio files into .npz (openl3/edgel3 style)",
                               "models/embed", run, description=DESCRIPTION)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files and/or directories")
    opts.add("--model", "-m", key="model", metavar="SPEC", help="model to embed with")
    opts.add("--output-dir", "-o", key="output_dir", metavar="DIR", help="where to write; None writes beside each input")
    opts.add("--suffix", "-x", key="suffix", help="output names become <base>_<suffix>.npz")
    opts.add("--hop-size", "-t", key="hop_size", type=float, help="seconds between windows")
    opts.add("--no-centering", "-n", key="center", action="store_false",
             help="start window k at k*hop instead of centring it on k*hop (as openl3/edgel3 --no-centering)")
    opts.add("--batch-size", "-b", key="batch_size", type=int, help="windows per forward pass")
    opts.add("--overwrite", key="overwrite", action="store_true", help="replace existing outputs")
    opts.add("--recursive", "-r", key="recursive", action="store_true", help="descend into sub-directories")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.audio import find_audio_files
    from sea_tf.embed import embed_files, get_model
    from sea_tf.errors import AudioError
    from sea_tf.cards import UNTRAINED, weights_provenance

    paths, missing = [], []
    for item in args.inputs:
        # A missing input is reported like a failed file; the others still run.
        try:
            paths += [p for p in find_audio_files(item, recursive=cfg["recursive"]) if p not in paths]
        except AudioError as exc:
            missing.append((Path(item), str(exc)))
    if not paths:
        raise AudioError(f"no audio files found in {', '.join(args.inputs)}"
                         + ("" if cfg["recursive"] else " (add --recursive for sub-directories)"))
    model = get_model(cfg["model"])      # edgel3/sea-64 by default: from the weights cache, or the hint
    weights = weights_provenance(model.card)
    print(f"embedding {len(paths)} file(s) with {model.name} ({model.sample_rate} Hz, D={model.embedding_size}, "
          f"{'UNTRAINED weights' if weights == UNTRAINED else weights + ' weights'})", file=sys.stderr)
    summary = embed_files(paths, model=model, output_dir=cfg["output_dir"], suffix=cfg["suffix"],
                          hop_size=cfg["hop_size"], center=cfg["center"], batch_size=cfg["batch_size"],
                          overwrite=cfg["overwrite"], verbose=True)
    summary.failed[:0] = missing
    config_dir = Path(cfg["output_dir"]) if cfg["output_dir"] else (
        summary.processed[0].parent if summary.processed else None)
    if config_dir is not None:
        # What made these files, for whoever reads them later: the model and whether it was trained.
        write_resolved({**cfg, "model_name": model.name, "weights": weights}, config_dir, "embed")
    for line in summary.lines():
        print(line)
    return 1 if summary.failed else 0
