"""teacher-embed: aligned rows, byte-identical resume after a kill, exact --shard partition, bad input."""
import importlib
import json
import threading

import numpy as np
import pytest
import soundfile as sf

from sea_tf import shards as shards_mod
from sea_tf.teacher import extract_files, list_inputs, parse_shard, resolve_job
from sea_tf.audio import frame_audio, resample
from sea_tf.errors import ConfigError, DataError, OutputError
from sea_tf.shards import ShardSet
from stage_args_support import settings
from tolerance_support import forward_atol, ulp32

# The module, whose globals extract_files() reads (the package's ``extract`` is the function).
extract_module = importlib.import_module("sea_tf.teacher.extract")

RATES = [8000, 16000, 22050, 44100]


@pytest.fixture(scope="module")
def teacher():
    """A small stand-in teacher (the SEA-64 student architecture at 8 kHz, seeded, untrained)."""
    from sea_tf.models import load_model
    return load_model("sea-64", seed=1)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """9 files (mono and stereo, 8–44.1 kHz, 0.4–4.6 s) in two folders, plus one unreadable file."""
    root = tmp_path_factory.mktemp("audio")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        sr = RATES[i % 4]
        n = int(sr * (0.4 + 0.525 * i))
        level = 10 ** (-(10 + 4 * i) / 20)
        x = (level * rng.normal(size=(n, 2) if i % 3 == 0 else n)).astype(np.float32)
        sf.write(root / ("sub" if i % 2 else ".") / f"clip{i}.wav", x, sr)
    (root / "broken.wav").write_bytes(b"RIFF not really audio")
    return root


def _run(audio_dir, out, teacher, **kw):
    kw = {"shard_rows": 16, "batch_size": 8, "progress": False, **kw}
    return extract_files(audio_dir, out, teacher, **settings("teacher", **kw))


@pytest.fixture(scope="module")
def full(tmp_path_factory, audio_dir, teacher):
    out = tmp_path_factory.mktemp("full")
    summary = _run(audio_dir, out, teacher)
    return out, summary


def test_rows_hold_aligned_teacher_and_student_windows(full, audio_dir, teacher):
    out, summary = full
    assert summary["complete"] and [f["source"] for f in summary["failed"]] == ["broken.wav"]
    shards = ShardSet(out)
    assert shards.n_rows == summary["n_rows"] > 40 and shards.student_sample_rate == 8000
    assert shards.embedding_size == 64 and len(shards.shards) == -(-shards.n_rows // 16)
    sources = shards.read("source", np.arange(shards.n_rows))
    assert sorted(set(sources)) == [f"clip{i}.wav" for i in range(0, 9, 2)] + [f"sub/clip{i}.wav" for i in range(1, 9, 2)]
    # one source: its rows are the centred 0.5-s-hop windows of the file resampled once to 8 kHz
    rows = np.flatnonzero(sources == "sub/clip7.wav")
    x, sr = sf.read(audio_dir / "sub" / "clip7.wav", dtype="float32")
    frames, ts = frame_audio(resample(x, sr, 8000), 8000, hop_size=0.5)
    assert len(rows) == len(ts) == 9 and np.array_equal(np.diff(rows), np.ones(8))
    np.testing.assert_array_equal(shards.read("timestamp", rows), ts)
    np.testing.assert_array_equal(shards.read("audio", rows), frames)
    # Written batch by batch, recomputed here in one batch: only the sum order differs.
    want = teacher.embed_frames(frames)
    np.testing.assert_allclose(shards.read("embedding", rows), want, rtol=0, atol=forward_atol(teacher.keras, want))
    loud = shards.read("loudness_db", rows)
    rms_db = 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)))
    # The teacher runs at 8 kHz here, so the same windows: float64 sums, then one float32 rounding.
    np.testing.assert_allclose(loud, rms_db, rtol=0, atol=ulp32(np.abs(rms_db).max()) / 2)
    assert np.all(shards.read("label", rows) == -1)
    manifest = json.loads((out / "manifest-0of1.json").read_text())
    assert manifest["teacher_card"]["name"] == teacher.card["name"] and manifest["complete"]


