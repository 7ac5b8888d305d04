"""``sea-tf configs list|show``: the packaged defaults and named presets (library: :mod:`sea_tf.presets`)."""
import argparse
import sys

from sea_tf.cli.common import Subparsers
from sea_tf.config import Config


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "configs", help="list and show the packaged defaults and presets (what --config NAME accepts)",
        description="The configs every stage reads: configs/<stage>/defaults.yaml holds a stage's defaults, "
                    "the other files are named presets for `--config STAGE/NAME`.")
    actions = parser.add_subparsers(dest="configs_action", metavar="ACTION")

    def print_help(cfg: Config, args: argparse.Namespace) -> int:  # `sea-tf configs` without an action
        parser.print_help()
        return 2

    parser.set_defaults(_run=print_help, _command="configs", _defaults={}, config=None, set_items=[])

    listing = actions.add_parser("list", help="print the name of every packaged preset and defaults file")
    listing.add_argument("stage", nargs="?", help="only this stage's presets, e.g. distill")
    listing.set_defaults(_run=run_list, _command="configs list")

    show = actions.add_parser("show", help="print one packaged config")
    show.add_argument("name", metavar="NAME", help="e.g. distill/sea-64, distill/defaults, slurm/teacher-embed-array.sbatch")
    show.set_defaults(_run=run_show, _command="configs show")
    for sub in (parser, listing, show):
        sub.add_argument("--debug", action="store_true", help="show full tracebacks on errors")


def run_list(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.errors import ConfigError
    from sea_tf.presets import defaults_names, other_files, preset_names, schema_of_preset

    presets = preset_names(args.stage)
    if args.stage and not presets and f"{args.stage}/defaults" not in defaults_names():
        raise ConfigError(f"no stage '{args.stage}' in the packaged configs; stages: "
                          f"{', '.join(sorted({name.split('/')[0] for name in preset_names()}))}")
    print("presets (sea-tf <command> --config NAME):")
    for name in presets:
        print(f"  {name:32s} for {schema_of_preset(name).replace('/', ' ')}")
    shown = [name for name in defaults_names() if not args.stage or name.split("/")[0] == args.stage]
    print("defaults (sea-tf configs show NAME):")
    for name in shown:
        print(f"  {name}")
    extra = [name for name in other_files() if not args.stage or name.split("/")[0] == args.stage]
    if extra:
        print("other files:")
        for name in extra:
            print(f"  {name}")
    return 0


def run_show(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.presets import preset_text

    sys.stdout.write(preset_text(args.name))
    return 0
