"""One vocabulary: a flag name means one thing in every command, list options keep every value,
old spellings warn, usage errors name the subcommand, and docs/CLI.md is the parsers' own table."""
import argparse
import collections
from pathlib import Path

import pytest

from sea_tf.cli import main as cli_main
from sea_tf.cli.common import is_list_option
from sea_tf.cli.reference import SHARED_FLAGS, markdown, programs, walk

ROOT = Path(__file__).resolve().parents[1]

# Flags whose allowed values depend on the command while the idea is one (which classifiers a
# protocol offers; device.bench frames as the card says or as named); any other choice set must be
# the same wherever the flag appears.
VARYING_CHOICES = {"--classifier-type", "--framing"}


def _uses():
    """{flag: [(program command, action)]} of every visible option of every parser."""
    uses = collections.defaultdict(list)
    for program, parser in programs():
        for command, action in walk(parser):
            if action.help != argparse.SUPPRESS:
                for flag in action.option_strings:
                    uses[flag].append((f"{program} {command}".strip(), action))
    return uses


def _shape(flag, action):
    """What a use of ``flag`` takes, list or not: a switch, one of some choices, or a typed value."""
    if action.nargs == 0:
        return "switch"
    if action.choices:
        return "one of" if flag in VARYING_CHOICES else f"one of {sorted(action.choices)}"
    return f"a {getattr(action.type, '__name__', 'str')} value"


def test_one_meaning_per_flag():
    # Old code: --classifier was {mlp,svm}, {mil,framewise} and a .keras/.tflite path; --strategy a
    # sampling and a tf.distribute strategy; --out a folder and a file; --runs passes and windows.
    wrong = []
    for flag, uses in _uses().items():
        shapes = collections.defaultdict(list)
        for where, action in uses:
            shapes[_shape(flag, action)].append(where)
        if len(shapes) > 1:
            wrong.append(f"{flag}: {dict(shapes)}")
        meaning = SHARED_FLAGS.get(flag)
        for where, action in uses if meaning else ():
            if meaning.metavar and action.metavar != meaning.metavar:
                wrong.append(f"{where} {flag} {action.metavar}: {flag} means {meaning.text}")
            if meaning.help_has and meaning.help_has not in (action.help or ""):
                wrong.append(f"{where} {flag} ({action.help}): {flag} means {meaning.text}")
    assert not wrong, "\n".join(wrong)


def _list_options():
    for program, parser in programs():
        for command, action in walk(parser):
            if action.option_strings and action.help != argparse.SUPPRESS and is_list_option(action):
                yield program, parser, command, action


def _values(action):
    """Three valid values of ``action`` as typed, and what the parsed list must hold."""
    if action.choices:
        typed = [str(c) for c in list(action.choices)[:3]]
    elif "fold" in getattr(action.type, "__name__", ""):
        typed = ["1", "2", "3"]
    else:
        typed = {"int": ["1", "2", "3"], "float": ["1.5", "2.5", "3.5"]}.get(
            getattr(action.type, "__name__", ""), ["a=1", "b=2", "c=3"])
    kept = []
    for text in typed:
        value = action.type(text) if action.type else text
        kept += value if isinstance(value, list) else [value]
    return typed, kept


def _argv(program, parser, command, options):
    """``options`` given to ``command``, with a placeholder for each required positional."""
    sub = parser
    for name in command.split():
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    positionals = [a for a in sub._actions if not a.option_strings and a.nargs not in ("?", "*")
                   and not isinstance(a, argparse._SubParsersAction)]
    base = command.split() if program == "sea-tf" else ["--model", "m.tflite"]
    return base + options + (["--"] + ["p"] * len(positionals) if positionals else [])


@pytest.mark.parametrize("spelling", ["repeated", "space-separated"])
def test_list_options_keep_every_value(spelling):
    # Old code: distill --shards, export --calibration/--held-out, device run --artifacts/--audio kept
    # only the last of `--x A --x B`; sample/reduce --shards refused `--x A B`.
    lost, checked = [], 0
    for program, parser, command, action in _list_options():
        flag = action.option_strings[-1]
        (a, b, c), kept = _values(action)
        options = {"repeated": [flag, a, flag, b, flag, c], "space-separated": [flag, a, b, c]}[spelling]
        try:
            got = getattr(parser.parse_args(_argv(program, parser, command, options)), action.dest)
        except SystemExit:
            got = "a usage error"
        checked += 1
        if got != kept:
            lost.append(f"{program} {command} {' '.join(options)} -> {got}, not {kept}")
    assert checked >= 20 and not lost, "\n".join(lost)


