"""Sensor-style upstream sampling (docs/PROTOCOL.md §3.1): per sensor, per day/week/month stream, the published allocation."""
import re

import numpy as np
import pytest

from sea_tf import sampling
from sea_tf.errors import DataError, ReduceError
from sea_tf.sensors import read_sensor_manifest
from sea_tf.shards import write_table
from stage_args_support import settings

DAY = 86400
T0 = 1546300800   # 2019-01-01 00:00 UTC (day 001, ISO week 01, month 01)


@pytest.fixture(scope="module")
def sensor_shards(tmp_path_factory):
    """3 sensors; sensor a records on days 1 and 2 (40 rows each), b on day 1 (40) and day 3 (4), c on day 9 (40)."""
    out = tmp_path_factory.mktemp("streams")
    plan = [("a", 0, 40), ("a", 1, 40), ("b", 0, 40), ("b", 2, 4), ("c", 8, 40)]
    rows, lines = [], ["file,sensor_id,timestamp"]
    for i, (sensor, day, n) in enumerate(plan):
        name = f"{sensor}/rec{i}.wav"
        lines.append(f"{name},{sensor},{T0 + day * DAY + 3600}")
        rows += [name] * n
    rng = np.random.default_rng(0)
    write_table(out, {"embedding": rng.normal(size=(len(rows), 8)).astype(np.float32),
                      "loudness_db": rng.normal(-30, 5, len(rows)).astype(np.float32),
                      "source": np.array(rows, dtype=object)}, {"name": "t"}, shard_rows=64)
    manifest = out / "sensors.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return out, manifest, np.array(rows, dtype=object)


def test_published_allocation_and_dropped_timeframes(sensor_shards, tmp_path):
    shards, manifest, sources = sensor_shards
    # m = 30 over 3 sensors: 10 each; a: 2 days -> 5 per day; b: 2 days -> 5 per day, day 3 has 4 rows -> dropped;
    # c: 1 day -> 10.
    index, card = sampling.sample_streams(shards, tmp_path, 30, manifest,
                                          **settings("sampling", of=sampling.sample_streams, timeframe="day",
                                                     strategy="dpp-quality", seed=1, progress=False))
    assert card["n_picked"] == len(index) == 5 + 5 + 5 + 10
    assert card["dropped"] == [{"sensor": "b", "timeframe": "003", "rows": 4, "needed": 5}]
    sensor_of = np.array([s.split("/")[0] for s in sources])
    assert {s: int((sensor_of[index] == s).sum()) for s in "abc"} == {"a": 10, "b": 5, "c": 10}
    again, _ = sampling.sample_streams(shards, tmp_path / "again", 30, manifest,
                                       **settings("sampling", of=sampling.sample_streams, timeframe="day",
                                                  strategy="dpp-quality", seed=1, progress=False))
    assert np.array_equal(index, again)
    # Week: all of a's and b's days fall in ISO week 01 -> one stream each; c's day 9 is week 02.
    _, week = sampling.sample_streams(shards, tmp_path / "w", 30, manifest,
                                      **settings("sampling", of=sampling.sample_streams, timeframe="week",
                                                 strategy="random", progress=False))
    assert [(s["sensor"], s["timeframe"], s["picked"]) for s in week["streams"]] == [("a", "01", 10), ("b", "01", 10),
                                                                                    ("c", "02", 10)]


def test_manifest_problems(sensor_shards, tmp_path):
    shards, manifest, _ = sensor_shards
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="does not name 1 source file"):
        sampling.sample_streams(shards, tmp_path / "x", 10, partial,
                                **settings("sampling", of=sampling.sample_streams, progress=False))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,sensor_id,timestamp\nx.wav,a,yesterday\n")
    with pytest.raises(DataError, match="line 2: timestamp 'yesterday'"):
        read_sensor_manifest(bad)
    iso = tmp_path / "iso.csv"
    iso.write_text("file,sensor_id,timestamp\nx.wav,a,2019-03-04T23:30:00-05:00\n")
    # An explicit offset is honoured: 23:30 in New York is 04:30 UTC the next day (day 064).
    assert sampling.stream_keys(["dir/x.wav"], read_sensor_manifest(iso), timeframe="day",
                                timezone="UTC")[1].tolist() == ["064"]
    with pytest.raises(ReduceError, match="fewer rows than its share"):
        sampling.sample_streams(shards, tmp_path / "y", 3000, manifest,
                                **settings("sampling", of=sampling.sample_streams, progress=False))


