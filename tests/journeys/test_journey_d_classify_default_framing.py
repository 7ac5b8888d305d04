"""Journey (d) of issue #20: `sea-tf classify us8k` with no `--config` runs the published L3E framing.

A user following README runs `sea-tf classify us8k --data ROOT --model SPEC` and nothing else; the
resolved config written beside the results must say `framing: l3e`, and a 4-s clip must give the
published 31 windows at hop 0.1 s (1 + floor((4 - 1) / 0.1)), not openl3's centred 36.
"""
import json

import numpy as np
import yaml

from sea_tf.cli import main as cli_main

from classify_support import write_tone_us8k

SR, SECONDS = 8000, 4.0
# L3E: 1 + floor((4 s - 1 s) / 0.1 s) = 31; centred (half a window of zeros in front, end padded to a
# whole hop): 1 + ceil((4 s + 0.5 s - 1 s) / 0.1 s) = 36.
L3E_WINDOWS, CENTRED_WINDOWS = 31, 36


def _tone(rng, f0):
    t = np.arange(int(SECONDS * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def test_classify_us8k_without_config_uses_the_published_framing(tmp_path, capsys):
    root = write_tone_us8k(tmp_path / "us8k", SR, 3, _tone, end=SECONDS)
    out = tmp_path / "run"
    code = cli_main.main(["classify", "us8k", "--data", str(root), "--model", "sea-64", "--out", str(out),
                          "--folds", "1", "--no-progress", "--set", "classifier.mlp.hidden=[16]",
                          "--set", "classifier.mlp.epochs=2", "--set", "classifier.mlp.patience=1"])
    assert code == 0, capsys.readouterr().err
    resolved = yaml.safe_load((out / "classify-us8k.config.yaml").read_text())
    assert resolved["features"]["framing"] == "l3e" and resolved["features"]["hop_size"] == 0.1
    results = json.loads((out / "sea-64" / "results.json").read_text())
    assert results["framing"] == {"framing": "l3e", "hop_size": 0.1}
    n_clips = results["n_clips"]
    assert n_clips == 30 and results["n_frames"] == n_clips * L3E_WINDOWS != n_clips * CENTRED_WINDOWS
    assert json.loads((out / "comparison.json").read_text())["features"]["framing"] == "l3e"
