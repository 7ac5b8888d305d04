"""Journey (g) of issue #20: README's real-data walkthrough, command by command, on the demo dataset.

The commands are read out of README.md (the first shell block under "Using your own data and the
real teacher"), so the test breaks when README and the CLI disagree: a renamed flag, an export named
otherwise than README's next command expects, a report that joins nothing. Only three things are
changed, all visible here: the user's paths become the demo dataset's (``~/UrbanSound8K`` → a tiny
``sea-tf data make-demo`` root, its ``upstream/`` scenes for ``~/sonyc/unlabelled_audio``), the openl3
weight file is a seeded file in the published layout (tests/weights_support.py: the real weights are
not available here), and each command gets ``--set`` sizes that make it take seconds (:data:`TINY`).

Before issue #20 this walkthrough ended in a report that joined nothing: the export was named after the
card (``sea-64.int8.tflite``, not README's ``student.int8.tflite``), ``classify final --out`` was a
file where every other ``--out`` is a folder, and the report keyed rows by display name, so the int8
row had no measured accuracy without ``--alias``.
"""
import glob
import hashlib
import json
import shlex

import pytest

from sea_tf.cli import main as cli_main

from test_readme_commands import README, _FENCE, _SHELL
from weights_support import write_openl3

HEADING = "### Using your own data and the real teacher"
# README's placeholders for the user's files -> what the journey puts there (relative to tmp_path).
USER_PATHS = {
    "~/openl3/openl3_audio_mel256_env-v0_4_0.h5": "openl3_audio_mel256_env-v0_4_0.h5",
    "~/sonyc/unlabelled_audio": "demo/upstream",
    "~/UrbanSound8K": "demo",
}
# Per command, sizes that keep the journey to seconds per step (appended: `--set` is applied last).
TINY = {
    "teacher-embed": ["--set", "hop_size=0.5", "batch_size=8", "--no-progress"],
    "sample": ["--set", "m=24", "group_rows=64", "--no-progress"],
    "reduce fit": ["--set", "d=8", "quality.n_heldout=16", "--no-progress"],
    "reduce apply": ["--no-progress"],
    "distill": ["--set", "student.overrides.embedding_size=8", "train.epochs=2", "train.steps_per_epoch=2",
                "train.batch_size=8", "train.validation_steps=null", "--no-progress"],
    "classify final": ["--set", "features.hop_size=1.0", "mlp.epochs=3", "--no-progress"],
    "export": ["--modes", "fp32", "int8", "--set", "calibration.windows=16", "held_out.windows=8",
               "latency.runs=2", "latency.warmup=1", "--no-progress"],
    "classify us8k": ["--set", "features.hop_size=1.0", "classifier.mlp.epochs=3", "protocol.test_folds=[1,2]",
                      "--no-progress"],
    "device.bench": ["--runs", "2", "--warmup", "1", "--quiet"],
}


def walkthrough_commands(text):
    """The walkthrough block's command lines, ``\\`` continuations joined, comments and blanks dropped."""
    section = text.split(HEADING, 1)[1]
    block = next(m for m in _FENCE.finditer(section) if m.group(1) in _SHELL).group(2)
    lines, pending = [], ""
    for raw in block.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if shlex.split(line, comments=True):
            lines.append(line)
    return lines


def _command_key(words):
    """``"sea-tf classify us8k"`` → ``"classify us8k"``; ``python -m device.bench`` → ``"device.bench"``."""
    if words[0] == "sea-tf":
        sub = words[1:3] if words[1] in ("classify", "reduce", "models", "device", "data") else words[1:2]
        return " ".join(sub)
    assert words[:2] == ["python", "-m"], f"README walkthrough runs {words[0]!r}; the journey knows sea-tf and python -m"
    return words[2]


def _localise(word, root):
    for placeholder, local in USER_PATHS.items():
        if word.startswith(placeholder):
            word = str(root / local) + word[len(placeholder):]
    assert not word.startswith("~"), f"README walkthrough names {word!r}, a user path this journey does not map"
    return (sorted(glob.glob(word)) or [word]) if "*" in word else [word]


