"""``benchmarks/bench_science.py --quick``: the results.json schema and the head table in RESULTS.md.

Tiny folders (class folders of tones, a few upstream scenes) keep it to seconds of training; the
published SEA-64 from ../shared is the cascade teacher when the checkout has it (else random features).
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_SEA64 = ROOT.parent / "shared" / "models" / "edgel3_sea_ust_audio_emb_64.h5"


def _tone(freq, seconds, sr, rng):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def test_quick_run_writes_schema_and_head_table(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_science
    rng = np.random.default_rng(0)
    for c, freq in enumerate((300, 900, 2000)):
        (tmp_path / "labelled" / f"class{c}").mkdir(parents=True)
        for i in range(4):
            sf.write(tmp_path / "labelled" / f"class{c}" / f"{i}.wav", _tone(freq * (1 + i / 20), 1.0, 16000, rng), 16000)
    (tmp_path / "upstream").mkdir()
    for i in range(5):
        sf.write(tmp_path / "upstream" / f"scene-{i}.wav", _tone(200 + 300 * i, 3.0, 22050, rng), 22050)
    argv = ["--quick", "--out", str(tmp_path / "out"), "--upstream", str(tmp_path / "upstream"),
            "--labelled", str(tmp_path / "labelled"), "--work", str(tmp_path / "work")]
    if SHARED_SEA64.is_file():
        argv += ["--teacher", str(SHARED_SEA64)]
    bench_science.main(argv)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["schema"] == bench_science.SCHEMA and list(results["tables"]) == ["head"]
    assert set(results["settings"]) == {"d", "steps", "batch_size", "learning_rate", "filters", "seeds", "max_windows"}
    summary = results["tables"]["head"]["summary"]
    assert [(r["head"], r["targets"]) for r in summary] == [("published", "centred"), ("linear", "centred"),
                                                            ("projection", "centred"), ("published", "shifted")]
    for row in results["tables"]["head"]["rows"]:
        assert {"r2", "cosine", "accuracy", "r2_cap_non_negative", "negative_target_fraction", "seed", "d"} <= set(row)
        assert all(math.isfinite(row[k]) for k in ("r2", "cosine", "accuracy", "r2_cap_non_negative"))
    # the published head's outputs are >= 0, so its R² stays under the cap of any non-negative predictor
    published = next(r for r in results["tables"]["head"]["rows"] if r["head"] == "published" and r["targets"] == "centred")
    assert published["r2"] <= published["r2_cap_non_negative"] + 1e-9
    md = (tmp_path / "out" / "RESULTS.md").read_text()
    assert md.index("## Student head") < md.index("| head | targets | R² | cosine | accuracy |")
    assert "| linear | centred |" in md and (tmp_path / "out" / "head.png").is_file()
