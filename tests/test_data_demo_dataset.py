"""The demo dataset generator: determinism, UrbanSound8K layout, variety, upstream, learnability."""
import copy
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sea_tf import config
from sea_tf.data import US8K
from sea_tf.presets import preset_names
from sea_tf.data.demo_dataset import (DEFAULTS, METADATA_COLUMNS, is_complete, make_demo_dataset, plan_clips,
                                     read_upstream_manifest)
from sea_tf.data.recipes import US8K_CLASSES
from sea_tf.errors import ConfigError, OutputError

ROOT = Path(__file__).resolve().parent.parent


def small_cfg(**overrides):
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(clips_per_class=3, seed=7)
    cfg["upstream"] = {**cfg["upstream"], "recordings": 3, "min_duration_s": 5.0, "max_duration_s": 6.0}
    cfg["ust"] = {**cfg["ust"], "clips_per_sensor": 1, "clip_seconds": 1.0}   # ust/: tests/test_ust_data.py
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    card = make_demo_dataset(small_cfg(), out=out)
    return out, card


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "data.config.yaml"}


def test_same_seed_gives_byte_identical_files(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    make_demo_dataset(small_cfg(), out=again)
    assert _hashes(out) == _hashes(again)
    # another seed draws other sources (cheap to check on the plan)
    assert {r["fsID"] for r in plan_clips(small_cfg(seed=8))}.isdisjoint({r["fsID"] for r in plan_clips(small_cfg())})


def test_exact_us8k_layout_and_metadata(small):
    out, card = small
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"fold{k}" for k in range(1, 11))
    with open(out / "metadata" / "UrbanSound8K.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == METADATA_COLUMNS == ["slice_file_name", "fsID", "start", "end", "salience",
                                                     "fold", "classID", "class"]
    assert len(rows) == 30 == card["n_clips"]
    wavs = {p.name: p for p in (out / "audio").rglob("*.wav")}
    assert len(wavs) == 30
    for row in rows:
        fs_id, class_id, occurrence, slice_index = row["slice_file_name"][:-4].split("-")
        assert (fs_id, class_id) == (row["fsID"], row["classID"]) and occurrence.isdigit() and slice_index.isdigit()
        assert US8K_CLASSES[int(row["classID"])] == row["class"]
        path = out / "audio" / f"fold{row['fold']}" / row["slice_file_name"]
        assert path.is_file()
        info = sf.info(str(path))
        assert abs(info.duration - (float(row["end"]) - float(row["start"]))) < 1e-3
        assert 0.3 - 1e-6 <= info.duration <= 4.0 + 1e-6
        assert row["salience"] in ("1", "2")
    # every clip of one source recording (fsID) sits in one fold, as in UrbanSound8K
    folds_of = {}
    for row in rows:
        folds_of.setdefault(row["fsID"], set()).add(row["fold"])
    assert all(len(folds) == 1 for folds in folds_of.values())
    assert len(folds_of) < len(rows)  # some sources give several slices


def test_default_plan_covers_every_fold_and_format():
    # the default size (planned, not rendered): every fold holds >= 6 classes, formats are mixed
    rows = plan_clips(DEFAULTS)
    assert len(rows) == 80 and Counter(r["class"] for r in rows) == {name: 8 for name in US8K_CLASSES}
    assert min(len({r["class"] for r in rows if r["fold"] == k}) for k in range(1, 11)) >= 6
    assert {r["sample_rate"] for r in rows} == {22050, 44100, 48000}
    assert {r["channels"] for r in rows} == {1, 2} and {r["subtype"] for r in rows} == {"PCM_16", "FLOAT"}
    durations = [r["n_samples"] / r["sample_rate"] for r in rows]
    assert min(durations) < 1.0 and max(durations) == 4.0 and 2.0 < np.mean(durations) < 3.5
    assert {r["salience"] for r in rows} == {1, 2}


def test_rendered_clips_are_clean_and_vary_in_level(small):
    out, card = small
    ds = US8K(out)
    levels = []
    for clip in ds.clips:
        audio, _ = sf.read(str(clip.path), dtype="float32")
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.0
        levels.append(20 * np.log10(np.sqrt(np.mean(audio ** 2))))
    assert -36 < min(levels) and max(levels) < -14 and np.ptp(levels) > 8  # loudness varies per clip
    assert len(card["sample_rates"]) >= 2 and len(card["channels"]) == 2