def _run(words, capsys):
    key = _command_key(words)
    argv = words[1:] if words[0] == "sea-tf" else words[3:]
    argv = argv + TINY.get(key, [])
    if key == "device.bench":
        from device import bench
        code = bench.main(argv)
    else:
        code = cli_main.main(argv)
    out = capsys.readouterr()
    assert code in (0, None), f"README command `{' '.join(words)}` exited {code}: {out.err.strip()[-2000:]}"
    return key


@pytest.fixture
def demo_root(tmp_path, capsys):
    """A tiny demo dataset (20 labelled clips, 4 upstream scenes, no ust/) and the openl3-layout file."""
    code = cli_main.main(["data", "make-demo", "--out", str(tmp_path / "demo"), "--set", "clips_per_class=2",
                          "duration_s.max=2.0", "upstream.recordings=4", "upstream.min_duration_s=5.0",
                          "upstream.max_duration_s=6.0", "ust.clips_per_sensor=0"])
    assert code == 0, capsys.readouterr().err
    write_openl3(tmp_path / USER_PATHS["~/openl3/openl3_audio_mel256_env-v0_4_0.h5"], seed=7)
    capsys.readouterr()
    return tmp_path


def test_readme_walkthrough_runs_as_written_and_ends_in_a_joined_report(demo_root, monkeypatch, capsys):
    text = README.read_text(encoding="utf-8")
    commands = walkthrough_commands(text)
    block = "\n".join(commands)
    for placeholder in USER_PATHS:   # README still names the files the journey substitutes
        assert placeholder in block, f"README walkthrough no longer mentions {placeholder}"
    monkeypatch.chdir(demo_root)     # README's relative paths (shards/, runs/...) land in tmp
    monkeypatch.setenv("SEA_TF_HOME", str(demo_root / "sea-tf-home"))

    ran = []
    for line in commands:
        words = [w for word in shlex.split(line, comments=True) for w in _localise(word, demo_root)]
        ran.append(_run(words, capsys))
    assert ran[-1] == "report", "README's walkthrough must end with `sea-tf report`"
    assert {"distill", "export", "classify us8k", "device.bench"} <= set(ran)

    # The report joined the three folders with no --alias. The int8 export README benchmarks is one row
    # on the benchmarked device with the accuracy measured on that very .tflite (classify us8k of its
    # sha256), its latency and its size; the fp32 export, classified by nobody, shows the float
    # student's accuracy as inherited (†), joined through its sidecar's source sha256.
    report_argv = shlex.split(commands[-1], comments=True)
    report_dir = demo_root / report_argv[report_argv.index("--out") + 1]
    rows = json.loads((report_dir / "rows.json").read_text())
    int8 = demo_root / "export" / "student.int8.tflite"
    int8_sha = hashlib.sha256(int8.read_bytes()).hexdigest()
    benched = [r for r in rows if r.get("sha256") == int8_sha and r.get("device")]
    assert len(benched) == 1, f"one benchmarked row for {int8.name} expected: {rows}"
    row = benched[0]
    comparison = json.loads((demo_root / "runs" / "classify" / "comparison.json").read_text())
    classified = [name for name, m in comparison["models"].items() if m.get("model_sha256") == int8_sha]
    assert classified, f"classify us8k did not record {int8.name}'s sha256: {comparison['models']}"
    assert row["accuracy_from"] == classified[0] and not row["accuracy_inherited"], row
    assert row["accuracy"] == pytest.approx(comparison["models"][classified[0]]["accuracy_mean"])
    assert row["latency_ms"] and row["latency_ms"] > 0 and row["size_bytes"] == int8.stat().st_size
    fp32_sha = hashlib.sha256((demo_root / "export" / "student.fp32.tflite").read_bytes()).hexdigest()
    fp32 = [r for r in rows if r.get("sha256") == fp32_sha]
    assert fp32 and all(r["accuracy_inherited"] and r["accuracy"] is not None for r in fp32), fp32
