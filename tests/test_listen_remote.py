"""``sea-tf device listen`` against the real OpenSSH server of tests/test_remote.py (file sources).

The board side's JSON lines must arrive in --out-file as they are made, and Ctrl-C here must stop the
board's device.listen too (with its summary), not leave it running.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import device_support
from sea_tf.cli import main as cli_main
from sea_tf.errors import RemoteError
from sea_tf import remote
from listen_support import varied_wav

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("no_agent")  # conftest: only the keys the tests pass; sshd too


@pytest.fixture(scope="session")
def export_dir(listen_export_dir):
    return listen_export_dir  # conftest: built once per run, read only


def listen_argv(sshd, tmp_path, export_dir, *extra):
    return ["device", "listen", "--host", f"{sshd['user']}@127.0.0.1:{sshd['port']}", "--key", str(sshd["key"]),
            "--known-hosts", str(sshd["known_hosts"]), "--artifacts", str(export_dir), "--model", "tiny-feat.fp32",
            "--remote-dir", str(tmp_path / "board"), "--remote-python", sys.executable,
            "--out-file", str(tmp_path / "live.jsonl"), "--connect-timeout", "5", *map(str, extra)]


def test_listen_over_ssh_on_a_file(sshd, export_dir, tmp_path, capsys):
    wav = varied_wav(tmp_path / "clip.wav", sr=16000, seconds=3.0, seed=6)
    code = cli_main.main(listen_argv(sshd, tmp_path, export_dir, "--source", wav, "--duration", 2.5,
                                     "--hop-size", 0.5, "--trigger", "dog_bark:0.01"))
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    windows = [line for line in lines if "k" in line]
    summary = lines[-1]
    assert [w["t"] for w in windows] == [1.0, 1.5, 2.0, 2.5]
    assert all(w["top"][0][0] in device_support.CLASSES for w in windows)
    assert summary["event"] == "summary" and summary["stopped_by"] == "duration reached"
    assert summary["source"]["name"] == "audio/clip.wav" and summary["source"]["resampled"] == "soxr-hq"
    assert summary["classifier"]["name"] == "tiny-cls"                     # paired by embedding size
    events = [line["event"] for line in lines if line.get("event") in ("onset", "offset")]
    assert events and events == ["onset", "offset"] * (len(events) // 2)  # the last one closed at the end
    assert (tmp_path / "board" / "device" / "listen.py").exists()
    assert "4 windows" in out.out and (tmp_path / "live.config.yaml").exists()


def _remote_listeners(board):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if "device.listen" in cmdline and cwd == str(board):
            found.append(int(pid))
    return found


def test_ctrl_c_stops_the_board_too(sshd, export_dir, tmp_path):
    # Long enough that a loaded machine's start-up (host, SFTP, the board's interpreter) cannot outlast
    # the paced file: the stream must end by Ctrl-C, not by the end of the source.
    seconds = 120.0
    wav = varied_wav(tmp_path / "long.wav", sr=8000, seconds=seconds, seed=7)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen([sys.executable, "-m", "sea_tf", *listen_argv(sshd, tmp_path, export_dir, "--source", wav,
                                                                          "--realtime", "--hop-size", 0.25)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a suite started as a background job (`make test &`)
                            # has SIGINT ignored, and Python keeps an inherited SIG_IGN (no Ctrl-C)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    out = tmp_path / "live.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and len(out.read_text().splitlines()) >= 3):   # streamed live: 1.5 s of audio
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no JSON line arrived within 60 s"
            time.sleep(0.05)
        assert _remote_listeners(tmp_path / "board")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    summary = json.loads(out.read_text().splitlines()[-1])
    assert summary["event"] == "summary" and summary["stopped_by"] == "interrupted"
    assert 3 <= summary["windows"] < seconds / 0.25 / 2 and summary["overruns"] == 0   # stopped early
    deadline = time.monotonic() + 10
    while _remote_listeners(tmp_path / "board") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _remote_listeners(tmp_path / "board"), "device.listen still runs on the board"


def test_listen_plan_needs_one_model(export_dir):
    with pytest.raises(RemoteError, match="pick one with --model NAME"):
        remote.listen_plan([export_dir])
    model, classifier = remote.listen_plan([export_dir], model="tiny-feat.int8")
    assert (model.name, classifier.name) == ("tiny-feat.int8.tflite", "tiny-cls.fp32.tflite")
    with pytest.raises(RemoteError, match="no embedding model of that name"):
        remote.listen_plan([export_dir], model="sea-64")
