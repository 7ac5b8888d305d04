"""A real audio input path: PulseAudio with a null sink, ``paplay`` into it, ``device.listen --source pulse``
recording the sink's monitor through PortAudio/ALSA, compared with an offline run of the same file.

The server is started here (``make test`` installs pulseaudio, pulseaudio-utils, libasound2-plugins and
libportaudio2); the test skips with the reason only when it cannot start.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from device import audio as dev_audio
from device.runner import load_artifact
from device_support import blocked_env
from listen_support import varied_wav

ROOT = Path(__file__).resolve().parent.parent
SINK = "seatf_listen_test"


@pytest.fixture(scope="module")
def pulse(tmp_path_factory):
    """A PulseAudio daemon with a null sink, private to this test (own XDG_RUNTIME_DIR); yields its env."""
    exe, paplay, pactl = (shutil.which(n) for n in ("pulseaudio", "paplay", "pactl"))
    if not (exe and paplay and pactl):
        pytest.skip("pulseaudio/paplay/pactl not installed (make test installs pulseaudio pulseaudio-utils "
                    "libasound2-plugins libportaudio2 with apt-get when run as root)")
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"sounddevice/PortAudio unavailable ({exc}); pip install sounddevice, apt install libportaudio2")
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime), "PULSE_SINK": SINK,
           "PULSE_SOURCE": f"{SINK}.monitor"}
    start = subprocess.run([exe, "-D", "--exit-idle-time=-1", "--disallow-exit", "-n",
                            f"--load=module-null-sink sink_name={SINK}", "--load=module-native-protocol-unix",
                            f"--log-target=file:{runtime / 'pulse.log'}"],
                           env=env, capture_output=True, text=True, timeout=30)
    deadline = time.monotonic() + 10
    while True:
        sources = subprocess.run([pactl, "list", "short", "sources"], env=env, capture_output=True, text=True).stdout
        if f"{SINK}.monitor" in sources:
            break
        if time.monotonic() > deadline:
            log = (runtime / "pulse.log").read_text() if (runtime / "pulse.log").exists() else ""
            pytest.skip(f"the PulseAudio server did not start (exit {start.returncode}: {start.stderr.strip()[-300:]} "
                        f"{log[-300:]})")
        time.sleep(0.2)
    yield env
    subprocess.run([exe, "--kill"], env=env, capture_output=True, timeout=30)


def cosine(a, b):
    # a window of pure silence embeds to zeros here: give it cosine 0, not NaN
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def test_listen_records_what_is_played(pulse, listen_artifacts, tmp_path):
    arts = listen_artifacts  # conftest: built once per run, read only
    wav = varied_wav(tmp_path / "played.wav", sr=8000, seconds=4.0, seed=2)
    out, npy = tmp_path / "live.jsonl", tmp_path / "live.npy"
    hop = 320                                  # 0.04 s at 8 kHz: two STFT hops, so frames are reused
    env = {**blocked_env(tmp_path), **{k: pulse[k] for k in ("XDG_RUNTIME_DIR", "HOME", "PULSE_SOURCE")}}
    listen = subprocess.Popen([sys.executable, "-m", "device.listen", "--model", str(arts["fp32"]), "--source", "pulse",
                               "--duration", "7", "--hop-size", "0.04", "--jsonl", str(out), "--embeddings", str(npy)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().strip()):      # the first window: recording has started
            assert listen.poll() is None, listen.communicate()[1]
            assert time.monotonic() < deadline, "device.listen produced no window within 30 s"
            time.sleep(0.05)
        play = subprocess.run(["paplay", str(wav)], env=pulse, capture_output=True, text=True, timeout=30)
        assert play.returncode == 0, play.stderr
        _, err = listen.communicate(timeout=60)
    finally:
        if listen.poll() is None:
            listen.kill()
    assert listen.returncode == 0, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    summary = lines[-1]
    assert summary["source"]["kind"] == "microphone" and summary["stopped_by"] == "duration reached"
    assert summary["overruns"] == 0 and summary["dropped_samples"] == 0, summary    # kept up at 1x speed
    assert summary["frontend"]["frames_reused"] > 0
    live = np.load(npy)
    assert len(live) == 1 + (7 * 8000 - 8000) // hop

    # Offline reference: the file with a second of silence either side, embedded every 20 samples, so
    # that the unknown delay between starting to record and paplay's first sample can be found.
    emb = load_artifact(arts["fp32"])
    audio, _ = dev_audio.load_audio(wav)
    padded = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(8000, np.float32)])
    step = 20
    ref = emb.embed_audio(padded, step)                           # window j starts at padded[j * step]
    inside = lambda s: 8000 <= s <= len(audio)                    # noqa: E731 - the window lies in the file
    best = None
    for c in range(-7 * 8000, 8000 + 1, step):                    # live start k*hop <-> padded start k*hop + c
        pairs = [(k, (k * hop + c) // step) for k in range(len(live)) if inside(k * hop + c)]
        if len(pairs) < 40:
            continue
        k_idx, j_idx = map(np.array, zip(*pairs))
        score = cosine(live[k_idx], ref[j_idx])
        if best is None or score.mean() > best[0].mean():
            best = (score, c)
    score, c = best
    assert len(score) >= (len(audio) - 8000) // hop               # the whole file was heard
    assert score.min() >= 0.99, (score.min(), score.mean(), c)
