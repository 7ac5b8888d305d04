"""Shared plumbing for sea-tf subcommands: config options, ``--set``, ``--debug`` and errors.

A stage module registers a command with :func:`add_command`, naming its packaged defaults
(``configs/<stage>/defaults.yaml``, read by :mod:`sea_tf.presets`). Options
added through :class:`Options` map to dotted config keys and show their default in ``--help``;
only the flags a user actually types override the config file.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeAlias

from sea_tf import config as config_mod
from sea_tf.errors import SeaTFError

if TYPE_CHECKING:
    from sea_tf.presets import Defaults

#: what ``parser.add_subparsers()`` returns; each stage module's ``register`` adds its commands to it
#: (argparse's class is generic only in its type stubs, so the alias is a string)
Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"
#: a command's handler, ``run(cfg, args)``: the resolved config and the parsed arguments; an int is
#: the exit code (None: 0)
Handler: TypeAlias = Callable[[dict[str, Any], argparse.Namespace], "int | None"]

_FLAG_KEYS = "_sea_tf_flag_keys"
_SEEN_LISTS = "_sea_tf_seen_lists"
_LIST_SPELLINGS = "_sea_tf_list_spellings"
_WARNED = "_sea_tf_warned"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with sea-tf's rules, inherited by every subcommand parser.

    No abbreviations (``--n 300`` was silently taken as ``--no-progress``), and an unknown argument
    is reported with the usage of the subcommand it was given to, not the top-level one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Subcommands)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        # ignore: typeshed overloads this on the namespace's class; sea-tf never passes its own class
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._spread(args), namespace)

    def _spread(self, args: list[str]) -> list[str]:
        """``--set a=1 b=2 MODEL`` -> ``--set a=1 --set b=2 MODEL``.

        A list option whose items have a shape (``ListAction(item=...)``: KEY=VALUE) takes the
        following arguments only while they have it, so that a positional after it stays one.
        """
        spread: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            spread.append(arg)
            i += 1
            if arg == "--":
                return spread + args[i:]
            action = self._option_string_actions.get(arg)
            if isinstance(action, ListAction) and action.item is not None and i < len(args):
                spread.append(args[i])      # the first value, whatever it is: the action judges it
                i += 1
                while i < len(args) and not args[i].startswith("-") and action.item(args[i]):
                    spread += [arg, args[i]]
                    i += 1
        return spread

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        # A type function that raises a sea-tf error (--folds x) is a usage error like any other,
        # not a traceback from inside argparse.
        try:
            return super()._get_value(action, arg_string)
        except SeaTFError as exc:
            raise argparse.ArgumentError(action, str(exc)) from None


class _Subcommands(argparse._SubParsersAction):
    """``add_subparsers``' action: a subcommand's unknown arguments are reported by that subcommand."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,  # type: ignore[override]
                 values: Sequence[str], option_string: str | None = None) -> None:
        # ignore: nargs=PARSER, so argparse always passes the list of the subcommand's arguments
        sub = self._name_parser_map.get(values[0])
        if sub is None:
            return super().__call__(parser, namespace, values, option_string)   # the "invalid choice" error
        if self.dest is not argparse.SUPPRESS:
            setattr(namespace, self.dest, values[0])
        # argparse hands a subcommand's unknown arguments up to the top-level parser, whose error
        # shows the top-level usage; the subcommand's own usage is the one that helps.
        subnamespace, extras = sub.parse_known_args(values[1:], None)
        if extras:
            sub.error(f"unrecognized arguments: {' '.join(extras)}")
        for key, value in vars(subnamespace).items():
            setattr(namespace, key, value)


