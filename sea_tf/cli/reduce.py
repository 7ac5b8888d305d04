"""``sea-tf reduce fit|apply|compare``: learn φ on a sample, write aligned targets, compare samplers."""
import argparse
from pathlib import Path

from sea_tf.cli.common import Options, Subparsers, add_command
from sea_tf.config import Config


_EPILOG = """
fit:     REDUCER/{reducer.joblib, card.json, quality.json, quality.png}
apply:   TARGETS/<job id>/<teacher shard name>.h5 (dataset 'target' [n, d], row i <-> teacher row i) + card.json;
         re-running resumes (a target is reused only when its source shard and reducer are unchanged);
         NaN embeddings are rejected naming the shard and row
compare: OUT/<strategy>/..., OUT/compare.{json,md}, OUT/quality-<strategy>.png

examples:
  sea-tf reduce fit --shards shards/ --sample sample/ --method pca --d 64 --out reducer/
  sea-tf reduce fit --shards shards/ --sample sample/ --method umap --set umap.n_neighbors=20 --out umap/
  sea-tf reduce apply --reducer reducer/ --shards shards/ --out targets/
  sea-tf reduce compare --shards shards/ --m 2000 --d 64 --out study/
"""


def _shards_option(opts: Options) -> None:
    """``--shards`` and ``--allow-partial``, which fit, apply and compare share."""
    opts.add("--shards", key="shards", action="append", metavar="DIR", help="teacher-shard directories (--shards A B or --shards A --shards B)")
    opts.add("--allow-partial", key="allow_partial", action="store_true",
             help="read shard directories whose split run lacks some jobs (`sea-tf teacher-embed --status`)")


def register(subparsers: Subparsers) -> None:
    from sea_tf.reduce import METHODS, PCA_SOLVERS

    parser = subparsers.add_parser("reduce", help="learn the reduction φ and write the students' targets",
                                   description="Learn φ: R^n -> R^d on a sample, apply it to every teacher row, "
                                               "compare sampling strategies.")
    parser.epilog = _EPILOG
    sub = parser.add_subparsers(dest="reduce_command", metavar="{fit,apply,compare}")

    fit, opts = add_command(sub, "fit", "fit StandardScaler + PCA/UMAP (or none) on a sample", "reduce/fit", run_fit)
    fit.epilog = _EPILOG
    fit.set_defaults(_command="reduce fit")  # error lines read "sea-tf reduce fit: error: ..."
    _shards_option(opts)
    opts.add("--sample", key="sample", metavar="DIR", help="output of `sea-tf sample`")
    opts.add("--out", key="out", metavar="DIR", help="reducer directory")
    opts.add("--method", key="method", choices=METHODS, help="reduction")
    opts.add("--d", key="d", type=int, help="output dimension (ignored by --method none)")
    opts.add("--pca-solver", key="pca.solver", choices=PCA_SOLVERS, help="exact PCA or out-of-core IncrementalPCA")
    opts.add("--seed", key="seed", type=int, help="random seed")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")

    apply, opts = add_command(sub, "apply", "transform every teacher row into aligned targets", "reduce/apply",
                              run_apply)
    apply.epilog = _EPILOG
    apply.set_defaults(_command="reduce apply")
    opts.add("--reducer", key="reducer", metavar="DIR", help="output of `sea-tf reduce fit`")
    _shards_option(opts)
    opts.add("--out", key="out", metavar="DIR", help="targets directory")
    opts.add("--chunk-rows", key="chunk_rows", type=int, metavar="N", help="rows transformed at once (memory bound)")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bar")

    compare, opts = add_command(sub, "compare", "run every sampling strategy on the same shards; one quality table",
                                "reduce/compare", run_compare)
    compare.epilog = _EPILOG
    compare.set_defaults(_command="reduce compare")
    _shards_option(opts)
    opts.add("--out", key="out", metavar="DIR", help="study directory")
    opts.add("--m", key="m", type=int, metavar="M", help="samples per strategy")
    opts.add("--method", key="method", choices=METHODS, help="reduction")
    opts.add("--d", key="d", type=int, help="output dimension")
    opts.add("--seed", key="seed", type=int, help="random seed")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bars")


def run_fit(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.reduce import fit

    card = fit(cfg)
    out = Path(cfg["out"])
    q = card.get("quality", {})
    print(f"reduce fit: {card['method']} d={card['d']} on {card['sample']['m']} samples -> {out}"
          + (f" (trustworthiness {q['trustworthiness']:.3f}, recall@{q['k']} {q['knn_recall']:.3f})"
             if q else ""))
    return 0


def run_apply(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.reduce import apply

    card = apply(cfg)
    out = Path(cfg["out"])
    print(f"reduce apply: {card['teacher_shards']['n_rows']} rows -> {len(card['shards'])} target shards "
          f"(d={card['d']}) in {out}")
    return 0


def run_compare(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.reduce import compare, markdown_table

    print(markdown_table(compare(cfg)))
    return 0
