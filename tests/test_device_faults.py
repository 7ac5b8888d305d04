"""The board under faults: ``device.listen`` and ``device.bench`` on a source that fails mid-stream
end with their summary and a non-zero exit, and keep what they did under the outputs' own names,
marked ``"partial": true``.

Real faults: a FLAC cut in the middle (libsndfile's decoder loses sync after ~10 s: an exception
half-way through the read), a WAV truncated by this test while ``device.listen --realtime`` reads
it, and a WAV whose data chunk is shorter than its header says. The board processes run where
importing TensorFlow or sea_tf raises (``blocked_env``).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from device_support import blocked_env
from listen_support import varied_wav

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def arts(listen_artifacts):
    return listen_artifacts  # conftest: built once per run, read only


@pytest.fixture(scope="module")
def cut_flac(tmp_path_factory):
    """20 s of 8-kHz noise as FLAC, its second half cut off: the decoder fails after about 10 s."""
    d = tmp_path_factory.mktemp("fault_audio")
    rng = np.random.default_rng(4)
    sf.write(str(d / "whole.flac"), (0.2 * rng.standard_normal(20 * 8000)).astype(np.float32), 8000, subtype="PCM_16")
    data = (d / "whole.flac").read_bytes()
    (d / "cut.flac").write_bytes(data[:len(data) // 2])
    return d / "cut.flac"


def _board(module, args, tmp_path, **kw):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=blocked_env(tmp_path),
                          capture_output=True, text=True, timeout=120, **kw)


def _assert_no_import_of_tensorflow(tmp_path):
    log = tmp_path / "blocked.log"
    assert not log.exists() or not log.read_text().split(), log.read_text()


def test_listen_on_a_file_that_fails_mid_read_ends_with_its_summary(arts, cut_flac, tmp_path):
    """The old listen ended with libsndfile's traceback: no summary line, the embeddings left in
    ``emb.npy.part``. Now: exit 1, one error line naming the file, the summary last (on stdout and
    in --summary-json) with ``"partial": true``, and ``emb.npy`` holding every window done."""
    npy, summary_json = tmp_path / "emb.npy", tmp_path / "summary.json"
    proc = _board("device.listen", ["--model", arts["fp32"], "--classifier", arts["cls"], "--source", cut_flac,
                                    "--hop-size", 0.5, "--embeddings", npy, "--summary-json", summary_json], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("device.listen: error:")]
    assert len(errors) == 1 and str(cut_flac) in errors[0] and "reading failed after" in errors[0], proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = lines[-1]
    windows = [line for line in lines if "k" in line]
    assert summary["event"] == "summary" and summary["partial"] is True and summary["status"] == "error"
    assert summary["stopped_by"] == "error" and str(cut_flac) in summary["error"]
    # about 10 s decoded before the decoder lost sync: windows of 1 s every 0.5 s
    assert 10 <= summary["windows"] == len(windows) < 39
    assert json.loads(summary_json.read_text())["partial"] is True
    emb = np.load(npy)
    assert emb.shape == (summary["windows"], 16) and np.all(np.isfinite(emb))
    assert not list(tmp_path.glob("emb.npy.*"))                       # no .part / .tmp left
    assert "device.listen [error, error]" in proc.stderr           # the text summary too
    _assert_no_import_of_tensorflow(tmp_path)


def test_listen_on_a_file_cut_while_it_is_read(arts, tmp_path):
    """A 20-s WAV paced at real time, truncated to 3 s by this process after the first window: the
    old listen read to the new end of file and said ``complete`` (exit 0). Now the file ending
    before the frames its header declared is the source failing: exit 1, partial."""
    wav = varied_wav(tmp_path / "live.wav", sr=8000, seconds=20.0, seed=9)
    out, npy = tmp_path / "live.jsonl", tmp_path / "live.npy"
    proc = subprocess.Popen([sys.executable, "-m", "device.listen", "--model", str(arts["fp32"]), "--source", str(wav),
                             "--realtime", "--hop-size", "0.5", "--jsonl", str(out), "--embeddings", str(npy)],
                            cwd=ROOT, env=blocked_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
            time.sleep(0.05)
        os.truncate(wav, 44 + 3 * 8000 * 2)          # keep the header and 3 s of 16-bit samples
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "cut while being read" in err
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["event"] == "summary" and summary["partial"] is True
    assert summary["audio_s"] == pytest.approx(3.0) and summary["windows"] == 5      # 1 + (3 - 1) / 0.5
    assert np.load(npy).shape == (5, 16) and not list(tmp_path.glob("live.npy.*"))


def test_bench_keeps_the_windows_of_a_file_that_fails_mid_stream(arts, cut_flac, tmp_path):
    """``device.bench --audio``: the cut FLAC keeps its ~10 s of windows (``"partial": true`` in
    its entry), a WAV whose data chunk is shorter than its header says is refused before any
    read (the old bench measured it as a shorter clip, ``ok``), the good file completes; the JSON
    is written, the table says what was kept, exit 3 (partial)."""
    good = varied_wav(tmp_path / "good.wav", sr=8000, seconds=3.0, seed=2)
    cut_wav = tmp_path / "short_data.wav"
    data = good.read_bytes()
    cut_wav.write_bytes(data[:len(data) // 2])         # the header still declares 3 s
    out = tmp_path / "bench.json"
    proc = _board("device.bench", ["--model", arts["fp32"], "--classifier", arts["cls"], "--audio", good, cut_flac,
                                   cut_wav, "--runs", 2, "--warmup", 0, "--hop-size", 0.5, "--framing", "centered",
                                   "--out-file", out], tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "partial" and result["partial"] is True
    assert result["failed_files"] == [str(cut_flac), str(cut_wav)]
    ok, flac, wav = result["files"]
    assert ok["status"] == "ok" and not ok.get("partial")
    assert flac["status"] == "failed" and flac["partial"] is True and "reading failed after" in flac["error"]
    assert 10 <= flac["n_windows"] < 40 and flac["latency_ms"]["total"]["n"] == flac["n_windows"]
    assert wav["status"] == "failed" and "truncated WAV" in wav["error"] and "partial" not in wav
    assert f"FAILED after {flac['n_windows']} windows (kept, partial)" in proc.stdout
    _assert_no_import_of_tensorflow(tmp_path)


def _start_listen(arts, wav, npy, jsonl, tmp_path):
    """A listen paced at real time, returned once its first window is out."""
    proc = subprocess.Popen([sys.executable, "-m", "device.listen", "--model", str(arts["fp32"]), "--source", str(wav),
                             "--realtime", "--hop-size", "0.5", "--jsonl", str(jsonl), "--embeddings", str(npy)],
                            cwd=ROOT, env=blocked_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not (jsonl.exists() and jsonl.read_text().count("\n") >= 1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.stderr.read())
        time.sleep(0.05)
    return proc


def test_a_killed_listen_leaves_nothing_a_later_run_cannot_clean(arts, tmp_path):
    """Run A is SIGKILLed mid-stream; run C, started next into the same emb.npy, removes A's rows
    (its pid is gone) and listens on; run B, on a short file into the same emb.npy meanwhile,
    leaves C's rows alone. The old temporaries had one name for every run: B truncated and then
    deleted the file C was writing, and C ended with an error instead of its embeddings."""
    import signal

    long_wav = varied_wav(tmp_path / "long.wav", sr=8000, seconds=30.0, seed=5)
    short_wav = varied_wav(tmp_path / "short.wav", sr=8000, seconds=2.0, seed=6)
    npy = tmp_path / "emb.npy"
    a = _start_listen(arts, long_wav, npy, tmp_path / "a.jsonl", tmp_path)
    a.kill()
    a.wait(timeout=30)
    assert len(list(tmp_path.glob("emb.npy.*"))) == 1                     # A's rows, left behind
    c = _start_listen(arts, long_wav, npy, tmp_path / "c.jsonl", tmp_path)
    try:
        b = _board("device.listen", ["--model", arts["fp32"], "--source", short_wav, "--hop-size", 0.5,
                                     "--jsonl", tmp_path / "b.jsonl", "--embeddings", npy], tmp_path)
        assert b.returncode == 0, b.stderr
        assert np.load(npy).shape == (3, 16)                              # 1 + (2 - 1) / 0.5
        assert len(list(tmp_path.glob("emb.npy.*"))) == 1                 # C's rows, still being written
        c.send_signal(signal.SIGINT)
        _, err = c.communicate(timeout=30)
    finally:
        if c.poll() is None:
            c.kill()
    assert c.returncode == 0, err
    assert "removed 1 temporary file(s) of killed runs" in err and f"emb.npy.{a.pid}.part" in err
    summary = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[-1])
    assert summary["embeddings"] == str(npy) and np.load(npy).shape == (summary["windows"], 16)
    assert not list(tmp_path.glob("emb.npy.*"))


def test_stdin_at_a_rate_no_recorder_makes_is_refused(arts, tmp_path):
    """``--source - --rate 1``: the old listen resampled every stdin sample to 8,000 (1 Hz to the
    model's rate) and ran; now a one-line error before anything starts (exit 2)."""
    pcm = (3000 * np.random.default_rng(0).standard_normal(4000)).astype("<i2").tobytes()
    proc = subprocess.run([sys.executable, "-m", "device.listen", "--model", str(arts["fp32"]), "--source", "-",
                           "--rate", "1", "--channels", "1"], cwd=ROOT, env=blocked_env(tmp_path), input=pcm,
                          capture_output=True, timeout=120)
    errors = [line for line in proc.stderr.decode().splitlines() if line.startswith("device.listen: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "--rate 1: outside 1 kHz-384 kHz" in errors[0], proc.stderr
    assert proc.stdout == b""
