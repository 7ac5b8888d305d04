"""Host resamplers: soxr HQ by default; resampy's Kaiser filters (optional extra) for parity with published features."""
import importlib.util

import numpy as np
import pytest

from sea_tf.audio import RESAMPLERS, resample
from sea_tf.errors import ConfigError
from stage_args_support import settings


def _tone(sr, f=440.0, seconds=1.0):
    return np.sin(2 * np.pi * f * np.arange(int(sr * seconds)) / sr).astype(np.float32)


def test_unknown_resampler_is_a_clear_error():
    with pytest.raises(ConfigError, match="resampler must be one of soxr-hq, resampy-kaiser-best"):
        resample(_tone(44100), 44100, 8000, method="linear")


@pytest.mark.skipif(importlib.util.find_spec("resampy") is None,
                    reason="resampy (optional extra, needs numba) is not installed")
@pytest.mark.parametrize("method", RESAMPLERS)
@pytest.mark.parametrize("sr_in", [22050, 44100, 48000])
def test_every_resampler_keeps_a_tone_and_the_length(method, sr_in):
    out = resample(_tone(sr_in), sr_in, 8000, method=method)
    assert out.shape == (8000,) and out.dtype == np.float32
    ideal = _tone(8000)
    # Away from the edges each filter passes a 440 Hz tone within its passband ripple.
    assert np.abs(out - ideal)[400:-400].max() < 0.01


def test_resampy_missing_says_how_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "resampy", None)
    with pytest.raises(ConfigError, match="optional extra .*pip install resampy"):
        resample(_tone(44100), 44100, 8000, method="resampy-kaiser-fast")


def test_teacher_embed_records_its_resampler_and_refuses_unknown_ones(tmp_path):
    import json

    import soundfile as sf

    from sea_tf.models import load_model
    from sea_tf.teacher import extract_files

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", _tone(22050, seconds=1.5), 22050)
    teacher = load_model("sea-64", seed=1)
    extract_files(tmp_path / "in", tmp_path / "out", teacher, **settings("teacher", shard_rows=8, progress=False))
    manifest = json.loads((tmp_path / "out" / "manifest-0of1.json").read_text())
    assert manifest["config"]["resampler"] == "soxr-hq"
    with pytest.raises(ConfigError, match="resampler must be one of"):
        extract_files(tmp_path / "in", tmp_path / "bad", teacher,
                      **settings("teacher", resampler="sinc", progress=False))
    assert not (tmp_path / "bad").exists()