def test_comma_lists_take_every_spelling():
    parser = cli_main.build_parser()
    for argv in (["--modes", "fp32,int8,dynamic"], ["--modes", "fp32", "int8", "dynamic"],
                 ["--modes", "fp32", "--modes", "int8", "--modes", "dynamic"]):
        assert parser.parse_args(["export", *argv]).modes == ["fp32", "int8", "dynamic"]
    for argv in (["--folds", "1,2,3"], ["--folds", "1", "2", "3"]):
        assert getattr(parser.parse_args(["classify", "us8k", *argv]), "protocol.test_folds") == [1, 2, 3]


@pytest.mark.parametrize("argv", [["export", "m.keras", "--modes", "fp32,int8", "dynamic"],
                                  ["export", "m.keras", "--modes", "fp32,int8", "--modes", "dynamic"],
                                  ["distill", "--shards", "a", "b", "--shards", "c"],
                                  ["sample", "--shards", "a", "--shards", "b", "c"]])
def test_two_list_spellings_mixed_are_one_line_and_write_nothing(argv, tmp_path, capsys, monkeypatch):
    """Issue #20's bad input: `--x A B --x C` (or a comma list beside another spelling) is refused, in
    one line naming the option, before anything runs."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main.main(argv)
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "mixes" in err[0] and "lists; give the values one way" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_set_takes_items_up_to_a_positional():
    # `--set A B` must not swallow the MODEL that follows (argparse's nargs="+" would).
    args = cli_main.build_parser().parse_args(["export", "--set", "latency.runs=3", "name=x", "tiny.keras"])
    assert args.set_items == ["latency.runs=3", "name=x"] and args.model_arg == "tiny.keras"


def test_sparsity_is_percent_like_the_preset_names():
    from sea_tf.cli.common import resolved_config

    cfg = resolved_config(cli_main.build_parser().parse_args(["distill", "--sparsity", "53.5"]))
    assert cfg["pruning"]["target_sparsity"] == pytest.approx(0.535)


@pytest.mark.parametrize("argv, message", [
    (["distill", "--shards", "a", "b", "a", "--out", "{out}"], "argument --shards: 'a' given twice"),
    (["distill", "--sparsity", "0.9", "--out", "{out}"], "the fraction 0.9 is --sparsity 90"),
    (["sample", "--n", "300", "--out", "{out}"], "sea-tf sample: error: unrecognized arguments: --n 300"),
    (["classify", "us8k", "--bogus", "--out", "{out}"], "sea-tf classify us8k: error: unrecognized arguments: --bogus"),
])
def test_bad_usage_is_one_line_with_the_subcommands_usage(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli_main.main([a.replace("{out}", str(out)) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err
    assert err.startswith(f"usage: sea-tf {argv[0]}") and len([l for l in err.splitlines() if "error:" in l]) == 1
    assert not out.exists()


@pytest.mark.parametrize("argv, old, new, key, value", [
    (["distill", "--strategy", "mirrored"], "--strategy", "--distribution", "strategy.kind", "mirrored"),
    (["classify", "ust", "--classifier", "framewise"], "--classifier", "--classifier-type", "classifier.type", "framewise"),
    (["classify", "final", "--out", "c.keras"], "--out", "--out-file", "out", "c.keras"),
    (["export", "--runs", "7"], "--runs", "--latency-windows", "latency.runs", 7),
    (["device", "listen", "--out", "l.jsonl"], "--out", "--out-file", "out", "l.jsonl"),
])
def test_old_spellings_warn_once_and_still_work(capsys, argv, old, new, key, value):
    from sea_tf.cli.common import resolved_config

    cfg = resolved_config(cli_main.build_parser().parse_args(argv))
    for part in key.split("."):
        cfg = cfg[part]
    assert cfg == value
    err = capsys.readouterr().err.splitlines()
    assert err == [f"sea-tf {' '.join(argv[:-2])}: warning: {old} is deprecated; use {new}"]


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_hidden_spelling_warns():
    # Old code: --no-center, --student-sr and --hop were accepted without a word.
    # report --alias is refused-or-warned by the command itself (it says what replaced it at run time).
    silent = [f"{program} {command} {action.option_strings}" for program, parser in programs()
              for command, action in walk(parser)
              if action.option_strings and action.help == argparse.SUPPRESS
              and type(action).__name__ not in ("Deprecated", "_Deprecated") and action.dest != "alias"]
    assert not silent


def test_no_abbreviations_anywhere():
    # Old code: `sea-tf sample --n 300` was silently `--no-progress`.
    abbreviating = [p.prog for _, parser in programs() for p in _parsers(parser) if p.allow_abbrev]
    assert not abbreviating


def test_cli_reference_is_current():
    assert (ROOT / "docs" / "CLI.md").read_text() == markdown(), \
        "docs/CLI.md is stale: python -m sea_tf.cli.reference > docs/CLI.md"
