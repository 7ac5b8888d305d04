"""Help texts say what a flag does, and one idea has one spelling across subcommands."""
import argparse
import collections
import importlib
from pathlib import Path

import pytest

import device

from device.bench import build_parser as bench_parser
from sea_tf.cli.common import resolved_config
from sea_tf.cli.main import build_parser


def _options(parser, path=()):
    """(command path, action) of every option of every subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, path + (name,))
        elif action.option_strings:
            yield " ".join(path), action


def _visible(parser):
    return [(path, a) for path, a in _options(parser) if a.help != argparse.SUPPRESS]


def test_negative_flags_say_what_they_turn_off():
    # "--no-progress: show a progress bar" was the help of six options.
    wrong = [f"{path} {a.option_strings[0]}: {a.help}" for path, a in _visible(build_parser())
             if isinstance(a, argparse._StoreFalseAction) and a.help.lower().startswith(("show", "enable", "turn on"))]
    assert not wrong, "\n".join(wrong)
    progress = [a.help for _, a in _visible(build_parser()) if "--no-progress" in a.option_strings]
    assert len(progress) >= 10 and all(h.startswith("hide the ") for h in progress), progress


def test_one_default_per_help():
    doubled = [f"{path} {a.option_strings[0]}: {a.help}" for path, a in _visible(build_parser())
               if a.help.count("default") > 1]
    assert not doubled, "\n".join(doubled)


def test_one_spelling_per_setting():
    spellings = collections.defaultdict(set)
    for path, action in _visible(build_parser()):
        # A setting written to a file (classify final, device listen) is --out-file, to a folder --out.
        idea = (action.dest, action.option_strings == ["--out-file"])
        spellings[idea].add(max(action.option_strings, key=len))
    several = {dest: flags for dest, flags in spellings.items() if len(flags) > 1}
    assert not several


@pytest.mark.parametrize("leaves, flag", [({"center"}, "--no-centering"), ({"hop_size", "hop_s", "hop"}, "--hop-size")])
def test_one_spelling_per_idea(leaves, flag):
    # Whatever the stage calls the setting (hop_size, features.hop_size, bench.hop_s), the flag is one.
    parsers = [build_parser()] + [module.build_parser() for module in device_modules()]
    found = [(path, a.option_strings) for parser in parsers for path, a in _visible(parser)
             if a.dest.split(".")[-1] in leaves]
    assert len(found) >= 2 and all(flag in strings for _, strings in found), found


def device_modules():
    """The device/*.py command-line modules (those with a build_parser())."""
    names = [p.stem for p in sorted(Path(device.__file__).parent.glob("*.py")) if "def build_parser" in p.read_text()]
    return [importlib.import_module(f"device.{name}") for name in names]


@pytest.mark.parametrize("argv, key, value", [
    (["teacher-embed", "--input", "a", "--no-center"], "center", False),
    (["teacher-embed", "--input", "a", "--no-centering"], "center", False),
    (["teacher-embed", "--input", "a"], "center", True),
    (["teacher-embed", "--input", "a", "--student-sr", "16000"], "student_sample_rate", 16000),
    (["device", "run", "--host", "pi@b", "--hop", "0.5"], "bench.hop_s", 0.5),
])
def test_old_spellings_still_parse(argv, key, value):
    cfg = resolved_config(build_parser().parse_args(argv))
    for part in key.split("."):
        cfg = cfg[part]
    assert cfg == value


def test_old_spellings_are_hidden():
    parser = build_parser()
    teacher = parser._subparsers._group_actions[0].choices["teacher-embed"].format_help()
    assert "--no-centering" in teacher and "--no-center " not in teacher and "--student-sr " not in teacher
    assert bench_parser().parse_args(["--model", "m.tflite", "--hop", "0.5"]).hop == 0.5
    assert "--hop " not in bench_parser().format_help()
