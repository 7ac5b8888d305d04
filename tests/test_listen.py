"""``python -m device.listen`` on file and stdin sources, without TensorFlow in the board process.

The windows it reports are checked against an offline run of the same file (``device.audio``
framing without centring + ``Artifact.embed_frames``), its triggers against a scripted
probability sequence, its bad inputs against one-line errors, and its memory over an hour of audio.
"""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import device_support
from device import audio as dev_audio
from device.listen import Trigger
from device.runner import load_artifact
from device_support import blocked_env
from listen_support import varied_wav

ROOT = Path(__file__).resolve().parent.parent


def offline_embeddings(model, wav, hop_s):
    """The windows of ``sea-tf embed --no-centering``: load, resample, frame without centring, embed."""
    emb = load_artifact(model)
    audio, sr = dev_audio.load_audio(wav)
    audio, _ = dev_audio.resample(audio, sr, emb.sample_rate)
    return emb.embed_frames(dev_audio.frame_audio(audio, emb.frame_samples, int(round(hop_s * emb.sample_rate)),
                                                  center=False))


def run_listen(args, tmp_path, stdin=None, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "device.listen", *map(str, args)], cwd=ROOT,
                          env=blocked_env(tmp_path), input=stdin, capture_output=True, timeout=timeout)
    log = tmp_path / "blocked.log"
    blocked = log.read_text().split() if log.exists() else []
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc, lines, blocked


@pytest.fixture(scope="session")
def arts(listen_artifacts):
    return listen_artifacts  # conftest: built once per run, read only


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return varied_wav(tmp_path_factory.mktemp("listen_wav") / "varied_22k.wav", sr=22050, seconds=3.3)


def windows_and_summary(lines):
    windows = [line for line in lines if "k" in line]
    (summary,) = [line for line in lines if line.get("event") == "summary"]
    return windows, summary


@pytest.mark.parametrize("mode", ["fp32", "int8"])
def test_file_source_matches_offline_run(arts, wav, tmp_path, mode):
    npy = tmp_path / "emb.npy"
    proc, lines, blocked = run_listen(["--model", arts[mode], "--classifier", arts["cls"], "--source", wav,
                                       "--hop-size", 0.1, "--embeddings", npy], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert blocked == [], f"device.listen tried to import {blocked}"
    windows, summary = windows_and_summary(lines)
    ref = offline_embeddings(arts[mode], wav, 0.1)
    got = np.load(npy)
    assert got.shape == ref.shape == (len(windows), 16) and len(windows) == 24   # 1 + ceil((3.3 - 1) / 0.1)
    if mode == "fp32":
        # the same float64 front-end code, then the same network: equal up to float32 rounding
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    else:
        # int8 input codes from the fused quantization may differ by one step where the dB value sits
        # one float32 step from a rounding boundary (tests/test_streaming_frontend.py)
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        assert cos.min() > 0.999
    assert [w["k"] for w in windows] == list(range(24))
    assert [w["t"] for w in windows] == pytest.approx([1.0 + 0.1 * k for k in range(24)])
    probs = load_artifact(arts["cls"]).classify(ref)
    assert [w["top"][0][0] for w in windows] == [device_support.CLASSES[i] for i in probs.argmax(1)]
    assert all(len(w["top"]) == 3 and w["latency_ms"] >= w["compute_ms"] > 0 for w in windows)
    assert summary["status"] == "complete" and summary["windows"] == 24 and summary["overruns"] == 0
    assert summary["source"]["resampled"] == "soxr-hq" and summary["frontend"]["frames_reused"] > 0
    lat = summary["latency_ms"]["compute"]
    assert lat["n"] == 24 and lat["p50"] <= lat["p90"] <= lat["p99"]
    assert 0 < summary["real_time_factor"] and summary["memory_mb"]["peak_rss"] < 150
    assert "real-time factor" in proc.stderr.decode()


def test_stdin_pcm_equals_the_file(arts, tmp_path):
    import soundfile

    wav8 = varied_wav(tmp_path / "v8k.wav", sr=8000, seconds=2.5, seed=4)
    pcm, _ = soundfile.read(str(wav8), dtype="int16")
    stereo = np.stack([pcm, pcm], axis=1).astype("<i2").tobytes()         # identical channels: same mean
    proc, lines, _ = run_listen(["--model", arts["fp32"], "--source", "-", "--rate", 8000, "--channels", 2,
                                 "--hop-size", 0.25, "--embeddings", tmp_path / "s.npy"], tmp_path, stdin=stereo)
    assert proc.returncode == 0, proc.stderr.decode()
    windows, summary = windows_and_summary(lines)
    assert summary["source"]["kind"] == "stdin" and summary["windows"] == len(windows) == 7
    assert "top" not in windows[0]                                        # no classifier
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), offline_embeddings(arts["fp32"], wav8, 0.25),
                               rtol=1e-5, atol=1e-5)


