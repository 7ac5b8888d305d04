"""``sea-tf classify us8k|esc50|ust|final``: downstream evaluation and the deployable classifier."""
import argparse
from pathlib import Path

from sea_tf.cli.common import Options, Subparsers, add_command
from sea_tf.config import Config
from sea_tf.errors import ConfigError

_EPILOG_BENCH = """
The fold protocol of docs/PROTOCOL.md §4.1–4.2: for each test fold k the validation fold is k-1 (cyclic) and
the other folds train; clip prediction = mean of frame probabilities. Frame embeddings are cached
under OUT/cache (keyed by model and audio hash). Results: OUT/comparison.{json,md} and, per model,
OUT/<model>/{results.json,confusion.png,fold-<k>.json}.

examples:
  sea-tf classify us8k --data ~/UrbanSound8K --model l3-mel256-512 --model runs/sea64/student.keras
  sea-tf classify us8k --data demo_out/data --model sea-64 --set classifier.mlp.epochs=30
  sea-tf classify esc50 --data ~/ESC-50 --model exports/student.int8.tflite
"""


def _folds(text: str) -> list[int]:
    try:
        return [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--folds {text!r}: expected comma-separated fold numbers, e.g. 1,2,3") from None


def _add_evaluation_options(opts: Options, data_help: str) -> None:
    """The options every evaluation command (us8k, esc50, ust) shares: data, models, output, framing."""
    opts.add("--data", key="data", metavar="ROOT", help=data_help)
    opts.add("--model", key="models", action="append", metavar="SPEC",
             help="embedding model: catalogue name, .keras/.h5 path, exported .tflite or (untrained) preset; "
                  "repeatable; none given: edgel3/sea-64 from the weights cache")
    opts.add("--out", key="out", metavar="DIR", help="output directory")
    opts.add("--hop-size", key="features.hop_size", type=float, metavar="S", help="seconds between 1-s windows")
    opts.add("--framing", key="features.framing", choices=["centered", "uncentered", "l3e"],
             help="window framing (l3e: no centring, tail dropped; docs/PROTOCOL.md §3.5)")
    opts.add("--cache-dir", key="features.cache_dir", metavar="DIR", help="embedding cache; None means OUT/cache")


def _add_bench(subparsers: Subparsers, kind: str) -> None:
    """``sea-tf classify us8k|esc50``: the fold protocol."""
    parser, opts = add_command(
        subparsers, kind, f"{'UrbanSound8K (10 folds)' if kind == 'us8k' else 'ESC-50 (5 folds)'}: "
        "fold protocol for one or more embedding models", f"classify/{kind}", _run_bench)
    parser.epilog = _EPILOG_BENCH
    parser.set_defaults(_kind=kind)
    _add_evaluation_options(opts, "dataset root (metadata + audio)")
    opts.add("--classifier-type", key="classifier.type", choices=["mlp", "svm"], help="frame classifier")
    opts.alias("--classifier", key="classifier.type", choices=["mlp", "svm"])
    opts.add("--folds", key="protocol.test_folds", type=_folds, nargs="+", metavar="K",
             help="test only these folds, e.g. 1,2 or 1 2")
    opts.add("--workers", key="protocol.workers", type=int, metavar="N", help="folds trained in parallel processes")
    opts.add("--seed", key="seed", type=int, help="seed of every classifier (fold k uses seed + k)")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


_EPILOG_UST = """
SONYC-UST (docs/PROTOCOL.md §4.3): train on the `train` split, keep the epoch with the lowest `validate`
loss, score `validate` against its annotator-0 rows (DCASE 2019 Task 5: micro/macro AUPRC, micro F1).
Clips are fixed to 10 s and framed like the paper code (l3e, hop 0.1 s: 91 frames). Results:
OUT/comparison.{json,md} and, per model, OUT/<model>/{results.json,output.csv,pr_curves.png}.

examples:
  sea-tf classify ust --config classify/ust --data ~/SONYC-UST --model l3-mel256-512 --model edgel3/sea-64
  sea-tf classify ust --config classify/ust-demo --data demo_out/data/ust --model exports/student.int8.tflite
  sea-tf classify ust --data ~/SONYC-UST --model edgel3/sea-64 --classifier-type framewise --aggregation max
"""


def _add_ust(subparsers: Subparsers) -> None:
    """``sea-tf classify ust``: SONYC-UST tagging."""
    parser, opts = add_command(subparsers, "ust", "SONYC-UST: multi-label coarse tagging with the MIL (AutoPool) "
                               "or framewise classifier, DCASE 2019 Task 5 metrics", "classify/ust", _run_ust)
    parser.epilog = _EPILOG_UST
    _add_evaluation_options(opts, "SONYC-UST root (annotations.csv, dcase-ust-taxonomy.yaml, audio/)")
    opts.add("--classifier-type", key="classifier.type", choices=["mil", "framewise"],
             help="mil: frame sigmoid + AutoPool over time; framewise: frame MLP pooled per file")
    opts.alias("--classifier", key="classifier.type", choices=["mil", "framewise"])
    opts.add("--aggregation", key="classifier.aggregation", choices=["max", "mean", "softmax"],
             help="how --classifier-type framewise pools a file's frame probabilities")
    opts.add("--seed", key="seed", type=int, help="seed of every model's classifier")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "classify", help="downstream evaluation (UrbanSound8K, ESC-50, SONYC-UST) and the final classifier",
        description="Downstream evaluation of embedding models and the deployable classifier.")
    sub = parser.add_subparsers(dest="classify_command", metavar="{us8k,esc50,ust,final}")
    _add_bench(sub, "us8k")
    _add_bench(sub, "esc50")
    _add_ust(sub)
    final, opts = add_command(sub, "final", "train and save the deployable clip classifier (.keras + card)",
                              "classify/final", _run_final)
    final.epilog = """
The classifier takes raw frame embeddings (the scaler is its first layer); a clip is the mean of
its frames' probabilities. Its card names the classes and the embedding model it expects.

example:
  sea-tf classify final --data ~/UrbanSound8K --model runs/sea64/student.keras --out-file clf/us8k.keras
"""
    opts.add("--data", key="data", metavar="ROOT", help="dataset root (metadata + audio)")
    opts.add("--dataset", key="dataset", choices=["us8k", "esc50"], help="dataset layout")
    opts.add("--model", key="model", metavar="SPEC",
             help="embedding model the classifier is trained for; None: edgel3/sea-64 from the weights cache")
    opts.add("--out-file", key="out", metavar="FILE.keras", help="classifier file (.keras); its card is written beside it")
    opts.alias("--out", key="out")
    opts.add("--hop-size", key="features.hop_size", type=float, metavar="S", help="seconds between 1-s windows")
    opts.add("--framing", key="features.framing", choices=["centered", "uncentered", "l3e"], help="window framing")
    opts.add("--cache-dir", key="features.cache_dir", metavar="DIR",
             help="embedding cache; None means cache/ beside --out-file")
    opts.add("--train-folds", key="split.train_folds", type=_folds, nargs="+", metavar="K",
             help="folds to train on, e.g. 1,2 or 1 2; None means all")
    opts.add("--val-fold", key="split.val_fold", type=int, metavar="K",
             help="fold for early stopping; None: a held-out fraction (split.val_fraction) of the training clips")
    opts.add("--seed", key="seed", type=int, help="seed of the classifier")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


def _run_bench(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.classify import run

    table = run(cfg, task=args._kind)
    out = Path(cfg["out"])
    print((out / "comparison.md").read_text())
    print(f"results: {out / 'comparison.json'}; confusion matrices: {out}/<model>/confusion.png")
    return 0 if not table["failed"] else 1


def _run_final(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.classify import run

    result = run(cfg, task="final")
    card = result["card"]
    val = card["training"]["validation_accuracy"]
    print(f"classifier: {result['classifier']} ({card['n_classes']} classes, {card['params']} parameters, "
          f"expects {card['embedding_size']}-d embeddings of {result['embedding_model']}"
          + (f"; validation clip accuracy {100 * val:.1f} %" if val is not None else "") + ")")
    return 0


def _run_ust(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.classify import run

    table = run(cfg, task="ust")
    out = Path(cfg["out"])
    print((out / "comparison.md").read_text())
    print(f"results: {out / 'comparison.json'}; per model: {out}/<model>/{{results.json,output.csv,pr_curves.png}}")
    return 0 if not table["failed"] else 1
