"""The A-weighted level of each window (IEC 61672-1 A-curve on the window's spectrum), stored in the teacher
shards as ``dBA`` beside the unweighted ``loudness_db`` (docs/PROTOCOL.md §3.1)."""
import json

import numpy as np
import pytest
import soundfile as sf

from sea_tf.audio import window_loudness_db
from sea_tf.audio.weighting import a_weighting_db, window_dba
from sea_tf.errors import DataError
from sea_tf.shards import ShardSet
from stage_args_support import settings


@pytest.fixture(scope="module")
def tone_shards(tmp_path_factory):
    """Teacher shards of a 1 kHz and a 100 Hz tone (3 s each at the stand-in teacher's 8 kHz)."""
    from sea_tf.models import load_model
    from sea_tf.teacher import extract_files

    root = tmp_path_factory.mktemp("tones")
    sr = 8000                                   # the stand-in teacher's rate: no resampling
    t = np.arange(3 * sr) / sr
    audio = root / "audio"
    audio.mkdir()
    for f in (1000, 100):
        sf.write(audio / f"tone{f}.wav", (0.25 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr, subtype="FLOAT")
    out = root / "shards"
    with pytest.warns(Warning):
        teacher = load_model("sea-64", seed=1)
    extract_files(audio, out, teacher, **settings("teacher", shard_rows=16, batch_size=8, progress=False))
    return out


def old_shards(out, tmp_path):
    """A copy of ``out`` as an older run wrote it: its manifest lists no dBA column."""
    old = tmp_path / "old"
    old.mkdir()
    for path in out.glob("shard-*.h5"):
        (old / path.name).write_bytes(path.read_bytes())
    record = json.loads((out / "manifest-0of1.json").read_text())
    record["columns"] = [c for c in record["columns"] if c != "dBA"]
    (old / "manifest-0of1.json").write_text(json.dumps(record))
    return old


# IEC 61672-1 Table 3, A-weighting at the nominal octave-band frequencies; the nominal frequency names
# the exact base-10 one, 1000 · 10^(k/10) Hz (31.5 Hz is 31.62 Hz, 16 kHz is 15.85 kHz).
IEC_A = {-15: -39.4, -12: -26.2, -9: -16.1, -6: -8.6, -3: -3.2, 0: 0.0, 3: 1.2, 6: 1.0, 9: -1.1, 12: -6.6}


def test_a_curve_matches_the_iec_61672_table():
    exact = 1000.0 * 10.0 ** (np.array(list(IEC_A)) / 10.0)
    # The table rounds to 0.1 dB: the analytic curve is within half of that; 0.1 dB allows the rounding.
    np.testing.assert_allclose(a_weighting_db(exact), list(IEC_A.values()), atol=0.1)
    assert a_weighting_db([1000.0])[0] == pytest.approx(0.0, abs=1e-12)   # the 1 kHz normalisation
    assert a_weighting_db([0.0])[0] == -np.inf


def test_tone_levels_follow_the_curve():
    sr = 48000
    t = np.arange(sr) / sr
    # Whole periods in the 1-s window: each tone is one rfft bin, so the weighting is the curve's value there.
    tones = np.stack([0.5 * np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 100 * t)]).astype(np.float32)
    dba, db = window_dba(tones, sr), window_loudness_db(tones)
    # Both levels are float32 (≈ 1e-6 relative of ~10 dB); Parseval in float64 adds nothing visible.
    assert dba[0] == pytest.approx(db[0], abs=1e-4)
    assert dba[1] - db[1] == pytest.approx(a_weighting_db([100.0])[0], abs=1e-4)
    assert dba[1] - db[1] == pytest.approx(-19.1, abs=0.1)                    # IEC 61672 at 100 Hz
    assert window_dba(np.zeros((1, sr), np.float32), sr)[0] == pytest.approx(-120.0)
    with pytest.raises(Exception, match=r"frames \[T, n_samples\]"):
        window_dba(np.zeros(sr, np.float32), sr)


def test_teacher_shards_store_dba_beside_the_unweighted_level(tone_shards):
    shards = ShardSet(tone_shards)
    assert "dBA" in shards.columns
    rows = np.arange(shards.n_rows)
    source, stamp = shards.read("source", rows), shards.read("timestamp", rows)
    dba, db = shards.read("dBA", rows), shards.read("loudness_db", rows)
    inside = (stamp >= 0.5) & (stamp <= 2.5)     # windows wholly inside the 3-s file (centred, hop 0.5 s)
    one_k, hundred = inside & (source == "tone1000.wav"), inside & (source == "tone100.wav")
    assert one_k.sum() == hundred.sum() == 5
    np.testing.assert_allclose(dba[one_k], db[one_k], atol=1e-3)
    np.testing.assert_allclose(dba[hundred] - db[hundred], a_weighting_db([100.0])[0], atol=1e-3)


def test_shards_of_an_older_run_lack_dba_and_say_what_to_do(tone_shards, tmp_path):
    old = ShardSet(old_shards(tone_shards, tmp_path))
    assert "dBA" not in old.columns and old.read("loudness_db", [0]).shape == (1,)
    with pytest.raises(DataError, match="carry no A-weighted level dBA.*quality: rms-group"):
        old.read("dBA", [0])
