"""Export's held-out windows never come from a calibration row or a recording calibration drew from.

Each synthetic recording is a pure tone of its own frequency, so every window (a shard row or a
window framed from a .wav) names its recording by its spectral peak, whatever path it came by.
The calibration and held-out windows export actually used are recorded at ``draw_windows``.
"""
import json

import numpy as np
import pytest
import soundfile as sf

from export import calibration as calib
from sea_tf.shards import write_table

SR = 8000
FILES = 8
SECONDS = 3
LATENCY = {"runs": 1, "warmup": 0, "threads": 1}


def tone(k):
    t = np.arange(SECONDS * SR) / SR
    return (0.3 * np.sin(2 * np.pi * (250.0 + 250.0 * k) * t)).astype(np.float32)


def recording_of(window):
    """Index of the recording a window comes from (its tone's FFT bin, 1 Hz bins over 1 s)."""
    return int(round((np.argmax(np.abs(np.fft.rfft(window))) - 250) / 250))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``wav/f<k>.wav`` and teacher shards of the same recordings (sources relative to wav/, as teacher-embed writes)."""
    root = tmp_path_factory.mktemp("heldout")
    (root / "wav").mkdir()
    rows, sources = [], []
    for k in range(FILES):
        sf.write(root / "wav" / f"f{k}.wav", tone(k), SR, subtype="FLOAT")
        for start in range(0, (SECONDS - 1) * SR + 1, SR // 2):   # 1-s windows, 0.5-s hop
            rows.append(tone(k)[start:start + SR])
            sources.append(f"f{k}.wav")
    manifest = write_table(root / "shards", {"embedding": np.zeros((len(rows), 4), np.float32),
                                             "audio": np.stack(rows), "source": np.array(sources, dtype=object)},
                           {"name": "teacher"}, shard_rows=16)
    meta = json.loads(manifest.read_text())
    meta["inputs"] = {"root": str(root / "wav"), "kind": "dir", "n_files": FILES}
    manifest.write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def tiny():
    from sea_tf.models import build_student
    return build_student(filters=[4, 4, 8, 8], n_mels=16, seed=3)


def _export(tiny, out, monkeypatch, cal_windows=20, **kwargs):
    """Run export; return (summary, recordings of the calibration windows, recordings of the held-out windows)."""
    from export import export_file

    drawn = {"calibration": [], "held-out": []}
    real = calib.draw_windows

    def recording(sources, *args, what="calibration", **kw):
        windows, origin = real(sources, *args, what=what, **kw)
        drawn[what] += [recording_of(w) for w in windows]
        return windows, origin

    monkeypatch.setattr(calib, "draw_windows", recording)
    cfg = {"latency": LATENCY, "calibration": {"windows": cal_windows}, "held_out": {"windows": 20}}
    summary = export_file(tiny, out, modes="int8", cfg=cfg, progress=False, **kwargs)
    return summary, set(drawn["calibration"]), drawn["held-out"]


def test_default_held_out_from_shards_shares_no_recording(tiny, data, tmp_path, monkeypatch):
    summary, cal, held = _export(tiny, tmp_path, monkeypatch, calibration=[data / "shards"])
    assert held and cal and not cal & set(held)             # old code: held-out rows of calibration recordings
    assert summary["held_out"]["n_windows"] == len(held)
    kept_apart = FILES - len(set(held))                     # every recording not held out calibrates
    assert summary["held_out"]["excluded"] == {"files": kept_apart, "windows": 5 * kept_apart}  # 5 rows each


def test_given_audio_held_out_leaves_out_what_calibration_drew_from_shards(tiny, data, tmp_path, monkeypatch):
    """Relative shard sources (f3.wav under the manifest's root) against absolute held-out paths."""
    summary, cal, held = _export(tiny, tmp_path, monkeypatch, cal_windows=3, calibration=[data / "shards"],
                                 held_out=[data / "wav"])
    assert held and not cal & set(held)
    assert set(held) == set(range(FILES)) - cal
    assert summary["held_out"]["excluded"] == {"files": len(cal), "windows": 0}
    assert f"left out {len(cal)} file(s)" in summary["held_out"]["description"]


def test_relative_audio_calibration_against_held_out_shards(tiny, data, tmp_path, monkeypatch):
    """Calibration named by a relative directory; held-out shard rows of those files are left out."""
    monkeypatch.chdir(data)
    summary, cal, held = _export(tiny, tmp_path, monkeypatch, cal_windows=3, calibration=["wav"],
                                 held_out=[data / "shards"])
    assert held and not cal & set(held)
    assert summary["held_out"]["excluded"]["windows"] == 5 * len(cal)


def test_dot_dot_calibration_against_absolute_held_out_audio(tiny, data, tmp_path, monkeypatch):
    """``--calibration ../wav`` (relative, climbing) with ``--held-out /abs/wav``: the same files by two
    spellings are one recording each (before: a '..' name never matched, nothing was left out)."""
    (data / "sub").mkdir(exist_ok=True)
    monkeypatch.chdir(data / "sub")
    summary, cal, held = _export(tiny, tmp_path, monkeypatch, cal_windows=3, calibration=["../wav"],
                                 held_out=[data / "wav"])
    assert held and cal and not cal & set(held)
    assert summary["held_out"]["excluded"] == {"files": len(cal), "windows": 0}


def test_shards_written_from_another_directory(tiny, tmp_path, monkeypatch):
    """teacher-embed run in one directory with a relative input; export run in another: the shard rows'
    recordings are still the files named by absolute paths (the manifest records its root resolved)."""
    from sea_tf.teacher import extract_files
    from stage_args_support import settings

    (tmp_path / "proj" / "wav").mkdir(parents=True)
    for k in range(4):
        sf.write(tmp_path / "proj" / "wav" / f"f{k}.wav", tone(k), SR, subtype="FLOAT")
    monkeypatch.chdir(tmp_path / "proj")
    extract_files("wav", "shards", teacher="sea-64",
                  **settings("teacher", student_sample_rate=SR, hop_size=0.5, progress=False))
    root = json.loads(next((tmp_path / "proj" / "shards").glob("manifest-*.json")).read_text())["inputs"]["root"]
    assert root == str((tmp_path / "proj" / "wav").resolve())
    monkeypatch.chdir(tmp_path)
    summary, cal, held = _export(tiny, tmp_path / "out", monkeypatch, cal_windows=3,
                                 calibration=[tmp_path / "proj" / "shards"], held_out=[tmp_path / "proj" / "wav"])
    assert held and cal and not cal & set(held)
    assert summary["held_out"]["excluded"]["files"] == len(cal)


def test_nothing_left_is_an_error(tiny, data, tmp_path):
    from export import export_file
    from sea_tf.errors import ExportError

    one = tmp_path / "one"
    one.mkdir()
    sf.write(one / "f0.wav", tone(0), SR, subtype="FLOAT")
    with pytest.raises(ExportError, match="1 recording"):
        export_file(tiny, tmp_path / "out", modes="int8", calibration=[one], cfg={"latency": LATENCY},
                    progress=False)
    assert not (tmp_path / "out").exists()
