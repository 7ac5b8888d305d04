"""Shared plumbing for sea-tf subcommands: config options, ``--set``, ``--debug`` and errors.

A stage module registers a command with :func:`add_command`, naming its packaged defaults
(``configs/<stage>/defaults.yaml``, read by :mod:`sea_tf.presets`). Options
added through :class:`Options` map to dotted config keys and show their default in ``--help``;
only the flags a user actually types override the config file.
"""
import argparse

from sea_tf import config as config_mod

_FLAG_KEYS = "_sea_tf_flag_keys"


class Options:
    """Adds config-backed options to one subcommand parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    defaults : dict
        The command's nested config defaults.
    """

    def __init__(self, parser, defaults):
        self.parser = parser
        self.defaults = defaults
        self.keys = []
        parser.set_defaults(**{_FLAG_KEYS: self.keys})

    def add(self, *flags, key, help, **kwargs):
        """Add an option bound to dotted config ``key``; its default comes from the config."""
        default = config_mod.get_dotted(self.defaults, key)
        self.keys.append(key)
        kwargs.setdefault("default", argparse.SUPPRESS)
        if kwargs.get("action") == "store_false":
            # "--no-progress ... (default: True)" would read as if the flag were on by default.
            shown = f"sets {key}: false; default: {str(default).lower()}"
        elif kwargs.get("action") == "store_true":
            shown = f"default: {str(default).lower()}"
        else:
            shown = f"default: {default!r}" if isinstance(default, str) else f"default: {default}"
        self.parser.add_argument(*flags, dest=key, help=f"{help} ({shown})", **kwargs)

    def alias(self, *flags, key, **kwargs):
        """Accept an older spelling of the option bound to ``key``, hidden from ``--help``.

        One spelling per idea across subcommands is shown; the old one keeps old scripts working.
        """
        kwargs.setdefault("default", argparse.SUPPRESS)
        self.parser.add_argument(*flags, dest=key, help=argparse.SUPPRESS, **kwargs)


def add_command(subparsers, name, help, defaults, run, description=None):
    """Create subcommand ``name`` with the common options; returns (parser, Options).

    ``defaults`` is the schema name of the command's packaged defaults (``"sampling"``,
    ``"reduce/fit"``; :func:`sea_tf.presets.load_defaults`). ``run(cfg, args)`` is called with the
    resolved config and the parsed arguments.
    """
    from sea_tf.presets import load_defaults

    schema = defaults
    defaults = load_defaults(schema)
    stage = schema.split("/")[0]
    parser = subparsers.add_parser(
        name, help=help, description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE|PRESET",
                        help=f"YAML file of settings, or a packaged preset name such as {stage}/NAME "
                             f"(`sea-tf configs list {stage}`); defaults: configs/{stage}")
    parser.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one setting, e.g. --set {_set_example(defaults)} (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.set_defaults(_run=run, _defaults=defaults, _stage=stage, _command=name)
    return parser, Options(parser, defaults)


def _set_example(defaults):
    """A ``key=value`` of this command's own settings for the ``--set`` help: a nested number if there
    is one (to show the dotted keys), else any number, shown with its default value."""
    numbers = [key for key in config_mod.flatten_keys(defaults)
               if type(config_mod.get_dotted(defaults, key)) in (int, float) and key != "seed"]
    for key in sorted(numbers, key=lambda k: "." not in k):
        return f"{key}={config_mod.get_dotted(defaults, key)}"
    return "KEY=VALUE"


def resolved_config(args):
    """The resolved config for parsed ``args`` of a command made by :func:`add_command`."""
    keys = getattr(args, _FLAG_KEYS, [])
    flags = {key: getattr(args, key) for key in keys if hasattr(args, key)}
    return config_mod.resolve(args._defaults, args.config, flags, args.set_items, stage=getattr(args, "_stage", None))
