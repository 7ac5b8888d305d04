"""The command-line vocabulary: every option of every command, and what each shared flag name means.

``python -m sea_tf.cli.reference > docs/CLI.md`` writes the option tables from the parsers
themselves (``tests/test_cli_vocabulary.py`` checks the committed file is current). The board
programs (``python -m device.bench``, ``python -m device.listen``) are walked too: ``sea-tf device``
passes its options on to them, so a flag must mean the same thing there.
"""
import argparse
import dataclasses
import sys
from typing import Iterator

from sea_tf.cli.common import is_list_option


@dataclasses.dataclass(frozen=True)
class Meaning:
    """What one flag name means wherever it appears.

    ``metavar``: the value's placeholder every use must show (``DIR`` for a folder); ``help_has``: a
    word every use's help must contain, for meanings no structure tells apart (passes vs windows).
    """
    text: str
    metavar: str | None = None
    help_has: str | None = None


# One meaning per flag name. A flag used by more than one command is checked against this; the
# spellings it replaced are hidden aliases that warn (Options.alias).
SHARED_FLAGS = {
    "--out": Meaning("output folder (a file is --out-file)", metavar="DIR"),
    "--out-file": Meaning("output file"),
    "--classifier": Meaning("classifier model file (.keras; .tflite on the board); its kind is --classifier-type"),
    "--classifier-type": Meaning("kind of classifier trained (mlp, svm, mil, framewise)"),
    "--strategy": Meaning("sampling strategy (tf.distribute is --distribution)"),
    "--runs": Meaning("timed passes over the model (export's timed windows are --latency-windows)", help_has="passes"),
    "--sparsity": Meaning("percent of zero weights, as in the preset names", metavar="PERCENT", help_has="percent"),
    "--model": Meaning("the embedding model (a name, a catalogue SPEC or a .tflite file)"),
    "--hop-size": Meaning("seconds between window starts"),
    "--threads": Meaning("interpreter threads"),
    "--seed": Meaning("random seed"),
}


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, argparse.Action]]:
    """``(command, action)`` for every option and positional of ``parser`` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def programs() -> list[tuple[str, argparse.ArgumentParser]]:
    """``(program, parser)`` of ``sea-tf`` and the board programs."""
    import device.bench
    import device.listen
    from sea_tf.cli.main import build_parser

    return [("sea-tf", build_parser()), ("python -m device.bench", device.bench.build_parser()),
            ("python -m device.listen", device.listen.build_parser())]


def _value(action: argparse.Action) -> str:
    """The value column of ``action``'s row: ``switch``, its metavar, its choices; lists say so."""
    if action.nargs == 0:
        return "switch"
    metavar = action.metavar or (action.dest.split(".")[-1].upper() if action.option_strings else action.dest)
    if isinstance(metavar, tuple):  # one name per value of an nargs=N option, as argparse's usage line shows them
        metavar = " ".join(metavar)
    if action.choices:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    if is_list_option(action):
        return f"{metavar} … (list: repeated or space-separated)"
    return metavar


def _cell(text: str | None) -> str:
    # Help texts quote commands in backticks; as plain text here, a half-command in a table cell
    # (`sea-tf teacher-embed --status`) is not taken for a documented command line.
    return (text or "").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def markdown() -> str:
    """docs/CLI.md: one table per command (options, their values, help with the default)."""
    lines = ["# Command-line reference", "",
             "Generated from the parsers by `python -m sea_tf.cli.reference > docs/CLI.md`; "
             "`tests/test_cli_vocabulary.py` fails when it is stale.", "",
             "Every list option takes `--x A B`, `--x A --x B` or a mix (options documented with commas, "
             "such as `--modes fp32,int8`, also take commas); a value given twice is an error. "
             "Abbreviations are not accepted. Deprecated spellings still work and print one warning line.", "",
             "## Shared flag names", "", "| flag | one meaning |", "|---|---|"]
    lines += [f"| `{flag}` | {_cell(m.text)} |" for flag, m in SHARED_FLAGS.items()]
    deprecated: list[str] = []
    for program, parser in programs():
        commands: dict[str, list[argparse.Action]] = {}
        for command, action in walk(parser):
            commands.setdefault(command, []).append(action)
        for command, actions in commands.items():
            lines += ["", f"## `{program}{' ' + command if command else ''}`", "",
                      "| option | value | meaning |", "|---|---|---|"]
            for action in actions:
                if action.help == argparse.SUPPRESS:
                    if action.option_strings:
                        # Options.alias records the new spelling as .use; device/'s parsers keep it as metavar.
                        new = getattr(action, "use", None) or (
                            action.metavar if type(action).__name__ == "_Deprecated" else "(hidden, no replacement)")
                        where = f"{program} {command}".strip()
                        deprecated.append(f"| `{where}` | `{', '.join(action.option_strings)}` | `{new}` |")
                    continue
                name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}` (positional)"
                lines.append(f"| {name} | `{_cell(_value(action))}` | {_cell(action.help)} |")
    lines += ["", "## Deprecated spellings", "", "| command | old | use |", "|---|---|---|"] + deprecated
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