class ListAction(argparse.Action):
    """A list option that keeps every value, spelled ``--x A --x B`` or ``--x A B``.

    Either spelling gives ``[A, B]`` (argparse's ``nargs="+"`` kept only the last repeat;
    ``action="append"`` refused ``--x A B``); a ``type`` that returns a list (one splitting
    ``fp32,int8`` at the commas) is a third spelling. Two spellings mixed in one option
    (``--x A B --x C``, ``--modes fp32,int8 dynamic``) are a usage error, as is a value given twice
    (it would be read, trained or written twice): the command line says one thing or is refused.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, nargs: int | str | None = "+",
                 item: Callable[[str], bool] | None = None, **kwargs: Any) -> None:
        # item: the shape of a value (a predicate); Parser then spreads `--x A B` itself and argparse
        # takes one value per occurrence.
        super().__init__(option_strings, dest, nargs=None if item else nargs, **kwargs)
        self.item = item

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        seen: set[str] = getattr(namespace, _SEEN_LISTS, set())
        setattr(namespace, _SEEN_LISTS, seen | {self.dest})
        # A default (the config's list) is replaced by the first value typed, never extended.
        items = list(getattr(namespace, self.dest) or []) if self.dest in seen else []
        values = values if isinstance(values, list) else [values]
        spellings = getattr(namespace, _LIST_SPELLINGS, {})
        used = spellings.get(self.dest, set()) | {"comma" for v in values if isinstance(v, list) and len(v) > 1}
        if self.item is None:   # item-shaped lists (--set) are spread into repeats by Parser: both read alike
            used |= {"space" for _ in values[1:]} | ({"repeat"} if self.dest in seen else set())
        if len(used) > 1:
            raise argparse.ArgumentError(self, f"mixes {' and '.join(sorted(used))} lists; give the values one way, "
                                               f"{self.option_strings[-1]} A B or {self.option_strings[-1]} A "
                                               f"{self.option_strings[-1]} B")
        setattr(namespace, _LIST_SPELLINGS, {**spellings, self.dest: used})
        for value in values:
            for item in value if isinstance(value, list) else [value]:
                if item in items:
                    raise argparse.ArgumentError(self, f"{item!r} given twice")
                items.append(item)
        setattr(namespace, self.dest, items)


def is_list_option(action: argparse.Action) -> bool:
    """Whether argparse ``action`` takes a list of values (what the list-spelling test checks)."""
    return isinstance(action, (ListAction, argparse._AppendAction, argparse._ExtendAction)) or \
        action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)


def percent(text: str) -> float:
    """``--sparsity 53.5`` (percent, as in the preset names) -> 0.535, the fraction the config holds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of percent, e.g. 53.5") from None
    if 0 < value <= 1:
        # The old fraction spelling (0.9 meant 90 %): refused rather than read as 0.9 %.
        raise argparse.ArgumentTypeError(f"{text} is a fraction; --sparsity is in percent as in the preset names "
                                         f"(the fraction {text} is --sparsity {value * 100:g})")
    if not 0 <= value < 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage in [0, 100), e.g. 53.5 for 53.5 % zero weights")
    return value / 100


