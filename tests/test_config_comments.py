"""Comments in configs/ that name a flag name a real one; command lines in them parse.

In ``configs/**/*.yaml`` and ``configs/**/*.sbatch``, a comment line that is a command
(``#   sea-tf distill --config ...``, ``# usage: sea-tf classify us8k ...``, a backquoted
`` `sea-tf reduce fit --method none` ``, ``srun .venv/bin/sea-tf ...``) is parsed by the real
parser (tests/commands_support.py; ``...`` there means "more arguments" and is dropped). Any other
``--flag`` in a comment must be an option of some sea-tf subcommand or ``device/`` module, or, on a
line about SLURM (``sbatch``, ``#SBATCH``, ``srun``), an sbatch/srun option. The command lines of
an ``.sbatch`` script itself are parsed too, with the script's own ``VAR=value`` assignments
substituted.
"""
import re

import pytest

from commands_support import REPO, CommandError, check, device_flags, sea_tf_flags

# Options of sbatch(1)/srun(1) (Slurm 22.05) that the configs may show; see `sbatch --help`.
SLURM_OPTIONS = {
    "--array", "--job-name", "--cpus-per-task", "--mem", "--mem-per-cpu", "--time", "--output",
    "--error", "--nodes", "--ntasks", "--ntasks-per-node", "--gres", "--gpus", "--gpus-per-node",
    "--partition", "--account", "--exclusive", "--dependency", "--export", "--chdir", "--wait", "--parsable",
}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_SPAN = re.compile(r"`([^`]+)`")
_COMMAND = re.compile(r"^(usage:\s*)?((srun\b.*?)?\S*sea-tf\b|\S*python3?\s+-m\s+(sea_tf|device)\b)")
_SLURM_LINE = re.compile(r"sbatch|SBATCH|^\s*srun\b")
_ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=(\S+)")


def _comment(line):
    """The comment part of a YAML/shell line ('#' at the start or after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[i + 1:]
    return None


def _blocks(text):
    """Runs of consecutive full-line comments (and each trailing comment alone) as (first line, [texts])."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        comment = _comment(line)
        if comment is None or comment.startswith("!"):  # no comment, or a shebang
            current = None
            continue
        if line.lstrip().startswith("#"):
            if current is None:
                current = (number, [])
                blocks.append(current)
            current[1].append(comment)
        else:
            blocks.append((number, [comment]))
            current = None
    return blocks


def _is_command(line):
    """A usage line: the program, then subcommand words (no "title:" and no a|b|c), then flags."""
    line = line.strip()
    if not _COMMAND.match(line) or not _FLAG.search(line):
        return False
    head = line[:_FLAG.search(line).start()].split()
    return not any(word.endswith(":") and word != "usage:" or "|" in word for word in head)


def _check_flags(text, where, known, problems):
    for flag in _FLAG.findall(text):
        allowed = known | (SLURM_OPTIONS if _SLURM_LINE.search(text) else set())
        if flag not in allowed:
            problems.append(f"{where}: {flag} is not an option of any sea-tf command or device module "
                            f"(in: {text.strip()})")


def _check_command(text, where, problems):
    try:
        check(re.sub(r"^\s*usage:\s*", "", text), where, drop_ellipsis=True)
    except CommandError as exc:
        problems.append(str(exc))


def comment_problems(text, name, known=None):
    """Every wrong flag or refused command line in the comments (and, for .sbatch, the commands) of ``text``."""
    known = sea_tf_flags() | device_flags() if known is None else known
    problems = []
    for first, lines in _blocks(text):
        joined = "\n".join(lines)
        # Backquoted commands, possibly broken over two comment lines.
        for span in _SPAN.findall(joined):
            span = span.replace("\n", " ")
            if _COMMAND.match(span.strip()):  # backquoted: always a command, even a bare mention
                _check_command(span, f"{name}:{first}", problems)
            else:
                _check_flags(span, f"{name}:{first}", known, problems)
        rest = _SPAN.sub(" ", joined).split("\n")
        pending = ""
        for offset, line in enumerate(rest):
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            where = f"{name}:{first + offset}"
            if _is_command(line):
                _check_command(line, where, problems)
            else:
                _check_flags(line, where, known, problems)
    if name.endswith(".sbatch"):
        problems += _script_problems(text, name)
    return problems


def _script_problems(text, name):
    """The sea-tf command lines of a shell script, with its VAR=value assignments filled in."""
    values, problems, pending = {}, [], ""
    for number, line in enumerate(text.splitlines(), 1):
        code = line if _comment(line) is None else line[: len(line) - len(_comment(line)) - 1]
        if code.rstrip().endswith("\\"):
            pending += code.rstrip()[:-1] + " "
            continue
        code, pending = (pending + code).strip(), ""
        assign = _ASSIGN.match(code)
        if assign:
            # VAR=${VAR:-default} (overridable from the submit environment): check the default.
            default = re.fullmatch(rf"\$\{{{assign.group(1)}:-(.*)\}}", assign.group(2))
            values[assign.group(1)] = default.group(1) if default else assign.group(2)
            continue
        for var, value in values.items():
            code = re.sub(rf"\$\{{?{var}\}}?", value, code)
        if _COMMAND.match(code):
            _check_command(code, f"{name}:{number}", problems)
    return problems


def _config_files():
    root = REPO / "configs"
    return sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.sbatch"))


def test_configs_exist():
    # An empty glob would make the test below pass without looking at anything.
    assert len(_config_files()) >= 20


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_comments_name_real_flags(path):
    problems = comment_problems(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text", [
    "# (`sea-tf teacher-embed --student-sample-rat 48000`).\n",       # a misspelt flag in a command
    "# usage: sea-tf sample SHARDS --method dpp-quality\n",           # flags the CLI never had
    "#   sea-tf distill --config configs/distill/no-such.yaml --out runs/x\n",
    "center: true   # (--no-centre: window k starts at k * hop_size)\n",
    "#SBATCH --nodez=2\n",
    "# targets: `sea-tf reduce fit\n# --metod none`\n",                 # a command broken over two lines
])
def test_negative_controls(text):
    assert comment_problems(text, "control.yaml")


def test_negative_control_in_script():
    script = "#!/bin/bash\nCONFIG=configs/teacher/no-such.yaml\nsea-tf teacher-embed --config \"$CONFIG\" --input x\n"
    assert comment_problems(script, "control.sbatch")


def test_positive_controls():
    text = ("# usage: sea-tf classify us8k --config configs/classify/us8k.yaml --data D --model S [--model S2 ...]\n"
            "#SBATCH --nodes=2 --ntasks-per-node=1\n"
            "# targets: `sea-tf reduce fit\n# --method none`; old spelling `--no-center` still parses\n"
            "hop: 0.5  # like --hop-size of python -m device.bench\n")
    assert comment_problems(text, "control.yaml") == []
