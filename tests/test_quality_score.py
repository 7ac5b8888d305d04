"""The published quality score (docs/PROTOCOL.md §3.1): A-weighted level per window, ranked per sensor
within 2-hour slots of local time (``quality: dba-slot``, ``timezone``)."""
from datetime import date, datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy.stats import rankdata

from sea_tf import config, sampling
from sea_tf.errors import ConfigError, DataError
from sea_tf.sampling.quality import local_slots
from sea_tf.shards import ShardSet, write_table
from stage_args_support import settings

NEW_YORK = ZoneInfo("America/New_York")


def _utc(text):
    return datetime.fromisoformat(text).replace(tzinfo=dt_timezone.utc).timestamp()


def test_shards_without_dba_keep_the_old_score_and_refuse_the_new(tmp_path):
    # A table written without dBA is what an older teacher-embed run left (its manifest lists no dBA).
    rng = np.random.default_rng(0)
    write_table(tmp_path / "old", {"embedding": rng.normal(size=(40, 4)).astype(np.float32),
                                   "loudness_db": rng.normal(-30, 5, 40).astype(np.float32),
                                   "sensor_id": np.array(["a"] * 40, dtype=object),
                                   "recording_time": np.full(40, 1.7e9)}, {"name": "t"})
    kw = settings("sampling", strategy="loudness", group_by="all", progress=False)
    index, _ = sampling.sample_shards(tmp_path / "old", tmp_path / "rms", 4, **kw)
    assert len(index) == 4
    with pytest.raises(DataError, match="carry no A-weighted level dBA.*quality: rms-group"):
        sampling.sample_shards(tmp_path / "old", tmp_path / "dba", 4, **{**kw, "quality": "dba-slot"})


