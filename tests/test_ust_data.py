"""SONYC-UST loader, ``sea-tf data check`` on a UST root, bad input, and the demo's ``ust/`` set."""
import copy
import csv
import json

import numpy as np
import pytest
import soundfile as sf

from sea_tf.cli import main as cli_main
from sea_tf.data import UST, detect_kind, load_labelled_dataset
from sea_tf.data import ust_demo
from sea_tf.data.demo_dataset import DEFAULTS
from sea_tf.errors import DataError

COARSE = [f"{c}_{n}_presence" for c, n in ust_demo.COARSE.items()]


def _row(split, sensor, name, annotator, present=(), minus=(), **extra):
    row = {"split": split, "sensor_id": sensor, "audio_filename": name, "annotator_id": annotator, "borough": 1,
           "block": 100, "latitude": 40.7, "longitude": -74.0, "year": 2019, "week": 3, "day": 1, "hour": 12}
    for i, col in enumerate(COARSE, start=1):
        row[col] = -1 if i in minus else int(i in present)
    row.update(extra)
    return row


def write_root(root, rows, columns=None, audio_dir="audio", seconds=1.0):
    """A UST root with ``rows``; one short WAV per listed file (unless its name starts with 'missing')."""
    (root / audio_dir).mkdir(parents=True, exist_ok=True)
    (root / "dcase-ust-taxonomy.yaml").write_text(ust_demo.taxonomy_yaml())
    columns = columns or list(rows[0])
    with open(root / "annotations.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for name in {r["audio_filename"] for r in rows if not r["audio_filename"].startswith("missing")}:
        sub = root / audio_dir / (next(r["split"] for r in rows if r["audio_filename"] == name)
                                  if audio_dir == "audio/split" else "")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / name, np.zeros(int(8000 * seconds), np.float32), 8000)
    return root


def test_targets_verified_row_wins_else_crowd_sum(tmp_path):
    rows = [
        # a.wav: crowd says engine (1 + 0), a -1 for dog; no annotator 0 -> engine only (-1 counts as absent)
        _row("train", 1, "a.wav", 5, present=[1], minus=[8]), _row("train", 1, "a.wav", 6, minus=[8]),
        # b.wav: crowd says engine + music, the verified row says dog only -> dog only
        _row("validate", 2, "b.wav", 7, present=[1, 6]), _row("validate", 2, "b.wav", 0, present=[8]),
        _row("validate", 2, "b.wav", -3, present=[1]),   # a SONYC team member: crowd, not ground truth
    ]
    # Column order is free and extra columns are ignored.
    columns = list(reversed(list(rows[0]))) + ["1-1_small-sounding-engine_proximity", "notes"]
    ds = UST(write_root(tmp_path, rows, columns))
    assert ds.classes == list(ust_demo.COARSE.values()) and ds.coarse_columns[0] == "1_engine"
    a, b = ds.clips
    assert a.targets == (1, 0, 0, 0, 0, 0, 0, 0) and a.verified is None and a.n_annotators == 2
    assert b.targets == (0, 0, 0, 0, 0, 0, 0, 1) == b.verified and b.n_annotators == 2
    assert [c.audio_filename for c in ds.clips_in_split("validate")] == ["b.wav"]
    np.testing.assert_array_equal(ds.targets([b], verified_only=True), [[0, 0, 0, 0, 0, 0, 0, 1]])
    with pytest.raises(DataError, match="no annotator_id 0"):
        ds.targets([a], verified_only=True)
    assert detect_kind(tmp_path) == "ust" and load_labelled_dataset(tmp_path, kind="auto").kind == "ust"


def test_audio_in_split_folders_and_a_missing_file(tmp_path):
    rows = [_row("train", 1, "a.wav", 1, present=[2]), _row("validate", 2, "b.wav", 0, present=[3]),
            _row("train", 1, "missing.wav", 1, present=[2])]
    ds = UST(write_root(tmp_path, rows, audio_dir="audio/split"))
    assert ds.clips[0].path == tmp_path / "audio" / "split" / "train" / "a.wav"
    assert [c.audio_filename for c in ds.missing] == ["missing.wav"]
    assert [c.audio_filename for c in ds.clips_in_split("train")] == ["a.wav"]   # the rest goes on


@pytest.mark.parametrize("column, message", [
    ("9_spaceship_presence", "coarse tag 9 'spaceship'"),
    ("1-7_tiny-engine_presence", "fine tag 1-7 'tiny-engine'"),
])
def test_unknown_taxonomy_keys(tmp_path, column, message):
    rows = [_row("train", 1, "a.wav", 1, **{column: 1})]
    with pytest.raises(DataError, match=message):
        UST(write_root(tmp_path, rows))


