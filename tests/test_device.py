"""The board-side harness (device/): numbers against Keras, bad artifacts, audio, the bench CLI.

The bench runs in a subprocess where importing tensorflow, tf_keras, keras or sea_tf raises, which
proves device/ needs only numpy, soundfile and a TFLite interpreter.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import device_support
from device import audio as dev_audio
from device.errors import ArtifactError, DeviceWarning
from device.runner import load_artifact
from device_support import blocked_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def arts(device_artifacts):
    return device_artifacts  # conftest: built once per run, read only


@pytest.fixture(scope="session")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("device_wavs")
    return [device_support.write_tone_wav(d / "tone_8k.wav", sr=8000, seconds=2.5, freq=440),
            device_support.write_tone_wav(d / "tone_44k.wav", sr=44100, seconds=1.7, freq=1200, channels=2)]


def run_bench(args, tmp_path, extra_blocked=""):
    env = blocked_env(tmp_path, extra_blocked)
    proc = subprocess.run([sys.executable, "-m", "device.bench", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    log = tmp_path / "blocked.log"
    return proc, (log.read_text().split() if log.exists() else [])


# -- runner: numbers ---------------------------------------------------------------------------

def test_fp32_embeddings_match_keras(arts):
    emb = load_artifact(arts["emb_fp32"])
    assert (emb.kind, emb.sample_rate, emb.frame_samples, emb.mode) == ("embedding", 8000, 8000, "fp32")
    out = emb.embed_frames(arts["frames"])
    assert out.shape == (24, arts["dim"]) and out.dtype == np.float32
    np.testing.assert_allclose(out, arts["ref_emb"], rtol=1e-4, atol=1e-5 * np.abs(arts["ref_emb"]).max())


def test_int8_embeddings_close_to_keras(arts):
    emb = load_artifact(arts["emb_int8"])
    assert np.dtype(emb._in["dtype"]) == np.int8  # full-int8 I/O: quantization done by the harness
    out, ref = emb.embed_frames(arts["frames"]), arts["ref_emb"]
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel < 0.1, rel
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.98


def test_classifier_probabilities(arts):
    cls = load_artifact(arts["cls_fp32"])
    assert cls.kind == "classifier" and cls.classes == device_support.CLASSES
    probs = cls.classify(arts["ref_emb"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, arts["ref_probs"], atol=1e-5)


def test_missing_sidecar_runs_with_warning(arts, tmp_path):
    bare = tmp_path / "bare.tflite"
    shutil.copy(arts["emb_fp32"], bare)
    with pytest.warns(DeviceWarning, match="no metadata sidecar"):
        emb = load_artifact(bare)
    assert (emb.sample_rate, emb.frame_samples, emb.frontend_in_model) == (8000, 8000, True)
    np.testing.assert_allclose(emb.embed_frames(arts["frames"][:3]), arts["ref_emb"][:3], rtol=1e-4, atol=1e-4)


def test_checksum_mismatch_is_refused(arts, tmp_path):
    model = tmp_path / "m.fp32.tflite"
    shutil.copy(arts["emb_fp32"], model)
    meta = json.loads(Path(arts["emb_fp32"]).with_suffix(".json").read_text())
    meta["sha256"] = "0" * 64
    model.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="does not match"):
        load_artifact(model)


def test_wrong_window_length_is_an_error(arts):
    emb = load_artifact(arts["emb_fp32"])
    with pytest.raises(ArtifactError, match=r"\[N, 8000\]"):
        emb.embed_frames(np.zeros((2, 4000), np.float32))


# -- audio ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, center, expected", [(20000, True, 21), (20000, False, 16), (4000, False, 1),
                                                  (8000, False, 1), (8001, False, 2)])
def test_frame_counts_follow_openl3(n, center, expected):
    frames = dev_audio.frame_audio(np.ones(n, np.float32), 8000, 800, center=center)
    assert frames.shape == (expected, 8000)
    if center:  # window 0 is centred on t=0: half zeros, then audio
        assert frames[0, :4000].sum() == 0 and frames[0, 4000:].min() == 1
    if expected > 1:
        assert frames[1, 0] == (0 if center else 1)


@pytest.mark.parametrize("method", ["soxr", "numpy"])
def test_resample_preserves_a_tone(method, monkeypatch):
    if method == "numpy":
        monkeypatch.setitem(sys.modules, "soxr", None)  # import soxr -> ImportError
    sr_in, sr_out, f = 44100, 8000, 440.0
    t = np.arange(sr_in) / sr_in
    if method == "numpy":  # the fallback says what it changes and how to avoid it
        with pytest.warns(DeviceWarning, match="soxr is not installed.*requirements-device.txt"):
            out, used = dev_audio.resample(np.sin(2 * np.pi * f * t).astype(np.float32), sr_in, sr_out)
        assert dev_audio.resampler_name() == "numpy-fft"
    else:
        out, used = dev_audio.resample(np.sin(2 * np.pi * f * t).astype(np.float32), sr_in, sr_out)
        assert dev_audio.resampler_name() == "soxr-hq"
    assert used == ("soxr-hq" if method == "soxr" else "numpy-fft")
    assert out.shape == (8000,) and out.dtype == np.float32
    ideal = np.sin(2 * np.pi * f * np.arange(sr_out) / sr_out)
    assert np.abs(out - ideal)[200:-200].max() < 0.01  # away from the edges


def test_load_audio_downmixes(wavs):
    audio, sr = dev_audio.load_audio(wavs[1])
    assert sr == 44100 and audio.ndim == 1 and audio.shape[0] == int(44100 * 1.7)


# -- the bench CLI, without TensorFlow ---------------------------------------------------------------

def test_bench_without_tensorflow(arts, wavs, tmp_path):
    out = tmp_path / "bench.json"
    proc, blocked = run_bench(["--model", arts["emb_int8"], "--classifier", arts["cls_fp32"], "--audio", *wavs,
                               "--runs", 30, "--warmup", 3, "--out-file", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert blocked == [], f"device/ tried to import {blocked}"
    r = json.loads(out.read_text())
    assert r["status"] == "complete" and r["failed_files"] == []
    assert r["resampler"] == "soxr-hq"      # the workstation's resampler, from requirements-device.txt
    assert r["environment"]["interpreter"]["package"] == "ai-edge-litert"
    assert r["environment"]["architecture"] and r["environment"]["cores"] >= 1
    assert (r["model"]["mode"], r["classifier"]["kind"]) == ("int8", "classifier")
    assert r["model"]["size_bytes"] == Path(arts["emb_int8"]).stat().st_size
    for key in ("frontend", "network", "invoke", "classifier", "total"):
        st = r["latency_ms"][key]
        assert st["n"] == 30 and st["min"] <= st["p50"] <= st["p90"] <= st["p99"] <= st["max"]
    lat = r["latency_ms"]
    assert lat["invoke"]["mean"] <= lat["network"]["mean"] <= lat["total"]["mean"]
    assert r["throughput_windows_per_s"] == pytest.approx(1e3 / lat["total"]["mean"])
    assert r["real_time_factor"] == pytest.approx(lat["total"]["mean"] / 1e3 / 0.1)
    assert r["memory_mb"]["peak"] >= r["memory_mb"]["peak_after_load"] >= r["memory_mb"]["peak_start"] > 0
    # the bench's own high-water mark, not the (TensorFlow-sized) pytest parent's inherited ru_maxrss
    assert r["memory_mb"]["peak"] < 150
    f8k, f44k = r["files"]
    assert f8k["n_windows"] == 21 and f8k["resampled"] is None and len(f8k["window_total_ms"]) == 21
    assert f44k["resampled"] == {"from": 44100, "to": 8000, "method": "soxr-hq"} and f44k["n_windows"] == 13  # 1 + ceil((13600 + 4000 - 8000) / 800)
    # the prediction is the argmax of the mean window probabilities, recomputed here in-process
    emb, cls = load_artifact(arts["emb_int8"]), load_artifact(arts["cls_fp32"])
    audio, _ = dev_audio.load_audio(wavs[0])
    probs = cls.classify(emb.embed_frames(dev_audio.frame_audio(audio, 8000, 800))).mean(axis=0)
    assert f8k["predicted_class"] == device_support.CLASSES[int(np.argmax(probs))]
    assert f8k["confidence"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert "p99" in proc.stdout and "real-time factor" in proc.stdout


def test_bench_marks_failed_file_partial(arts, wavs, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav")
    out = tmp_path / "bench.json"
    proc, _ = run_bench(["--model", arts["emb_fp32"], "--audio", wavs[0], bad, "--runs", 3, "--warmup", 0,
                         "--out-file", out], tmp_path)
    assert proc.returncode == 3  # partial: the JSON is written (1 is a crash)
    r = json.loads(out.read_text())
    assert r["status"] == "partial" and r["failed_files"] == [str(bad)]
    assert [f["status"] for f in r["files"]] == ["ok", "failed"]
    assert "PARTIAL" in proc.stdout and "partial" in proc.stderr


def test_bench_corrupt_model_is_one_line_error(arts, tmp_path):
    model = tmp_path / "corrupt.fp32.tflite"
    model.write_bytes(Path(arts["emb_fp32"]).read_bytes()[:200])
    out = tmp_path / "bench.json"
    proc, _ = run_bench(["--model", model, "--out-file", out], tmp_path)
    assert proc.returncode == 2 and not out.exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("device.bench: error:")]
    assert len(errors) == 1 and "cannot load this model" in errors[0]


def test_no_interpreter_is_a_clear_error(arts, tmp_path):
    proc, blocked = run_bench(["--model", arts["emb_fp32"]], tmp_path, extra_blocked=",ai_edge_litert,tflite_runtime")
    assert proc.returncode == 2
    assert "no TFLite interpreter could be imported" in proc.stderr and "requirements-device.txt" in proc.stderr
    assert blocked == ["ai_edge_litert", "tflite_runtime", "tensorflow"]  # tried in this order


# -- the front end outside the model: device.frontends numpy twin + network ---------------------------

def test_numpy_frontend_path_matches_keras_student(request):
    """A SEA-64 network exported without its front end: the harness computes it with numpy."""
    pytest.importorskip("device.frontends")
    s = request.getfixturevalue("sea64_net_artifacts")  # conftest: built once per run, read only
    emb = load_artifact(s["net.fp32"])
    assert not emb.frontend_in_model and emb.input_shape == (1, 64, 50, 1)
    assert (emb.sample_rate, emb.frame_samples) == (8000, 8000)
    out = emb.embed_frames(s["frames"])
    assert out.shape == (4, 64)
    np.testing.assert_allclose(out, s["ref_emb"], rtol=1e-4, atol=1e-4 * np.abs(s["ref_emb"]).max())


def test_bench_refuses_mismatched_classifier(arts, tmp_path):
    cls8 = device_support.convert(device_support.tiny_classifier(dim=8), tmp_path / "c8.fp32.tflite", "fp32",
                                  card={"name": "c8", "kind": "classifier"}, classes=device_support.CLASSES)
    proc, _ = run_bench(["--model", arts["emb_fp32"], "--classifier", cls8], tmp_path)
    assert proc.returncode == 2 and "takes 8-d inputs" in proc.stderr and "16-d embeddings" in proc.stderr


# -- framing as the classifier was evaluated; the sidecar required; the identity of what ran ----------

def _with_sidecar(src, dst, **changes):
    """Copy ``src`` (.tflite) to ``dst`` with its sidecar, the sidecar's top-level keys updated."""
    shutil.copy(src, dst)
    meta = json.loads(Path(src).with_suffix(".json").read_text())
    meta.update(changes)
    dst.with_suffix(".json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("seconds", [0.6, 1.0, 3.95, 4.0])
@pytest.mark.parametrize("block", [333, 65536])
def test_l3e_stream_windows_are_frame_l3e(seconds, block):
    from sea_tf.classify.features import frame_l3e

    audio = np.random.default_rng(3).standard_normal(int(8000 * seconds)).astype(np.float32)
    blocks = [audio[i:i + block] for i in range(0, len(audio), block)]
    got = [w.copy() for _, w in dev_audio.stream_windows(blocks, 8000, 800, center=False, pad_end=False)]
    expected, _ = frame_l3e(audio, 8000, hop_size=0.1)
    assert len(got) == len(expected)
    np.testing.assert_array_equal(np.stack(got), expected)   # the same samples, not just as many windows


def test_bench_frames_audio_as_the_classifier_card_says(arts, tmp_path):
    wav = device_support.write_tone_wav(tmp_path / "clip4s.wav", sr=8000, seconds=4.0, freq=700)
    cls_meta = json.loads(Path(arts["cls_fp32"]).with_suffix(".json").read_text())
    card = dict(cls_meta["model_card"], features={"hop_size": 0.1, "framing": "l3e", "frame_length_s": 1.0})
    cls = _with_sidecar(arts["cls_fp32"], tmp_path / "us8k-cls.fp32.tflite", model_card=card)
    source = {"path": "runs/a/student.keras", "name": "student", "sha256": "ab" * 32}
    emb = _with_sidecar(arts["emb_int8"], tmp_path / "student.int8.tflite", source=source)
    out = tmp_path / "bench.json"
    proc, _ = run_bench(["--model", emb, "--classifier", cls, "--audio", wav, "--runs", 3, "--warmup", 0,
                         "--hop-size", 0.25, "--out-file", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    # classify us8k's L3E windows: 1 + floor((4 s - 1 s) / 0.1 s) = 31 at the card's hop, not
    # --hop-size's 0.25 s and not centred (1 + ceil((4 + 0.5 - 1) / 0.1) = 36)
    (f,) = r["files"]
    assert f["n_windows"] == 31 and r["framing"]["name"] == "l3e" and r["framing"]["hop_s"] == 0.1
    assert "us8k-cls.fp32.tflite" in r["framing"]["source"] and "audio framed l3e every 0.1 s" in proc.stdout
    audio, _ = dev_audio.load_audio(wav)
    frames = np.stack([audio[k * 800:k * 800 + 8000] for k in range(31)])
    probs = load_artifact(cls).classify(load_artifact(emb).embed_frames(frames)).mean(axis=0)
    assert f["predicted_class"] == device_support.CLASSES[int(np.argmax(probs))]
    assert f["confidence"] == pytest.approx(float(probs.max()), abs=1e-5)
    # the identity sea-tf report joins on
    assert r["model"]["sha256"] == device_support._sha256(emb) and r["model"]["source_sha256"] == "ab" * 32
    assert r["classifier"]["sha256"] == device_support._sha256(cls) and r["classifier"]["source_sha256"] is None

    proc, _ = run_bench(["--model", emb, "--classifier", cls, "--audio", wav, "--runs", 3, "--warmup", 0,
                         "--framing", "centered", "--out-file", out], tmp_path)
    r = json.loads(out.read_text())
    assert proc.returncode == 0 and r["files"][0]["n_windows"] == 36 and r["framing"]["source"] == "--framing"


def test_bench_refuses_a_model_without_its_sidecar(arts, tmp_path):
    bare = tmp_path / "bare.fp32.tflite"
    shutil.copy(arts["emb_fp32"], bare)
    out = tmp_path / "bench.json"
    proc, _ = run_bench(["--model", bare, "--runs", 3, "--warmup", 0, "--out-file", out], tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("device.bench: error:")]
    assert proc.returncode == 2 and not out.exists() and len(errors) == 1
    assert "no sidecar bare.fp32.json" in errors[0] and "--no-sidecar" in errors[0]
    proc, _ = run_bench(["--model", bare, "--runs", 3, "--warmup", 0, "--no-sidecar", "--out-file", out], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("NO SIDECAR (--no-sidecar): bare")   # said before the table
    assert json.loads(out.read_text())["model"]["has_sidecar"] is False