def test_resume_after_kill_is_byte_identical(full, audio_dir, teacher, tmp_path, monkeypatch):
    reference, summary = full
    real_write, calls = shards_mod.write_h5, []

    def dying_write(path, arrays, **kw):
        calls.append(path)
        if len(calls) == 3:  # the process "dies" while writing its third shard
            raise KeyboardInterrupt
        return real_write(path, arrays, **kw)
    monkeypatch.setattr(extract_module, "write_h5", dying_write)
    with pytest.raises(KeyboardInterrupt):
        _run(audio_dir, tmp_path, teacher)
    monkeypatch.setattr(extract_module, "write_h5", real_write)
    manifest = json.loads((tmp_path / "manifest-0of1.json").read_text())
    assert len(manifest["shards"]) == 2 and not manifest["complete"]
    resumed = _run(audio_dir, tmp_path, teacher)
    assert resumed["windows_this_run"] == summary["n_rows"] - 32  # did not redo the two finished shards
    names = sorted(p.name for p in reference.glob("shard-*.h5")) + ["manifest-0of1.json"]
    assert sorted(p.name for p in tmp_path.glob("shard-*.h5")) == names[:-1]
    for name in names:
        assert (tmp_path / name).read_bytes() == (reference / name).read_bytes(), name
    again = _run(audio_dir, tmp_path, teacher)  # a finished job: nothing to do
    assert again["windows_this_run"] == 0


def test_shard_jobs_partition_the_inputs_exactly(full, audio_dir, teacher, tmp_path):
    reference, _ = full
    for k in range(3):
        _run(audio_dir, tmp_path / "jobs", teacher, shard=f"{k}/3")
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
           "SLURM_ARRAY_TASK_MAX": "2"}  # task 2 of `sbatch --array=0-2`
    _run(audio_dir, tmp_path / "slurm", teacher, environ=env)
    assert (tmp_path / "slurm" / "shard-2of3-00000.h5").read_bytes() == \
        (tmp_path / "jobs" / "shard-2of3-00000.h5").read_bytes()
    whole, jobs = ShardSet(reference), ShardSet(tmp_path / "jobs")
    assert jobs.n_rows == whole.n_rows
    key = lambda s: list(zip(s.read("source", np.arange(s.n_rows)), s.read("timestamp", np.arange(s.n_rows))))  # noqa: E731
    assert len(set(key(jobs))) == jobs.n_rows and sorted(key(jobs)) == sorted(key(whole))
    assert [m["job"] for m in jobs.manifests] == ["0of3", "1of3", "2of3"]
    sources = [set(jobs.read_shard(i, "source")) for i in range(len(jobs.shards))]
    owners = {}
    for info, srcs in zip(jobs.shards, sources):
        for s in srcs:
            owners.setdefault(s, set()).add(info.manifest.name)
    assert all(len(v) == 1 for v in owners.values())  # each file embedded by exactly one job


def test_refuses_to_resume_with_other_settings(full, audio_dir, teacher):
    reference, _ = full
    before = (reference / "manifest-0of1.json").read_bytes()
    with pytest.raises(OutputError, match=r"hop_size: 0\.5 there vs 0\.25 now"):
        _run(audio_dir, reference, teacher, hop_size=0.25)
    from sea_tf.models import load_model
    with pytest.raises(OutputError, match="different teacher"):
        _run(audio_dir, reference, load_model("sea-64", seed=2))
    assert (reference / "manifest-0of1.json").read_bytes() == before


def test_bad_inputs(tmp_path, teacher):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files found"):
        _run(tmp_path / "empty", tmp_path / "o", teacher)
    with pytest.raises(DataError, match="no such file or directory"):
        _run(tmp_path / "missing", tmp_path / "o", teacher)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.wav").write_bytes(b"junk")
    with pytest.raises(DataError, match="none of the 1 files"):
        _run(tmp_path / "junk", tmp_path / "o", teacher)
    with pytest.raises(ConfigError, match="K/N"):
        parse_shard("3")
    with pytest.raises(ConfigError, match="out of range"):
        parse_shard("3/3")
    # K is the absolute task id, and an array 1-8 states no N (more cases: tests/test_array_jobs.py)
    with pytest.raises(ConfigError, match="pass --shard-count N"):
        resolve_job(environ={"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
                                           "SLURM_ARRAY_TASK_MAX": "8", "SLURM_ARRAY_TASK_COUNT": "8"})


