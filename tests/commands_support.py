"""Check command lines written in docs and comments against the real argument parsers.

A documented command is split like a shell would (``shlex``: quotes, ``#`` comments), cut at shell
operators (``&&``, ``|``, ``>``...), and handed to the parser of the program it names:
``sea-tf`` (also ``.venv/bin/sea-tf``, ``python -m sea_tf``, or after ``srun``) to
:func:`sea_tf.cli.main.build_parser`, ``python -m device.X`` to ``device.X.build_parser``. An
unknown flag, a missing value or a wrong positional is then an argparse error, reported with the
line. Usage brackets (``[--threads 4]``) are opened, so what is optional must be valid too, and
``fit|apply|compare`` stands for each of its alternatives. Abbreviated flags are refused.
A bare mention (``sea-tf distill``, ``python -m device.bench``) only has to name real commands.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import itertools
import re
import shlex
from pathlib import Path

from sea_tf import presets
from sea_tf.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]
_OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<", "2>", "2>&1", "&"}
_PYTHON = re.compile(r"^(\S*/)?python(3(\.\d+)?)?$")
# A placeholder value such as FILE.yaml or SHARDS: nothing to look up on disk.
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.[a-z]+)?$")


class CommandError(AssertionError):
    """A documented command line that the real parser refuses."""


def split(text: str) -> list[list[str]]:
    """Shell words of ``text`` (one command line, ``\\`` continuations already joined), cut at operators."""
    text = text.replace("[", " ").replace("]", " ")
    try:
        words = shlex.split(text, comments=True)
    except ValueError as exc:  # an unbalanced quote
        raise CommandError(f"{text.strip()!r}: {exc}") from None
    segments, current = [], []
    for word in words:
        if word in _OPERATORS:
            segments.append(current)
            current = []
        else:
            current.append(word)
    segments.append(current)
    return [s for s in segments if s]


def program(words: list[str]) -> tuple[str, list[str]] | None:
    """``("sea-tf", argv)`` or ``("device.bench", argv)`` for a command we check, else ``None``."""
    if words and words[0] == "srun":  # srun [its options] PROGRAM ...: look for the program
        rest = [i for i, w in enumerate(words) if w.endswith("sea-tf") or _PYTHON.match(w)]
        words = words[rest[0]:] if rest else []
    if not words:
        return None
    if words[0] == "sea-tf" or words[0].endswith("/sea-tf"):
        return "sea-tf", words[1:]
    if _PYTHON.match(words[0]) and len(words) >= 3 and words[1] == "-m":
        module = words[2]
        if module == "sea_tf":
            return "sea-tf", words[3:]
        if module == "device":  # device/__main__.py runs device.bench
            return "device.bench", words[3:]
        if module.startswith("device."):
            return module, words[3:]
    return None


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _is_mention(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    """Whether ``argv`` is only a chain of real subcommand names (``distill``, ``models fetch``)."""
    for word in argv:
        choices = _subparsers(parser)
        if word not in choices:
            return False
        parser = choices[word]
    return True


def _exact(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (and its subcommands) refusing abbreviations: a doc must spell a flag in full."""
    parser.allow_abbrev = False
    for sub in _subparsers(parser).values():
        _exact(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str], line: str):
    parser = _exact(parser)
    argv = [w for w in argv if w not in ("-h", "--help")]
    if _is_mention(parser, argv):
        return None
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_args(argv)
    except SystemExit:
        raise CommandError(f"{line!r}: {err.getvalue().strip().splitlines()[-1]}") from None


def check(text: str, where: str, drop_ellipsis: bool = False) -> int:
    """Parse every checked command in one command line ``text``; returns how many were checked.

    ``drop_ellipsis`` drops ``...`` words ("and more arguments"), for usage notes in comments;
    without it a ``...`` is an argument like any other, which a parser usually refuses.

    Raises
    ------
    CommandError
        A command the real parser refuses, or a ``--config`` naming no file and no packaged preset.
    """
    checked = 0
    for words in split(text):
        if drop_ellipsis:
            words = [w for w in words if w != "..."]
        found = program(words)
        if found is None:
            continue
        name, argv = found
        line = f"{where}: {text.strip()}"
        # "reduce fit|apply|compare" is three commands: each alternative must be real.
        for alternative in itertools.product(*[w.split("|") if "|" in w else [w] for w in argv]):
            _check_one(name, list(alternative), line)
        checked += 1
    return checked


def _check_one(name: str, argv: list[str], line: str) -> None:
    if name == "sea-tf":
        args = _parse(build_parser(), argv, line)
        _check_config(args, line)
        return
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise CommandError(f"{line!r}: no module {name}") from None
    if not hasattr(module, "build_parser"):
        raise CommandError(f"{line!r}: {name} has no build_parser() to check its arguments against")
    _parse(module.build_parser(), argv, line)


def _check_config(args, line: str) -> None:
    value = getattr(args, "config", None) if args is not None else None
    if not value or "$" in value or _PLACEHOLDER.match(value):
        return
    with contextlib.chdir(REPO):  # documented paths are relative to the repository root
        try:
            presets.locate_config(value, stage=getattr(args, "_stage", None))
        except Exception as exc:  # noqa: BLE001 - any failure to find it is the finding
            raise CommandError(f"{line!r}: {exc}") from None


def sea_tf_flags() -> set[str]:
    """Every option string of every ``sea-tf`` subcommand, hidden aliases included."""
    flags: set[str] = set()

    def walk(parser):
        for action in parser._actions:
            flags.update(action.option_strings)
        for sub in _subparsers(parser).values():
            walk(sub)

    walk(build_parser())
    return flags


def device_flags() -> set[str]:
    """Every option string of the ``device/*.py`` modules that have a ``build_parser()``."""
    flags: set[str] = set()
    for path in sorted((REPO / "device").glob("*.py")):
        if "build_parser" not in path.read_text():
            continue
        module = importlib.import_module(f"device.{path.stem}")
        if hasattr(module, "build_parser"):
            for action in module.build_parser()._actions:
                flags.update(action.option_strings)
    return flags
