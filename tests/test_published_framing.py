"""The published protocol presets frame clips as the paper's extraction did (L3E), and every result names it."""
import json

import numpy as np
import pytest

from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.presets import load_defaults

from classify_support import write_tone_us8k

TINY = ["--set", "classifier.mlp.hidden=[16]", "--set", "classifier.mlp.epochs=3",
        "--set", "classifier.mlp.patience=2", "--set", "protocol.test_folds=[1, 2]"]


@pytest.mark.parametrize("preset, framing", [("classify/us8k", "l3e"), ("classify/esc50", "l3e"),
                                             ("classify/us8k-centered", "centered")])
def test_protocol_presets_name_their_framing(preset, framing):
    schema = "classify/esc50" if "esc50" in preset else "classify/us8k"
    cfg = config.resolve(load_defaults(schema), preset)
    assert cfg["features"]["framing"] == framing and cfg["features"]["hop_size"] == 0.1


@pytest.mark.parametrize("schema", ["classify/us8k", "classify/esc50", "classify/final", "classify/ust"])
def test_defaults_are_the_published_framing(schema):
    # no --config: README's commands run the published extraction; centred is the us8k-centered preset
    assert load_defaults(schema)["features"]["framing"] == "l3e"


@pytest.fixture(scope="module")
def two_second_us8k(tmp_path_factory):
    """10 folds x 3 tone classes x one 2-s clip at 8 kHz (L3E at hop 0.5 s: 3 windows; centred: 4)."""
    def tone(rng, f0):
        t = np.arange(16000) / 8000
        return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)
    return write_tone_us8k(tmp_path_factory.mktemp("us8k2s"), 8000, 4, tone, end=2)


@pytest.mark.parametrize("preset, framing, windows", [("classify/us8k", "l3e", 3),
                                                      ("classify/us8k-centered", "centered", 4)])
def test_us8k_preset_frames_and_reports_its_framing(two_second_us8k, tmp_path, capsys, preset, framing, windows):
    out = tmp_path / "run"
    code = cli_main.main(["classify", "us8k", "--config", preset, "--data", str(two_second_us8k), "--model",
                          "sea-64", "--out", str(out), "--hop-size", "0.5", "--no-progress", *TINY])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "sea-64" / "results.json").read_text())
    assert results["framing"] == {"framing": framing, "hop_size": 0.5}
    assert results["n_frames"] == 30 * windows
    assert json.loads((out / "comparison.json").read_text())["features"]["framing"] == framing
    assert f"({framing} framing)" in (out / "comparison.md").read_text()
