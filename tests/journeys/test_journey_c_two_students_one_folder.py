"""Journey (c) of issue #20: two students of one preset, exported into one folder, benchmarked, reported.

A user distils twice with the same preset (two runs, two seeds) and keeps ``student-a.keras`` and
``student-b.keras``: both cards say the same preset name. Following README, they export both into
one ``export/`` folder, run ``python -m device.bench`` on each ``.tflite``, classify the two
``.tflite`` files, and run ``sea-tf report`` on the three folders, with no ``--alias``. Before
issue #20 both exports were named after the card (the second overwrote the first) and the report
keyed rows by ``<name>.<mode>``, so one row stood for two models. Now:

- the export folder holds one artifact per student, named after its file, each sidecar recording
  the sha256 of the ``.keras`` it was converted from (``source``);
- each device result names its ``.tflite`` by sha256 and its source by ``source_sha256``;
- the report has exactly two rows, one per artifact hash, each with the accuracy measured on its own
  ``.tflite`` (joined by hash, not by name) and its own latency.
"""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from sea_tf.cli import main as cli_main

from classify_support import write_tone_us8k

ROOT = Path(__file__).resolve().parents[2]
SR, SECONDS = 8000, 2.0
MODE = "fp32"     # no calibration needed: the journey is about names and joins, not quantization


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tone(rng, f0):
    t = np.arange(int(SECONDS * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def _cli(capsys, *argv):
    code = cli_main.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, f"sea-tf {' '.join(map(str, argv))} exited {code}: {out.err.strip()}"
    return out.out


def test_two_students_of_one_preset_in_one_folder_are_two_rows(tmp_path, capsys):
    from sea_tf.models import build_student

    # two students of one (tiny) preset: same card name, different seeds, so different weights and files
    students = {}
    for label, seed in (("a", 11), ("b", 12)):
        model = build_student(filters=[4, 8, 8, 16], n_mels=16, seed=seed)
        students[label] = model.save(tmp_path / "runs" / label / f"student-{label}.keras")
    cards = {json.loads(p.with_name(f"{p.stem}.card.json").read_text())["name"] for p in students.values()}
    assert len(cards) == 1                                   # one preset name: names alone cannot tell them apart
    keras_sha = {label: _sha256(p) for label, p in students.items()}
    assert keras_sha["a"] != keras_sha["b"]

    held_out = tmp_path / "held-out"
    held_out.mkdir()
    rng = np.random.default_rng(5)
    for k in range(2):
        sf.write(held_out / f"h{k}.wav", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32), SR)

    # export both into ONE folder, default names (from the model files)
    export_dir = tmp_path / "export"
    for label, path in students.items():
        _cli(capsys, "export", path, "--modes", MODE, "--held-out", held_out, "--out", export_dir, "--no-progress",
             "--set", "latency.runs=2", "--set", "latency.warmup=1", "--set", "held_out.windows=4")
    tflite = {label: export_dir / f"student-{label}.{MODE}.tflite" for label in students}
    assert sorted(p.name for p in export_dir.glob("*.tflite")) == sorted(p.name for p in tflite.values()), \
        "each student must keep its own artifact (named after its file) in the shared folder"
    tflite_sha = {label: _sha256(p) for label, p in tflite.items()}
    assert tflite_sha["a"] != tflite_sha["b"]
    for label, path in tflite.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["sha256"] == tflite_sha[label]
        assert meta["source"]["sha256"] == keras_sha[label], "the sidecar must record the .keras it came from"
        # each export's fidelity report is its own (one report.json was replaced by the second export)
        report = json.loads((export_dir / f"student-{label}.report.json").read_text())
        assert [a["sha256"] for a in report["artifacts"]] == [tflite_sha[label]]

    # benchmark both on "the board" (this machine): numpy + LiteRT, no sea_tf
    device_dir = tmp_path / "device"
    for label, path in tflite.items():
        proc = subprocess.run([sys.executable, "-m", "device.bench", "--model", str(path), "--runs", "5",
                               "--warmup", "1", "--label", "local", "--quiet", "--out-file", str(device_dir / f"{label}.json")],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        model = json.loads((device_dir / f"{label}.json").read_text())["model"]
        assert (model["sha256"], model["source_sha256"]) == (tflite_sha[label], keras_sha[label])

    # accuracy measured on each .tflite (one test fold, an SVM: seconds, not the full protocol)
    data = write_tone_us8k(tmp_path / "us8k", SR, 3, _tone, end=SECONDS)
    classify_dir = tmp_path / "classify"
    _cli(capsys, "classify", "us8k", "--data", data, "--model", tflite["a"], tflite["b"], "--out", classify_dir,
         "--folds", "1", "--classifier-type", "svm", "--hop-size", "0.5", "--no-progress")
    comparison = json.loads((classify_dir / "comparison.json").read_text())
    accuracy = {}
    for name, summary in comparison["models"].items():
        label = next(k for k, p in tflite.items() if Path(summary["spec"]).name == p.name)
        assert (summary["model_sha256"], summary["source_sha256"]) == (tflite_sha[label], keras_sha[label])
        accuracy[label] = (name, summary["accuracy_mean"])

    # README's command, no --alias: two rows, one per artifact, each joined to its own results
    report_dir = tmp_path / "report"
    printed = _cli(capsys, "report", device_dir, export_dir, classify_dir / "comparison.json", "--out", report_dir)
    assert "(2 rows)" in printed
    rows = json.loads((report_dir / "rows.json").read_text())
    assert len(rows) == 2, [(r["model"], r["mode"], r["device"], r["status"]) for r in rows]
    by_sha = {r["sha256"]: r for r in rows}
    assert set(by_sha) == set(tflite_sha.values())
    for label in students:
        row = by_sha[tflite_sha[label]]
        bench = json.loads((device_dir / f"{label}.json").read_text())
        assert (row["model"], row["mode"], row["device"], row["status"]) == (f"student-{label}", MODE, "local", "complete")
        assert row["source_sha256"] == keras_sha[label]
        assert row["latency_ms"] == bench["latency_ms"]["total"]["p50"]
        assert (row["accuracy_from"], row["accuracy"]) == accuracy[label] and not row["accuracy_inherited"]
    md = (report_dir / "report.md").read_text()
    for label in students:
        assert f"| student-{label} | {MODE} | local | {100 * accuracy[label][1]:.1f}" in md
