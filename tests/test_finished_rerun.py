"""A finished step re-run with the same command is a no-op: one line says so, no file is rewritten.

``student.keras`` matters most: classify caches embeddings by the model file's sha256, and a
``.keras`` archive saved again holds a new timestamp, so a rewrite (same weights) made every later
stage redo its work. A no-op ``teacher-embed`` re-run once replaced its summary's figures with
nulls. Files are compared by bytes and by modification time (a rewrite with equal bytes still
counts as a rewrite).
"""
import hashlib
import json

import numpy as np
import soundfile as sf

from distill_fixtures import TINY_STUDENT, make_dataset
from sea_tf.cli.main import main


def snapshot(root):
    """``relative path -> (sha256, mtime_ns)`` of every file under ``root``.

    Run-folder locks (``.lock*``, :mod:`sea_tf.runlock`) are left out: every run records its pid
    there, and no stage reads them.
    """
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


def _distill_argv(data, out, epochs):
    argv = ["distill", "--shards", str(data["shards"]), "--targets", str(data["targets"]), "--out", str(out),
            "--epochs", str(epochs), "--steps-per-epoch", "4", "--batch-size", "16", "--no-progress"]
    for item in (f"student.overrides.filters={TINY_STUDENT['filters']}", "student.overrides.embedding_bn_relu=false",
                 f"student.overrides.embedding_size={data['d']}", "data.valid_fraction=0.2",
                 "data.shuffle_buffer=64", "data.block_rows=16", "evaluate.downstream=false"):
        argv += ["--set", item]
    return argv


def test_finished_distill_rerun_rewrites_nothing(tmp_path, capsys, monkeypatch):
    data = make_dataset(tmp_path / "data", n_sources=10)
    out = tmp_path / "run"
    assert main(_distill_argv(data, out, 2)) == 0
    before = snapshot(out)
    assert "student.keras" in before and "report.json" in before
    capsys.readouterr()

    assert main(_distill_argv(data, out, 2)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "already distilled" in lines[0] and "nothing to do" in lines[0], lines
    assert snapshot(out) == before

    # The same inputs spelled relative to another working directory are the same command.
    monkeypatch.chdir(tmp_path)
    relative = {**data, "shards": "data/" + data["shards"].relative_to(tmp_path / "data").as_posix(),
                "targets": "data/" + data["targets"].relative_to(tmp_path / "data").as_posix()}
    assert main(_distill_argv(relative, out, 2)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "already distilled" in lines[0], lines
    assert snapshot(out) == before

    # Control: asking for more epochs is not the same command; it trains on and saves a new student.
    assert main(_distill_argv(data, out, 3)) == 0
    after = snapshot(out)
    assert json.loads((out / "state.json").read_text())["epoch"] == 3
    assert after["student.keras"][0] != before["student.keras"][0]


def test_finished_teacher_embed_rerun_rewrites_nothing(tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(audio / f"clip{i}.wav", (0.1 * rng.standard_normal(8000 * (i + 1))).astype(np.float32), 8000)
    out = tmp_path / "shards"
    argv = ["teacher-embed", "--input", str(audio), "--out", str(out), "--teacher", "sea-64", "--shard-rows", "4",
            "--batch-size", "4", "--no-progress"]
    assert main(argv) == 0
    before = snapshot(out)
    summary = json.loads((out / "summary-0of1.json").read_text())
    assert summary["complete"] and summary["windows_per_s"] > 0 and summary["windows_this_run"] == summary["n_rows"]
    capsys.readouterr()

    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "already complete" in lines[0] and "nothing to do" in lines[0], lines
    assert snapshot(out) == before   # the summary keeps the figures of the run that did the work