# ------------------------------------------------------------------------------------------------
# The whole path: `sea-tf teacher-embed --sensor-manifest` records sensor and recording time in the
# shards, and `sea-tf sample --group-by sensor-day` draws the published streams from them.

@pytest.fixture(scope="module")
def sensor_audio(tmp_path_factory):
    """5 recordings at 8 kHz: sensor a on days 1 and 2 (4.5 s, 9 windows each), b on day 1 (9) and day 3 (2.5 s: 5).

    Also the sensor manifest (b's day-1 time as ISO 8601 with an offset that lands on day 001 in UTC).
    """
    import soundfile as sf

    root = tmp_path_factory.mktemp("sensor_audio")
    rng = np.random.default_rng(3)
    plan = [("a", "a/rec0.wav", 0, 4.5), ("a", "a/rec1.wav", 1, 4.5), ("b", "b/rec2.wav", 0, 4.5),
            ("b", "b/rec3.wav", 2, 2.5), ("a", "a/rec4.wav", 1, 2.5)]
    lines = ["file,sensor_id,timestamp"]
    for sensor, name, day, seconds in plan:
        (root / sensor).mkdir(exist_ok=True)
        sf.write(root / name, (0.1 * rng.normal(size=int(8000 * seconds))).astype(np.float32), 8000)
        when = T0 + day * DAY + 7200
        lines.append(f"{name},{sensor},{'2019-01-01T01:00:00-01:00' if name == 'b/rec2.wav' else when}")
    manifest = tmp_path_factory.mktemp("sensor_csv") / "sensors.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return root, manifest


@pytest.fixture(scope="module")
def sensor_run(tmp_path_factory, sensor_audio):
    from sea_tf.cli.main import main

    root, manifest = sensor_audio
    out = tmp_path_factory.mktemp("sensor_shards")
    # sea-512 at 8 kHz: a cheap stand-in teacher (seeded, untrained); 512-d as the L3 teacher.
    assert main(["teacher-embed", "--input", str(root), "--out", str(out), "--teacher", "sea-512",
                 "--sensor-manifest", str(manifest), "--shard-rows", "16", "--batch-size", "16", "--no-progress"]) == 0
    return out


def test_teacher_embed_records_sensor_and_time(sensor_run):
    from sea_tf.shards import SENSOR_KEYS, ShardSet

    shards = ShardSet(sensor_run)
    assert set(SENSOR_KEYS) <= set(shards.columns) and shards.embedding_size == 512
    rows = np.arange(shards.n_rows)
    sources, sensors = shards.read("source", rows), shards.read("sensor_id", rows)
    times = shards.read("recording_time", rows)
    # 4.5 s -> 1 + ceil((4.5 + 0.5 - 1) / 0.5) = 9 centred windows, 2.5 s -> 5: 9 + 9 + 9 + 5 + 5 rows.
    assert shards.n_rows == 37
    assert sensors.tolist() == [s.split("/")[0] for s in sources]
    day1_b = np.flatnonzero(sources == "b/rec2.wav")
    np.testing.assert_array_equal(times[day1_b], T0 + 7200)     # 01:00 at UTC−1 is 02:00 UTC
    np.testing.assert_array_equal(times[sources == "a/rec4.wav"], T0 + DAY + 7200)


def test_sample_by_sensor_day_from_the_shards(sensor_run, tmp_path):
    from sea_tf.cli.main import main

    # m = 12 over 2 sensors: 6 each. a has days 001 (9 rows) and 002 (14): 3 per day; b has days 001 (9)
    # and 003 (5): 3 per day. m = 24: 12 each, 6 per day, b's day 003 (5 rows) dropped.
    for m, want, dropped in ((12, {("a", "001"): 3, ("a", "002"): 3, ("b", "001"): 3, ("b", "003"): 3}, []),
                             (24, {("a", "001"): 6, ("a", "002"): 6, ("b", "001"): 6}, [("b", "003", 5, 6)])):
        out = tmp_path / f"m{m}"
        assert main(["sample", "--shards", str(sensor_run), "--m", str(m), "--group-by", "sensor-day",
                     "--strategy", "dpp-quality", "--out", str(out), "--no-progress"]) == 0
        index, card = sampling.load_sample(out)
        assert card["group_by"] == "sensor-day" and card["sensors_from"] == "shards"
        assert {(s["sensor"], s["timeframe"]): s["picked"] for s in card["streams"]} == want
        assert [(d["sensor"], d["timeframe"], d["rows"], d["needed"]) for d in card["dropped"]] == dropped
        from sea_tf.shards import ShardSet
        shards = ShardSet(sensor_run)
        keys = list(zip(shards.read("sensor_id", index), sampling.timeframes(shards.read("recording_time", index),
                                                                                          timezone="UTC")))
        assert {k: keys.count(k) for k in set(keys)} == want and len(set(index.tolist())) == len(index)