def test_upstream_is_separate_unlabelled_and_described(small, tmp_path):
    out, card = small
    rows = read_upstream_manifest(out / "upstream")
    assert [r["path"].name for r in rows] == sorted(p.name for p in (out / "upstream").glob("*.wav"))
    labelled = {p.name for p in (out / "audio").rglob("*.wav")}
    assert labelled.isdisjoint(r["path"].name for r in rows)
    for row in rows:
        info = sf.info(str(row["path"]))
        assert info.samplerate == row["sample_rate"] and info.channels == row["channels"]
        assert 5.0 - 1e-3 <= info.duration <= 6.0 + 1e-3 and abs(info.duration - row["duration"]) < 1e-3
    # labelled and upstream draws come from separate seed streams: changing one never changes the other
    fewer = tmp_path / "fewer"
    make_demo_dataset(small_cfg(upstream={**small_cfg()["upstream"], "recordings": 1}), out=fewer)
    assert (fewer / "metadata" / "UrbanSound8K.csv").read_bytes() == (out / "metadata" / "UrbanSound8K.csv").read_bytes()
    assert _hashes(fewer / "audio") == _hashes(out / "audio")
    assert (fewer / "upstream" / "scene-0000.wav").read_bytes() == (out / "upstream" / "scene-0000.wav").read_bytes()


def test_card_and_reuse_check(small):
    out, card = small
    assert json.loads((out / "card.json").read_text()) == card
    assert is_complete(out, small_cfg())
    assert not is_complete(out, small_cfg(seed=8))
    assert not is_complete(out.parent / "nothing", small_cfg())


def test_refuses_non_empty_out_and_keeps_it_intact(small, tmp_path):
    out, _ = small
    before = _hashes(out)
    with pytest.raises(OutputError, match="not empty; pass --overwrite"):
        make_demo_dataset(small_cfg(), out=out)
    assert _hashes(out) == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="refusing to delete"):
        make_demo_dataset(small_cfg(), out=foreign, overwrite=True)
    assert (foreign / "precious.txt").read_text() == "keep me"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a writable directory"):
        make_demo_dataset(small_cfg(), out=blocker / "data")
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_overwrite_replaces_a_demo_dataset(tmp_path):
    out = tmp_path / "d"
    cfg = small_cfg(clips_per_class=1, upstream={**small_cfg()["upstream"], "recordings": 0})
    make_demo_dataset(cfg, out=out)
    card = make_demo_dataset({**cfg, "seed": 9}, out=out, overwrite=True)
    assert card["seed"] == 9 and json.loads((out / "card.json").read_text())["seed"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging or old copies left


def test_bad_config_values():
    with pytest.raises(ConfigError, match="clips_per_class"):
        make_demo_dataset(small_cfg(clips_per_class=0), out="/nonexistent/never-written")
    with pytest.raises(ConfigError, match="sample_rate_weights"):
        make_demo_dataset(small_cfg(sample_rates=[22050]), out="/nonexistent/never-written")


@pytest.mark.parametrize("name", preset_names("data"))
def test_config_files_load_through_the_defaults(name):
    cfg = config.resolve(DEFAULTS, name)
    assert set(cfg) == set(DEFAULTS) and cfg["clips_per_class"] >= 1


def test_learnable_but_not_trivial(tmp_path):
    """A linear probe on mean log-mel energies is far above chance but far from perfect."""
    from sea_tf.data.probe import linear_probe_accuracy, mean_logmel_features
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(clips_per_class=10, sample_rates=[22050], sample_rate_weights=[1.0])
    cfg["upstream"]["recordings"] = 0
    cfg["ust"]["clips_per_sensor"] = 0
    make_demo_dataset(cfg, out=tmp_path / "d")
    ds = US8K(tmp_path / "d")
    feats = mean_logmel_features(ds.clips, sr=22050)
    result = linear_probe_accuracy(feats, [c.class_id for c in ds.clips], [c.fold for c in ds.clips],
                                   seed=0)
    assert 0.3 < result["pooled_accuracy"] < 0.9, result["pooled_accuracy"]
