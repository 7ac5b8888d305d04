"""benchmarks/bench_all.py --quick end to end: the JSON's schema, the docs table, the load refusal.

No figure is asserted (speed goals live in the benchmark's JSON, never in a timed test): the test
checks that every row holds numbers measured in this run, that each ratio and ``met`` follow from
them, and that docs/PERFORMANCE.md renders from the JSON. The load check is forced off for the
schema run (``--no-load-check``), so the test passes on a busy machine; the refusal is tested with a
load limit of 0, which any load average exceeds.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_all.py"


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _run(tmp_path, *extra):
    out, docs = tmp_path / "bench_all.json", tmp_path / "PERFORMANCE.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-file", str(out), "--docs-out", str(docs),
                           "--work", str(tmp_path / "work"), *extra], cwd=ROOT, capture_output=True, text=True)
    return proc, out, docs


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    # The untrained preset: the same graph and cost as the published weights, and no ../shared needed.
    proc, out, docs = _run(tmp_path_factory.mktemp("bench_all"), "--no-load-check", "--sea64", "sea-64")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), docs.read_text()


@pytest.mark.timeout(900)
def test_quick_json_schema(quick_run):
    result, _ = quick_run
    assert result["format"] == "sea-tf-bench-all/1" and result["mode"] == "quick"
    cpu = result["environment"]["cpu"]
    assert cpu["model"] and cpu["cores"] >= 1
    assert {"avx2", "avx512f", "avx512_vnni"} <= set(cpu["flags"])
    assert all(isinstance(v, bool) for v in cpu["flags"].values())
    versions = result["environment"]["versions"]
    assert versions["tensorflow"] and versions["litert"] and versions["numpy"]
    load = result["load"]
    assert len(load["before"]) == len(load["after"]) == 3 and all(_number(x) for x in load["before"] + load["after"])
    assert load["checked"] is False and result["load_too_high"] is False
    # every section of the issue has rows: (a) body invoke, (b) audio -> embedding, (c) listen,
    # (d) teacher-embed, (e) distill + pipeline, (f) reduce apply
    assert {r["section"] for r in result["rows"]} == set("abcdef")
    for r in result["rows"]:
        assert _number(r["sea_tf"]) and r["sea_tf"] > 0 and _number(r["anchor"]) and r["anchor"] > 0, r
        assert r["ratio"] == pytest.approx(r["sea_tf"] / r["anchor"], rel=1e-3), r
        if r["target"] is None:
            assert r["met"] is None
        else:
            t = r["target"]
            checked = r["sea_tf"] if t["key"] == "reduce_rows" else r["ratio"]
            assert r["met"] == (checked <= t["value"] if t["op"] == "<=" else checked >= t["value"]), r
    assert result["targets_met"] == all(r["met"] for r in result["rows"] if r["met"] is not None)
    # one audio -> embedding target per model: its fastest path against fastest body + bare rFFT
    e2e_targets = [r for r in result["rows"] if r["target"] and r["target"]["key"] == "end_to_end"]
    assert len(e2e_targets) == len(result["device"]["models"]) and all("(fastest)" in r["what"] for r in e2e_targets)
    # each device figure is a median of per-round medians, one per round
    rounds = result["settings"]["rounds"]
    assert all(len(v) == rounds and all(_number(x) and x > 0 for x in v) for v in result["device"]["rounds"].values())
    # the teacher-embed anchor predicts exactly the windows the stage wrote
    assert result["teacher_embed"]["windows"] == result["teacher_embed"]["extract_rows"] > 0


def test_quick_docs_table(quick_run):
    result, docs = quick_run
    assert docs.startswith("# Performance")
    assert "| | path | sea-tf | anchor | unit | anchor is | ratio | target | met |" in docs
    for r in result["rows"]:
        assert f"| {r['what']} |" in docs
        assert f"| {r['ratio']:.3f} |" in docs
    assert result["environment"]["cpu"]["model"] in docs
    assert "No GPU was lent" in docs


@pytest.mark.timeout(600)
def test_refuses_docs_when_load_too_high(tmp_path):
    # a limit of 0 per 2 cores: any load average exceeds it. The reduce rows alone keep this fast.
    proc, out, docs = _run(tmp_path, "--sections", "reduce", "--max-load", "0")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert not docs.exists()
    result = json.loads(out.read_text())
    assert result["load_too_high"] is True and result["load"]["limit"] == 0
    assert [line for line in proc.stdout.splitlines() if "not writing" in line]
    assert {r["section"] for r in result["rows"]} == {"f"}


def test_bare_rfft_anchor_computes_the_front_end():
    # The bare front end with mel + dB does the front end's work, not less: its float32 dB image
    # equals device.frontends' one wherever float32 resolves it. A float32 rFFT's error is ~1e-7 of the loudest bin's
    # amplitude, i.e. < 0.01 dB for bins within 40 dB of it (amplitude 1e-2 of the max and above);
    # fainter bins are left out. Negative control: a hop off by one frame moves every column.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np

    from bench_all import bare_rfft_frontend
    from device.frontends import compute_frontend

    spec = {"type": "kapre-0.1.4-mel", "sr": 8000, "n_dft": 1024, "n_hop": 160, "n_mels": 64, "fmin": 0.0,
            "fmax": 4000.0, "htk": True, "norm": "slaney", "padding": "same"}
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    x = (0.05 * rng.standard_normal(8000) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    reference = compute_frontend(x[None], spec)[0, ..., 0]
    anchor = np.array(bare_rfft_frontend(spec, 8000, mel_db=True)(x))
    assert anchor.shape == reference.shape == (64, 50)
    loud = reference > -40
    assert loud.mean() > 0.3
    np.testing.assert_allclose(anchor[loud], reference[loud], atol=0.01)
    shifted = np.array(bare_rfft_frontend({**spec, "n_hop": 161}, 8000, mel_db=True)(x))
    assert np.abs(shifted[:, 1:] - reference[:, 1:])[loud[:, 1:]].max() > 0.1
    # the anchor is the STFT part alone: the power of every frame, [T, n_dft / 2 + 1]
    assert np.array(bare_rfft_frontend(spec, 8000, mel_db=False)(x)).shape == (50, 513)