def test_slots_are_local_wall_clock_two_hours_across_daylight_saving():
    def slot(text):
        s = int(local_slots([_utc(text)], NEW_YORK)[0])           # local day since 1970-01-01 * 12 + hour // 2
        return str(date.fromordinal(date(1970, 1, 1).toordinal() + s // 12)), s % 12

    # Midnight in New York is 04:00 UTC in summer (EDT) and 05:00 UTC in winter (EST).
    assert slot("2024-07-01T03:59:59") == ("2024-06-30", 11)
    assert slot("2024-07-01T04:00:00") == ("2024-07-01", 0)
    assert slot("2024-01-15T04:30:00") == ("2024-01-14", 11)
    assert slot("2024-01-15T05:00:00") == ("2024-01-15", 0)
    # Clocks go back at 02:00 EDT on 3 Nov 2024: 01:30 happens twice, both times in slot 0 (00:00–02:00).
    assert slot("2024-11-03T05:30:00") == slot("2024-11-03T06:30:00") == ("2024-11-03", 0)
    assert slot("2024-11-03T07:30:00") == ("2024-11-03", 1)
    # Clocks go forward at 02:00 EST on 10 Mar 2024: 01:59:59 EST is slot 0, one second later is 03:00 EDT, slot 1.
    assert slot("2024-03-10T06:59:59") == ("2024-03-10", 0)
    assert slot("2024-03-10T07:00:00") == ("2024-03-10", 1)
    # In UTC the same instants fall into other slots: the zone is what moves them.
    assert int(local_slots([_utc("2024-07-01T04:00:00")], ZoneInfo("UTC"))[0]) % 12 == 2
    # Sensor-day streams: 23:30 in New York on 4 Mar is day 063 there and day 064 in UTC.
    late = [_utc("2019-03-05T04:30:00")]
    assert sampling.timeframes(late, timezone="America/New_York").tolist() == ["063"]
    assert sampling.timeframes(late, timezone="UTC").tolist() == ["064"]


@pytest.fixture(scope="module")
def day_and_night(tmp_path_factory):
    """Two sensors, each with a loud day (14:00–15:00 New York) and a quiet night (02:30–03:30) of 1-s windows."""
    out = tmp_path_factory.mktemp("dba")
    rng = np.random.default_rng(3)
    starts = {"day": _utc("2024-07-01T18:00:00"), "night": _utc("2024-07-01T06:30:00")}
    sources, sensors, times, stamps, dba = [], [], [], [], []
    for sensor in ("a", "b"):
        for part, base in (("day", -20.0), ("night", -60.0)):
            n = 40
            sources += [f"{sensor}/{part}.wav"] * n
            sensors += [sensor] * n
            times += [starts[part]] * n
            stamps.append(np.arange(n) * 90.0)            # 40 windows over an hour
            dba.append(base + rng.normal(0, 3, n))
    n_rows = len(sources)
    dba_all = np.concatenate(dba).astype(np.float32)
    write_table(out, {"embedding": rng.normal(size=(n_rows, 8)).astype(np.float32),
                      "loudness_db": dba_all + 2.0, "dBA": dba_all, "timestamp": np.concatenate(stamps),
                      "source": np.array(sources, dtype=object), "sensor_id": np.array(sensors, dtype=object),
                      "recording_time": np.array(times, dtype=np.float64)}, {"name": "t"}, shard_rows=32)
    return out


def test_a_night_window_ranks_within_its_own_slot_and_sensor(day_and_night):
    shards = ShardSet(day_and_night)
    rows = np.arange(shards.n_rows)
    q = sampling.dba_slot_quality(shards, None, timezone="America/New_York")
    # Independently: the (sensor, local date, hour // 2) of every window, rank_min / count within it.
    when = shards.read("recording_time", rows) + shards.read("timestamp", rows)
    local = [datetime.fromtimestamp(t, NEW_YORK) for t in when]
    keys = np.array([f"{s}|{d.date()}|{d.hour // 2}" for s, d in zip(shards.read("sensor_id", rows), local)])
    level = shards.read("dBA", rows)
    want = np.empty(len(rows))
    for key in set(keys):
        mine = keys == key
        want[mine] = rankdata(level[mine], method="min") / mine.sum()
    np.testing.assert_array_equal(q, want)
    night = np.array([s.endswith("night.wav") for s in shards.read("source", rows)])
    # The loudest window of each night slot scores 1, though every day window is far louder.
    for key in set(keys[night]):
        mine = keys == key
        assert q[mine][np.argmax(level[mine])] == 1.0
    # The old score ranks the whole group: night windows never reach the top half.
    old = sampling.loudness_rank(shards.read("loudness_db", rows), np.array([0, len(rows)]))
    assert old[night].max() <= 0.5 < q[night].max()


def test_dba_slot_drives_the_loudness_strategies(day_and_night, tmp_path):
    shards = ShardSet(day_and_night)
    q = sampling.dba_slot_quality(shards, None, timezone="America/New_York")
    kw = settings("sampling", strategy="loudness", group_by="all", seed=5, progress=False)
    new, card = sampling.sample_shards(day_and_night, tmp_path / "n", 40,
                                       **{**kw, "quality": "dba-slot", "timezone": "America/New_York"})
    old, old_card = sampling.sample_shards(day_and_night, tmp_path / "o", 40, **kw)
    assert card["quality"] == "dba-slot" and card["timezone"] == "America/New_York"
    assert "quality" not in old_card                               # earlier runs' cards stay as they were
    direct = sampling.select(shards.n_rows, 40, relevance=q, bounds=np.array([0, shards.n_rows]),
                             **settings("sampling", of=sampling.select, strategy="loudness", seed=5))
    np.testing.assert_array_equal(new, direct)
    night = np.flatnonzero([s.endswith("night.wav") for s in shards.read("source", np.arange(shards.n_rows))])
    # Night windows: half the pool; q ∝ rank gives them about half of the picks, the old score far fewer.
    assert np.isin(new, night).sum() > np.isin(old, night).sum()
    # Sensor streams rank the same way (each row's q from the whole pool's slots).
    streams, _ = sampling.sample_streams(day_and_night, tmp_path / "s", 20, None,
                                         **settings("sampling", of=sampling.sample_streams, strategy="loudness",
                                                    quality="dba-slot", timezone="America/New_York",
                                                    progress=False))
    assert len(streams) == 20


def test_unknown_timezone_or_quality_is_one_line_before_any_work(tmp_path):
    missing = tmp_path / "no-such-shards"
    for change, message in (({"timezone": "Mars/Olympus_Mons"}, "timezone 'Mars/Olympus_Mons' is not an IANA"),
                            ({"quality": "loudest"}, "quality must be one of rms-group, dba-slot")):
        cfg = config.load("sampling", shards=[str(missing)], out=str(tmp_path / "out"), **change)
        with pytest.raises(ConfigError, match=message) as caught:
            sampling.sample(cfg)                     # the shard directory does not exist: nothing was read
        assert "\n" not in str(caught.value)
        for group_by in ("window", "sensor-day"):
            with pytest.raises(ConfigError, match=message):
                sampling.sample_shards(missing, tmp_path / "x", 4,
                                       **settings("sampling", group_by=group_by, progress=False, **change))
    assert not (tmp_path / "out").exists()


def test_sonyc_presets_use_the_published_score():
    for preset in ("sampling/dpp-quality", "sampling/loudness"):
        cfg = config.load("sampling", preset)
        assert (cfg["quality"], cfg["timezone"]) == ("dba-slot", "America/New_York")
    cfg = config.load("sampling")
    assert (cfg["quality"], cfg["timezone"]) == ("rms-group", "UTC")   # earlier runs reproduce
