"""Sensor-style upstream sampling (docs/PROTOCOL.md §3.1): per sensor, per day/week/month stream, the published allocation."""
import numpy as np
import pytest

from sea_tf import sampling
from sea_tf.errors import DataError, ReduceError
from sea_tf.shards import write_table

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
    index, card = sampling.sample_streams(shards, tmp_path, 30, manifest, "day", strategy="dpp-quality", seed=1,
                                          progress=False)
    assert card["n_picked"] == len(index) == 5 + 5 + 5 + 10
    assert card["dropped"] == [{"sensor": "b", "timeframe": "003", "rows": 4, "needed": 5}]
    sensor_of = np.array([s.split("/")[0] for s in sources])
    assert {s: int((sensor_of[index] == s).sum()) for s in "abc"} == {"a": 10, "b": 5, "c": 10}
    again, _ = sampling.sample_streams(shards, tmp_path / "again", 30, manifest, "day", strategy="dpp-quality", seed=1,
                                       progress=False)
    assert np.array_equal(index, again)
    # Week: all of a's and b's days fall in ISO week 01 -> one stream each; c's day 9 is week 02.
    _, week = sampling.sample_streams(shards, tmp_path / "w", 30, manifest, "week", strategy="random", progress=False)
    assert [(s["sensor"], s["timeframe"], s["picked"]) for s in week["streams"]] == [("a", "01", 10), ("b", "01", 10),
                                                                                    ("c", "02", 10)]


def test_manifest_problems(sensor_shards, tmp_path):
    shards, manifest, _ = sensor_shards
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match="does not name 1 source file"):
        sampling.sample_streams(shards, tmp_path / "x", 10, partial, progress=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,sensor_id,timestamp\nx.wav,a,yesterday\n")
    with pytest.raises(DataError, match="line 2: timestamp 'yesterday'"):
        sampling.read_sensor_manifest(bad)
    iso = tmp_path / "iso.csv"
    iso.write_text("file,sensor_id,timestamp\nx.wav,a,2019-03-04T23:30:00-05:00\n")
    # An explicit offset is honoured: 23:30 in New York is 04:30 UTC the next day (day 064).
    assert sampling.stream_keys(["dir/x.wav"], sampling.read_sensor_manifest(iso), "day")[1].tolist() == ["064"]
    with pytest.raises(ReduceError, match="fewer rows than its share"):
        sampling.sample_streams(shards, tmp_path / "y", 3000, manifest, progress=False)