def test_duration_stops_early_and_a_short_source_is_an_error(arts, wav, tmp_path):
    proc, lines, _ = run_listen(["--model", arts["fp32"], "--source", wav, "--duration", 1.5, "--hop-size", 0.5], tmp_path)
    windows, summary = windows_and_summary(lines)
    assert proc.returncode == 0 and summary["stopped_by"] == "duration reached"
    assert [w["t"] for w in windows] == [1.0, 1.5] and summary["audio_s"] == 1.5
    proc, lines, _ = run_listen(["--model", arts["fp32"], "--source", wav, "--duration", 10, "--hop-size", 0.5], tmp_path)
    windows, summary = windows_and_summary(lines)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and summary["status"] == "error" and len(windows) == 6
    assert "the source ended after 3.30 s of the 10 s asked" in err and "6 windows" in err


@pytest.mark.parametrize("payload, message", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64), "stdin holds a WAV file, not raw PCM"),
    (b"time,value\n" * 20, "stdin looks like text"),
    (bytes(16001), "not 16-bit PCM with 1 channel(s)"),
])
def test_stdin_that_is_not_pcm(arts, tmp_path, payload, message):
    proc, lines, _ = run_listen(["--model", arts["fp32"], "--source", "-", "--rate", 8000], tmp_path, stdin=payload)
    err = proc.stderr.decode()
    errors = [line for line in err.splitlines() if line.startswith("device.listen: error:")]
    assert proc.returncode == 1 and len(errors) == 1 and message in errors[0], err
    assert lines[-1]["event"] == "summary" and lines[-1]["status"] == "error"


def test_bad_models_and_sources_are_one_line_errors(arts, wav, tmp_path):
    # a features model whose sidecar lost its front end
    broken = tmp_path / "nofe.fp32.tflite"
    broken.write_bytes(Path(arts["fp32"]).read_bytes())
    meta = json.loads(Path(arts["fp32"]).with_suffix(".json").read_text())
    meta["frontend"] = None
    meta["model_card"]["frontend"] = None
    broken.with_suffix(".json").write_text(json.dumps(meta))
    cls8 = device_support.convert(device_support.tiny_classifier(dim=8), tmp_path / "c8.fp32.tflite", "fp32",
                                  card={"name": "c8", "kind": "classifier"}, classes=device_support.CLASSES)
    cases = [(["--model", broken, "--source", wav], "has no 'frontend' entry"),
             (["--model", arts["fp32"], "--classifier", cls8, "--source", wav], "takes 8-d inputs"),
             (["--model", arts["fp32"], "--source", tmp_path / "missing.wav"], "audio file not found"),
             (["--model", arts["fp32"], "--source", "-"], "needs --rate HZ"),
             (["--model", arts["fp32"], "--classifier", arts["cls"], "--source", wav, "--trigger", "cat:0.5"],
              "unknown class 'cat'; the classifier's classes are air_conditioner, car_horn, dog_bark"),
             (["--model", arts["fp32"], "--source", "no-such-microphone"], "no-such-microphone")]
    for args, message in cases:
        proc, lines, _ = run_listen(args, tmp_path)
        errors = [line for line in proc.stderr.decode().splitlines() if line.startswith("device.listen: error:")]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], (args, proc.stderr.decode())
        assert lines == []


