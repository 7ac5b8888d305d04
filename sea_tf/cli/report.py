"""``sea-tf report RESULTS...``: one accuracy-vs-cost report (library: :mod:`sea_tf.report`)."""
import argparse
import sys

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config

def register(subparsers: Subparsers) -> None:
    parser, opts = add_command(
        subparsers, "report", "merge export, classification and device JSONs into a markdown report + Pareto plots",
        "report", run)
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="JSON files or directories (device bench results, export sidecars, classify results.json)")
    # Legacy, hidden: results are joined by the files' sha256 now; --alias only renames a classification
    # result that has no hash (written before the identity contract), and says it is deprecated.
    parser.add_argument("--alias", action="append", default=[], metavar="NAME=MODEL", help=argparse.SUPPRESS)
    opts.add("--out", key="out", metavar="DIR", help="where report.md, rows.json and the PNGs go")
    opts.add("--title", key="title", help="report title")
    opts.add("--latency-stat", key="latency_stat", choices=["mean", "p50", "p90", "p99"],
             help="which latency statistic to tabulate and plot")
    opts.add("--html", key="html", action="store_true",
             help="also write report.html: the same rows as one page to open in a browser (plots, sortable table)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.errors import ConfigError
    from sea_tf.report import build

    if any("=" not in a for a in args.alias):
        raise ConfigError("--alias expects NAME=MODEL, e.g. --alias student=sea-64")
    aliases = dict(a.split("=", 1) for a in args.alias)
    if aliases:
        print("sea-tf report: --alias is deprecated: results are joined by the model files' sha256; it only "
              "renames classification results written without one", file=sys.stderr)
    result = build(cfg, args.results, aliases=aliases)
    print(f"report: {result['markdown']} ({len(result['rows'])} rows); plots: "
          + ", ".join(str(p) for p in result["pngs"]) + (f"; page: {result['html']}" if result["html"] else ""))
    if result["ignored"]:
        print(f"ignored {len(result['ignored'])} file(s) with nothing recognisable")
    return 0
