"""Every command line README.md shows parses with the real argument parsers (docs that cannot drift)."""
import re

import pytest

from commands_support import REPO, CommandError, check

README = REPO / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_SHELL = {"", "bash", "sh", "shell", "console"}
_INLINE = re.compile(r"`([^`\n]+)`")
_COMMAND_START = re.compile(r"^(sea-tf\b|\S*python3?\s+-m\s+(sea_tf|device)\b)")


def _fenced_lines(text, name="README.md"):
    """(line, 'NAME:N') of every shell code block line, ``\\`` continuations joined."""
    for match in _FENCE.finditer(text):
        if match.group(1) not in _SHELL:
            continue
        first = text[:match.start(2)].count("\n") + 1
        pending, start = "", None
        for offset, raw in enumerate(match.group(2).splitlines()):
            start = first + offset if start is None else start
            if raw.rstrip().endswith("\\"):
                pending += raw.rstrip()[:-1] + " "
                continue
            yield pending + raw, f"{name}:{start}"
            pending, start = "", None


def _inline_commands(text, name="README.md"):
    """(span, 'NAME:N') of every inline code span outside fences that starts with a command."""
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for match in _INLINE.finditer(outside):
        span = match.group(1).strip()
        if _COMMAND_START.match(span):
            yield span, f"{name}:{outside[:match.start()].count(chr(10)) + 1}"


def _all_commands():
    text = README.read_text(encoding="utf-8")
    return list(_fenced_lines(text)) + list(_inline_commands(text))


def test_every_readme_command_parses():
    checked, failures = 0, []
    for line, where in _all_commands():
        try:
            checked += check(line, where)
        except CommandError as exc:
            failures.append(str(exc))
    assert not failures, "README commands the CLI refuses:\n" + "\n".join(failures)
    # The README shows a few dozen commands; far fewer means the extraction above broke.
    assert checked >= 30, f"only {checked} commands found in README.md"


@pytest.mark.parametrize("doc", sorted((REPO / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_command_in_the_docs_parses(doc):
    text = doc.read_text(encoding="utf-8")
    failures = []
    for line, where in list(_fenced_lines(text, f"docs/{doc.name}")) + list(_inline_commands(text, f"docs/{doc.name}")):
        try:
            check(line, where)
        except CommandError as exc:
            failures.append(str(exc))
    assert not failures, f"docs/{doc.name} commands the CLI refuses:\n" + "\n".join(failures)


def test_readme_commands_have_no_ellipsis_placeholders():
    # "sea-tf export ..." cannot be checked; the README writes a real command line instead.
    vague = [f"{where}: {line.strip()}" for line, where in _all_commands()
             if _COMMAND_START.match(line.strip()) and re.search(r"(^|\s)\.\.\.(\s|$)", line)]
    assert not vague, "commands with '...' in README.md:\n" + "\n".join(vague)


def test_setup_section_has_exactly_make_demo_and_make_test():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].strip() for _, body in
                [(m.group(1), m.group(2)) for m in _FENCE.finditer(section)] for line in body.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


@pytest.mark.parametrize("line", [
    "sea-tf sample SHARDS --method dpp-quality",          # the flags the README once showed
    "sea-tf teacher-embed INPUT --out SHARDS",            # --input is a flag, not a positional
    "sea-tf embed clip.wav --no-such-flag",
    "sea-tf sample --shards s/ --strat random",           # argparse would accept the abbreviation
    "sea-tf classify us8k --data ROOT --model",           # a flag without its value
    "sea-tf distill --config distill/no-such-preset",     # names no file and no packaged preset
    "python -m device.bench --model m.tflite --hopp 0.5",
    "python -m device.bench --threads 2",                 # --model is required
    "srun --nodes=2 .venv/bin/sea-tf distil --out runs/x",
])
def test_negative_controls_fail(line):
    with pytest.raises(CommandError):
        check(line, "control")


def test_positive_controls_pass():
    assert check("sea-tf teacher-embed --input a/ --out s/ --no-center  # the old spelling, hidden", "c") == 1
    assert check("python -m device.bench --model m.tflite [--classifier c.tflite] [--hop 0.5]", "c") == 1
    assert check("sea-tf distill --config distill/sea-64 --shards s/ && sea-tf report r.json", "c") == 2
    assert check("sea-tf models fetch", "c") == 1 and check("make demo", "c") == 0


def _setup_section():
    return README.read_text(encoding="utf-8").split("## Set up", 1)[1].split("\n## ", 1)[0]


def test_setup_lists_every_apt_package_make_test_installs():
    # The Makefile's `apt-get install ... PACKAGES)` lines of the targets `make test` depends on.
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    test_deps = re.search(r"^test:([^\n]*)", makefile, re.M).group(1).split()
    packages = set()
    for target in test_deps:
        body = re.search(rf"^{re.escape(target)}:.*?(?=^\S|\Z)", makefile, re.M | re.S)
        if body:
            for line in re.findall(r"--no-install-recommends\s*\\?\s*\n?\s*([^)\n]+)\)", body.group(0)):
                packages |= set(line.split())
    assert {"openssh-server", "slurm-wlm", "strace"} <= packages      # the parse above found the lines
    section = _setup_section()
    missing = sorted(p for p in packages if f"`{p}`" not in section)
    assert not missing, f"README's set-up does not name apt packages `make test` installs: {missing}"


def test_setup_times_name_their_measurement():
    section = _setup_section()
    assert "benchmarks/bench_readme.py" in section
    rows = [line for line in section.splitlines() if line.startswith("| `make ")]
    assert {r.split("`")[1] for r in rows} >= {"make demo", "make test", 'make demo DEMO_ARGS="--config demo/ci"'}
    for row in rows:
        # a measured figure says where and when; an unmeasured one says so
        assert re.search(r"\d{4}-\d{2}-\d{2}", row) or "not yet measured" in row, row
    assert (REPO / "benchmarks" / "bench_readme.py").is_file()
    assert "Keras 2 only (tf_keras), because tfmot needs it" in section and "TF_USE_LEGACY_KERAS=1" in section