def key_value(text: str) -> str:
    """A ``--set`` item, checked as it is parsed (so the error shows the subcommand's usage)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. --set train.epochs=5")
    return text


class Options:
    """Adds config-backed options to one subcommand parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    defaults : dict
        The command's nested config defaults.
    """

    def __init__(self, parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
        self.parser = parser
        self.defaults = defaults
        self.keys: list[str] = []
        parser.set_defaults(**{_FLAG_KEYS: self.keys})

    def add(self, *flags: str, key: str, help: str, **kwargs: Any) -> None:
        """Add an option bound to dotted config ``key``; its default comes from the config."""
        default = config_mod.get_dotted(self.defaults, key)
        self.keys.append(key)
        kwargs.setdefault("default", argparse.SUPPRESS)
        _as_list_option(kwargs)
        if kwargs.get("type") is percent and isinstance(default, (int, float)):
            shown = f"default: {default * 100:g}"
        elif kwargs.get("action") == "store_false":
            # "--no-progress ... (default: True)" would read as if the flag were on by default.
            shown = f"sets {key}: false; default: {str(default).lower()}"
        elif kwargs.get("action") == "store_true":
            shown = f"default: {str(default).lower()}"
        else:
            shown = f"default: {default!r}" if isinstance(default, str) else f"default: {default}"
        self.parser.add_argument(*flags, dest=key, help=f"{help} ({shown})", **kwargs)

    def alias(self, *flags: str, key: str, use: str | None = None, **kwargs: Any) -> None:
        """Accept an older spelling of the option bound to ``key``, hidden from ``--help``.

        One spelling per idea across subcommands is shown; the old one keeps old scripts working and
        prints ``sea-tf CMD: warning: --old is deprecated; use --new`` once. ``use`` is the new
        spelling; None: the visible option already bound to ``key``.
        """
        kwargs.setdefault("default", argparse.SUPPRESS)
        _as_list_option(kwargs)
        if use is None:
            use = next(max(a.option_strings, key=len) for a in self.parser._actions
                       if a.dest == key and a.help != argparse.SUPPRESS)
        action = kwargs.pop("action", None)
        base = action if isinstance(action, type) else self.parser._registry_get("action", action, action)
        self.parser.add_argument(*flags, dest=key, help=argparse.SUPPRESS, action=_deprecated(base, use), **kwargs)


def _as_list_option(kwargs: dict[str, Any]) -> None:
    """Make every list option a :class:`ListAction` (whatever spelling a command asked for)."""
    if kwargs.get("action") in ("append", "extend") or kwargs.get("nargs") in ("+", "*"):
        kwargs["action"] = ListAction
        kwargs["nargs"] = "+" if kwargs.get("nargs") != "*" else "*"


def _deprecated(base: type[argparse.Action], use: str) -> type[argparse.Action]:
    """``base`` (an argparse action class) that first warns that its spelling is deprecated."""

    # ignore: mypy cannot check a base class held in a variable; every action class has this __call__
    class Deprecated(base):  # type: ignore[valid-type,misc]
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
            warned: set[str | None] = getattr(namespace, _WARNED, set())
            if option_string not in warned:
                print(f"{parser.prog}: warning: {option_string} is deprecated; use {use}", file=sys.stderr)
                setattr(namespace, _WARNED, warned | {option_string})
            super().__call__(parser, namespace, values, option_string)

    Deprecated.use = use
    return Deprecated


def add_command(subparsers: Subparsers, name: str, help: str, defaults: str, run: Handler, *,
                description: str | None = None) -> tuple[Parser, Options]:
    """Create subcommand ``name`` with the common options; returns (parser, Options).

    ``defaults`` is the schema name of the command's packaged defaults (``"sampling"``,
    ``"reduce/fit"``; :func:`sea_tf.presets.load_defaults`). ``run(cfg, args)`` is called with the
    resolved config and the parsed arguments.
    """
    from sea_tf.presets import load_defaults

    schema = defaults
    loaded = load_defaults(schema)
    stage = schema.split("/")[0]
    parser = subparsers.add_parser(
        name, help=help, description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE|PRESET",
                        help=f"YAML file of settings, or a packaged preset name such as {stage}/NAME "
                             f"(`sea-tf configs list {stage}`); defaults: configs/{stage}")
    parser.add_argument("--set", dest="set_items", action=ListAction, item=lambda text: "=" in text, type=key_value,
                        default=[], metavar="KEY=VALUE",
                        help=f"override settings, e.g. --set {_set_example(loaded)} (several: repeated or space-separated)")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--trust-model-code", action="store_true",
                        help="allow Keras HDF5 model files (model.save('x.h5')), whose Python code tf_keras's "
                             "loader runs; only for files from a source you trust (sets SEA_TF_TRUST_MODEL_CODE=1)")
    parser.set_defaults(_run=run, _defaults=loaded, _stage=stage, _command=name)
    return parser, Options(parser, loaded)


def _set_example(defaults: Defaults) -> str:
    """A ``key=value`` of this command's own settings for the ``--set`` help: a nested number if there
    is one (to show the dotted keys), else any number, shown with its default value."""
    numbers = [key for key in config_mod.flatten_keys(defaults)
               if type(config_mod.get_dotted(defaults, key)) in (int, float) and key != "seed"]
    for key in sorted(numbers, key=lambda k: "." not in k):
        return f"{key}={config_mod.get_dotted(defaults, key)}"
    return "KEY=VALUE"


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved config for parsed ``args`` of a command made by :func:`add_command`."""
    keys = getattr(args, _FLAG_KEYS, [])
    flags = {key: getattr(args, key) for key in keys if hasattr(args, key)}
    return config_mod.resolve(args._defaults, args.config, flags=flags, set_items=args.set_items,
                              stage=getattr(args, "_stage", None))