def test_sensor_manifest_is_part_of_the_resume_check(sensor_run, sensor_audio, tmp_path):
    from sea_tf.errors import OutputError
    from sea_tf.teacher import extract_files

    root, manifest = sensor_audio
    before = (sensor_run / "manifest-0of1.json").read_bytes()
    moved = tmp_path / "moved.csv"       # same rows elsewhere: resumes (nothing left to do)
    moved.write_text(manifest.read_text())
    summary = extract_files(root, sensor_run, "sea-512",
                            **settings("teacher", shard_rows=16, batch_size=16, progress=False, sensor_manifest=moved))
    assert summary["complete"] and summary["windows_this_run"] == 0
    other = tmp_path / "other.csv"       # b/rec3.wav moved to sensor c
    other.write_text(manifest.read_text().replace("b/rec3.wav,b,", "b/rec3.wav,c,"))
    for kw in ({"sensor_manifest": other}, {}):
        with pytest.raises(OutputError, match="sensor_manifest_sha256"):
            extract_files(root, sensor_run, "sea-512",
                          **settings("teacher", shard_rows=16, batch_size=16, progress=False, **kw))
    assert (sensor_run / "manifest-0of1.json").read_bytes() == before


@pytest.mark.parametrize("text, message", [
    ("file,sensor_id,timestamp\na/rec0.wav,a,1546300800\n",
     r"sensors\.csv: no row for 4 input file\(s\), e\.g\. a/rec1\.wav"),
    ("file,sensor_id,timestamp\na/rec0.wav,a,1546300800\nb/rec2.wav,b,noon\n",
     r"sensors\.csv line 3: timestamp 'noon'"),
    ("file,sensor,timestamp\n", r"sensors\.csv line 1: missing column\(s\) sensor_id; unknown column\(s\) sensor"),
    ("file,sensor_id,timestamp,site\n", r"sensors\.csv line 1: unknown column\(s\) site"),
    ("file,sensor_id,timestamp\na/rec0.wav,,1546300800\n", r"sensors\.csv line 2: expected 3 non-empty cells"),
    ("file,sensor_id,timestamp\na/rec0.wav,a,1546300800\na/rec0.wav,b,1546300800\n",
     r"sensors\.csv line 3: a/rec0\.wav is listed again"),
])
def test_bad_sensor_manifest_is_one_line_naming_file_and_line(sensor_audio, tmp_path, capsys, text, message):
    from sea_tf.cli.main import main

    root, _ = sensor_audio
    bad = tmp_path / "sensors.csv"
    bad.write_text(text)
    assert main(["teacher-embed", "--input", str(root), "--out", str(tmp_path / "o"), "--teacher", "sea-512",
                 "--sensor-manifest", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "o").exists()   # refused before any work


def test_shards_without_sensor_columns(sensor_shards, tmp_path):
    """Shards embedded without a manifest (and manifests older than ``columns``) read; sensor-day says what to do."""
    import json

    shards_dir, manifest, _ = sensor_shards
    old = tmp_path / "old"
    old.mkdir()
    for path in shards_dir.glob("shard-*.h5"):
        (old / path.name).write_bytes(path.read_bytes())
    record = json.loads((shards_dir / "manifest-0of1.json").read_text())
    del record["columns"]
    (old / "manifest-0of1.json").write_text(json.dumps(record))
    from sea_tf.shards import ShardSet
    shards = ShardSet(old)
    assert "sensor_id" not in shards.columns and shards.read("source", [0]).tolist() == ["a/rec0.wav"]
    with pytest.raises(DataError, match="carry no sensor_id"):
        shards.read("sensor_id", [0])
    with pytest.raises(DataError, match="carry no sensor ids.*--sensor-manifest CSV"):
        sampling.sample_shards(old, tmp_path / "s", 10, **settings("sampling", group_by="sensor-day", progress=False))
    # The manifest beside them works instead, and gives what sample_streams gives.
    index, card = sampling.sample_shards(old, tmp_path / "s", 30,
                                         **settings("sampling", group_by="sensor-day", seed=1, progress=False,
                                                    sensor_manifest=manifest))
    direct, _ = sampling.sample_streams(old, tmp_path / "d", 30, manifest,
                                        **settings("sampling", of=sampling.sample_streams, timeframe="day", seed=1,
                                                   progress=False))
    assert np.array_equal(index, direct) and card["sensors_from"] == str(manifest)