def test_file_list_and_us8k_inputs(audio_dir, teacher, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two files\n{audio_dir / 'clip0.wav'}\n\n{audio_dir / 'sub' / 'clip1.wav'}\n")
    kind, root, files = list_inputs(listing, recursive=True)
    assert kind == "list" and len(files) == 2
    # a tiny UrbanSound8K layout: labels and folds are recorded per row
    us = tmp_path / "us8k"
    (us / "metadata").mkdir(parents=True)
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, (fold, cls, name) in enumerate([(1, 3, "dog_bark"), (2, 7, "jackhammer")]):
        (us / "audio" / f"fold{fold}").mkdir(parents=True)
        fname = f"{100 + i}-{cls}-0-0.wav"
        sf.write(us / "audio" / f"fold{fold}" / fname, np.full(12000, 0.1, np.float32), 8000)
        rows.append(f"{fname},{100 + i},0,1.5,1,{fold},{cls},{name}")
    (us / "metadata" / "UrbanSound8K.csv").write_text("\n".join(rows) + "\n")
    pytest.importorskip("sea_tf.data.us8k")
    _run(us, tmp_path / "us_out", teacher)
    shards = ShardSet(tmp_path / "us_out")
    labels, folds = shards.read("label", np.arange(shards.n_rows)), shards.read("fold", np.arange(shards.n_rows))
    assert sorted(set(zip(labels.tolist(), folds.tolist()))) == [(3, 1), (7, 2)]
    assert shards.n_rows == 2 * 3  # 1.5 s + 0.5 s centring pad → 1 + ceil((2 - 1) / 0.5) = 3 windows each


def test_decoding_overlaps_inference(audio_dir, teacher, tmp_path, monkeypatch):
    """Files are decoded on worker threads, not the thread running the teacher."""
    threads = set()
    real = extract_module._decode

    def spy(*args, **kw):
        threads.add(threading.current_thread().name)
        return real(*args, **kw)
    monkeypatch.setattr(extract_module, "_decode", spy)
    _run(audio_dir, tmp_path, teacher, decode_workers=2)
    assert threads and all(name.startswith("decode") for name in threads)


def test_cli_runs_a_job_and_reports_errors_in_one_line(audio_dir, tmp_path, capsys):
    from sea_tf.cli.main import main
    out = tmp_path / "cli"
    assert main(["teacher-embed", "--input", str(audio_dir), "--out", str(out), "--teacher", "sea-64",
                 "--shard", "0/2", "--shard-rows", "32", "--batch-size", "8", "--no-progress"]) == 0
    assert (out / "manifest-0of2.json").is_file() and (out / "teacher-embed-0of2.config.yaml").is_file()
    assert "broken.wav" in capsys.readouterr().out  # job 0 holds the unreadable file; the summary lists it
    (tmp_path / "empty").mkdir()
    assert main(["teacher-embed", "--input", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                 "--teacher", "sea-64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no audio files found" in err[0]


# ------------------------------------------------------------------------------------ cascade teachers
# A zoo model as the teacher (README, "A zoo model as teacher"): the input is 44.1 kHz, the teacher
# reads its own rate, and the shards must hold the *student's* rate — a teacher-rate mix-up must fail.

@pytest.fixture(scope="module")
def cd_audio(tmp_path_factory):
    """Two 44.1 kHz recordings (3.2 s and 2.1 s): a chirp and noise bursts."""
    root = tmp_path_factory.mktemp("cd")
    rng = np.random.default_rng(9)
    t = np.arange(int(3.2 * 44100)) / 44100
    sf.write(root / "chirp.wav", (0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.float32), 44100)
    bursts = rng.normal(size=int(2.1 * 44100)) * np.repeat(rng.uniform(0.01, 0.5, 21), 4410)[: int(2.1 * 44100)]
    sf.write(root / "bursts.wav", bursts.astype(np.float32), 44100)
    return root


def _check_cascade(cd_audio, out, teacher, student_sr):
    summary = _run(cd_audio, out, teacher, student_sample_rate=student_sr)
    assert summary["complete"] and not summary["failed"]
    shards = ShardSet(out)
    assert shards.student_sample_rate == student_sr
    audio = shards.read("audio", np.arange(shards.n_rows))
    assert audio.shape == (shards.n_rows, student_sr)          # student-rate windows, not teacher-rate
    sources = shards.read("source", np.arange(shards.n_rows))
    rows = np.flatnonzero(sources == "chirp.wav")
    x, sr = sf.read(cd_audio / "chirp.wav", dtype="float32")
    student_frames, _ = frame_audio(resample(x, sr, student_sr), student_sr, hop_size=0.5)
    teacher_frames, _ = frame_audio(resample(x, sr, teacher.sample_rate), teacher.sample_rate, hop_size=0.5)
    n = len(rows)
    np.testing.assert_array_equal(audio[rows], student_frames[:n])
    want = teacher.embed_frames(teacher_frames[:n])
    got = shards.read("embedding", rows)
    atol = forward_atol(teacher.keras, want)
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    # Negative control: the embedding of the neighbouring window is far outside that tolerance.
    assert np.abs(got[1:] - want[:-1]).max() > 100 * atol
    return shards


def _pairs_line_up(shards_dir, tmp_path, student_sr):
    """reduce fit/apply on the shards, then the distillation pairs: row i = (audio i, φ(embedding i))."""
    from sea_tf import reduce
    from sea_tf.distill import pairs as pairs_mod

    from sea_tf.sampling import sample_shards

    sample_shards(shards_dir, tmp_path / "sample", ShardSet(shards_dir).n_rows,
                  **settings("sampling", strategy="random", progress=False))
    reduce.fit_sample(shards_dir, tmp_path / "sample", tmp_path / "reducer",
                      **settings("reduce/fit", method="pca", d=4, quality=None, progress=False))
    reduce.apply_reducer(tmp_path / "reducer", shards_dir, tmp_path / "targets", **settings("reduce/apply", progress=False))
    pairs = pairs_mod.open_pairs(shards_dir, tmp_path / "targets", check_rows=3, seed=0, allow_partial=False)
    assert pairs.frame_samples == student_sr
    rows = np.arange(pairs.shards.n_rows)
    phi = reduce.Reducer.load(tmp_path / "reducer")
    np.testing.assert_allclose(pairs.shards.read("target", rows), phi.transform(pairs.shards.read("embedding", rows)),
                               rtol=1e-6, atol=1e-6)


def test_cascade_8k_teacher_teaches_an_8k_student_from_44k_audio(cd_audio, tmp_path, sea64_home):
    from sea_tf.models import load_model

    teacher = load_model("edgel3/sea-64")          # the published SEA-64 from the weights cache
    assert teacher.sample_rate == 8000 and teacher.card["weights"]["source"] != "untrained"
    _check_cascade(cd_audio, tmp_path / "shards", teacher, 8000)
    _pairs_line_up(tmp_path / "shards", tmp_path, 8000)


def test_cascade_48k_teacher_writes_8k_student_windows(cd_audio, tmp_path):
    from sea_tf.models.builders import build_student

    # A cheap 48 kHz stand-in teacher: the SEA-64 body on a 48 kHz front end (6x the 8 kHz n_dft and hop).
    teacher = build_student("sea-64", seed=2, sample_rate=48000, n_dft=6144, n_hop=960, fmax=24000.0)
    assert teacher.sample_rate == 48000
    _check_cascade(cd_audio, tmp_path / "shards", teacher, 8000)
    _pairs_line_up(tmp_path / "shards", tmp_path, 8000)