def test_bad_presence_value_names_file_and_line(tmp_path):
    rows = [_row("train", 1, "a.wav", 1, present=[1]), _row("train", 1, "b.wav", 1)]
    rows[1]["3_non-machinery-impact_presence"] = 2
    write_root(tmp_path, rows)
    with pytest.raises(DataError, match=r"annotations.csv line 3: 3_non-machinery-impact_presence is '2'"):
        UST(tmp_path)
    lenient = UST(tmp_path, strict=False)
    assert [c.audio_filename for c in lenient.clips] == ["a.wav"] and len(lenient.row_problems) == 1


def test_missing_pieces(tmp_path):
    with pytest.raises(DataError, match="taxonomy not found"):
        UST(tmp_path)
    (tmp_path / "dcase-ust-taxonomy.yaml").write_text("coarse: {1: engine}\nfine: {2: {1: x}}\n")
    with pytest.raises(DataError, match="coarse key 2"):
        UST(tmp_path)
    rows = [_row("train", 1, "a.wav", 1)]
    del rows[0]["8_dog_presence"]
    with pytest.raises(DataError, match="no presence column for coarse class.*8_dog_presence"):
        UST(write_root(tmp_path, rows))


def test_data_check_lists_problems(tmp_path, capsys):
    rows = [_row("train", 1, "a.wav", 1, present=[1]), _row("validate", 2, "b.wav", 0, present=[1]),
            _row("train", 1, "missing.wav", 1, present=[1])]
    rows.append(dict(rows[0], **{"audio_filename": "c.wav", "2_machinery-impact_presence": "yes"}))
    write_root(tmp_path, rows)
    report = tmp_path / "check.json"
    assert cli_main.main(["data", "check", str(tmp_path), "--report", str(report)]) == 2
    out = capsys.readouterr().out
    assert "annotations.csv line 5: 2_machinery-impact_presence is 'yes'" in out
    assert "missing:" in out and "missing.wav" in out and "line 4" in out
    assert "no positive file: train: dog" in out and "no positive file: validate: music" in out
    found = json.loads(report.read_text())
    assert found["clips_per_split"] == {"train": 2, "validate": 1, "test": 0}
    assert found["missing_audio"] == ["missing.wav"]


def tiny_ust_cfg(seed=3, **ust):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["seed"] = seed
    cfg["ust"].update(clips_per_sensor=2, clip_seconds=1.0, **ust)
    return cfg


def test_demo_ust_layout_sensors_and_annotators(tmp_path):
    cfg = tiny_ust_cfg()
    card = ust_demo.write_ust(tmp_path / "ust", cfg)
    ds = UST(tmp_path / "ust")
    n = cfg["ust"]["sensors"] * 2
    assert len(ds) == card["n_clips"] == n and not ds.missing and not ds.check_audio()
    train, val = ds.clips_in_split("train"), ds.clips_in_split("validate")
    assert len(val) == 2 * cfg["ust"]["validate_sensors"]
    # Split by sensor: no sensor in both splits; ≥ 6 sensors by default.
    assert not {c.sensor_id for c in train} & {c.sensor_id for c in val}
    assert cfg["ust"]["sensors"] >= 6
    # Three crowd rows per clip; the verified row on validate only.
    assert all(c.n_annotators == 3 for c in ds.clips)
    assert all(c.verified is not None for c in val) and all(c.verified is None for c in train)
    info = sf.info(str(val[0].path))
    assert info.samplerate in (44100, 48000) and info.channels == 1 and info.frames == info.samplerate
    with open(ds.annotations_path, newline="") as fh:
        header = next(csv.reader(fh))
    assert "1-X_engine-of-uncertain-size_presence" in header and "8-1_dog-barking-whining_proximity" in header
    # The verified rows are the planned sources exactly.
    plan = {r["audio_filename"]: r["sources"] for r in ust_demo.plan_ust(cfg)}
    for clip in val:
        assert clip.verified == tuple(int(c in plan[clip.audio_filename]) for c in ust_demo.COARSE)


def test_demo_ust_is_deterministic(tmp_path):
    ust_demo.write_ust(tmp_path / "a", tiny_ust_cfg())
    ust_demo.write_ust(tmp_path / "b", tiny_ust_cfg())
    ust_demo.write_ust(tmp_path / "c", tiny_ust_cfg(seed=4))
    for name in ["annotations.csv", "audio/01_000000.wav"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_default_demo_ust_has_every_class_in_both_splits():
    # Plan only (no audio): the default set must give each class positives in train and validate.
    rows = ust_demo.plan_ust(copy.deepcopy(DEFAULTS))
    for split in ("train", "validate"):
        for c in ust_demo.COARSE:
            assert any(r["split"] == split and c in r["sources"] for r in rows), (split, c)
    # The demo budget: 10-s clips at hop 1 s (L3E framing: 10 windows each) stay within 600 teacher windows.
    assert len(rows) * 10 <= 600