def test_missing_microphone_lists_the_devices(arts, tmp_path):
    proc, _, _ = run_listen(["--model", arts["fp32"], "--source", "no-such-microphone"], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2
    # with sounddevice: the input devices PortAudio sees (or that it sees none); without: how to install it
    assert "input devices:" in err or "pip install sounddevice" in err, err


def test_trigger_onsets_and_offsets():
    trig = Trigger(1, "car_horn", 0.6, 3)
    p = [0.1, 0.7, 0.8, 0.2, 0.7, 0.9, 0.95, 0.8, 0.3, 0.7, 0.1, 0.2, 0.5, 0.9]
    events = [trig.update(1.0 + 0.1 * i, [1 - x, x, 0.0]) for i, x in enumerate(p)]
    fired = [(round(1.0 + 0.1 * i, 1), e["event"], e["since"]) for i, e in enumerate(events) if e]
    # onset after three windows >= 0.6 (the run at 1.1-1.2 is too short); one window back above 0.6
    # (1.9) does not end the event; the offset comes after three windows below
    assert fired == [(1.6, "onset", 1.4), (2.2, "offset", 2.0)]
    assert [e for e in events if e and e["event"] == "offset"][0]["peak"] == 0.95
    assert trig.close(2.5) is None


def test_trigger_on_the_cli_closes_at_the_end(arts, wav, tmp_path):
    probs = load_artifact(arts["cls"]).classify(offline_embeddings(arts["fp32"], wav, 0.1))
    top = device_support.CLASSES[int(np.bincount(probs.argmax(1)).argmax())]
    proc, lines, _ = run_listen(["--model", arts["fp32"], "--classifier", arts["cls"], "--source", wav,
                                 "--trigger", f"{top}:0.01:2"], tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    events = [line for line in lines if line.get("event") in ("onset", "offset")]
    assert [e["event"] for e in events] == ["onset", "offset"] and events[0]["t"] == pytest.approx(1.1)
    assert events[1]["end_of_stream"] and events[1]["class"] == top


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_session_in_process_writes_lines_status_and_summary(arts, wav, monkeypatch):
    """``ListenSession`` without a subprocess: a JSON line per window (``emit``), the live line on a
    terminal (``status``; none on a pipe) and ``summary`` as the last line, as the CLI writes them."""
    from device import listen

    monkeypatch.setattr(listen, "STATUS_EVERY_S", -1.0)           # a status line after every window
    args = listen.build_parser().parse_args(["--model", str(arts["fp32"]), "--classifier", str(arts["cls"]),
                                             "--source", str(wav)])
    out, terminal = io.StringIO(), _Terminal()
    summary, code = listen.ListenSession(args, out, status_stream=terminal).run()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    windows = [line for line in lines if "k" in line]
    assert code == 0 and lines[-1] == json.loads(json.dumps(summary)) and summary["windows"] == len(windows) == 24
    status = terminal.getvalue()
    assert status.count("\r") == 24 and status.endswith("\n") and f"{windows[-1]['t']:8.1f} s" in status
    assert windows[-1]["top"][0][0] in status.rsplit("\r", 1)[1]   # the top class of the last window
    piped = io.StringIO()
    listen.ListenSession(args, io.StringIO(), status_stream=piped).run()
    assert piped.getvalue() == ""                                # not a terminal: no status line


def test_memory_is_flat_over_an_hour(tmp_path):
    """One hour of 8 kHz PCM on stdin (tiny raw-audio model, hop 1 s, embeddings saved): RSS after
    the hour within a few MB of RSS after the first minute."""
    card = {"name": "tiny-emb", "kind": "student", "sample_rate": 8000, "frame_length_s": 1.0, "frame_samples": 8000,
            "embedding_size": 16}
    model = device_support.convert(device_support.tiny_embedding_model(dim=16), tmp_path / "tiny-emb.fp32.tflite",
                                   "fp32", card=card)
    gen = ("import sys, numpy as np\n"
           "rng = np.random.default_rng(0)\n"
           "for _ in range(60):\n"
           "    sys.stdout.buffer.write((3000 * rng.standard_normal(8000 * 60)).astype('<i2').tobytes())\n")
    producer = subprocess.Popen([sys.executable, "-c", gen], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([sys.executable, "-m", "device.listen", "--model", str(model), "--source", "-",
                               "--rate", "8000", "--hop-size", "1.0", "--jsonl", str(tmp_path / "out.jsonl"),
                               "--embeddings", str(tmp_path / "e.npy")],
                              cwd=ROOT, stdin=producer.stdout, capture_output=True, text=True, timeout=300)
    finally:
        producer.stdout.close()
        producer.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])
    assert summary["windows"] == 3600 and summary["audio_s"] == pytest.approx(3600.0)
    mem = summary["memory_mb"]
    assert mem["rss_end"] - mem["rss_after_first_minute"] < 4.0, mem
    assert np.load(tmp_path / "e.npy", mmap_mode="r").shape == (3600, 16)


def test_ctrl_c_stops_at_a_block_with_the_summary(arts, tmp_path):
    """A file paced at real time, interrupted after two windows: exit 0, whole lines, the summary last."""
    import signal
    import time

    long_wav = varied_wav(tmp_path / "long.wav", sr=8000, seconds=20.0, seed=8)
    out = tmp_path / "live.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "device.listen", "--model", str(arts["fp32"]), "--source", str(long_wav),
                             "--realtime", "--hop-size", "0.5", "--jsonl", str(out)],
                            cwd=ROOT, env=blocked_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and len(out.read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.read_text().splitlines()]      # every line whole
    summary = lines[-1]
    assert summary["stopped_by"] == "interrupted" and 2 <= summary["windows"] < 30
    assert summary["source"]["realtime"] and summary["overruns"] == 0
    assert summary["wall_per_audio"] > 0.8                                    # paced, not as fast as possible
