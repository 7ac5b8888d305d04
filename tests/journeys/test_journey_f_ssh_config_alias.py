"""Journey (f) of issue #20: `sea-tf device run` and `device listen` to a board named by an ssh_config Host.

A user whose `ssh board` works passes `--host board --ssh-config FILE` and nothing else: no
USER@HOST, no --port, no --key, no ssh-agent. The real test sshd of tests/test_remote.py is the
board; the file gives its HostName, User, Port and IdentityFile, and a second alias reaches it
through a ProxyJump host (the same sshd, which forwards with a `direct-tcpip` channel: each
connection through it authenticates twice, which its log shows). A Host that does not resolve is
one line and writes nothing.
"""
import json
import sys

import pytest

import device_support
from sea_tf.cli import main as cli_main


pytestmark = pytest.mark.usefixtures("no_agent")  # conftest: only the keys the tests pass; sshd too


def _ssh_config(path, sshd):
    common = (f"    HostName 127.0.0.1\n    User {sshd['user']}\n    Port {sshd['port']}\n"
              f"    IdentityFile {sshd['key']}\n")
    path.write_text(f"Host board gateway\n{common}\n"
                    f"Host board-behind-gateway\n{common}    ProxyJump gateway\n\n"
                    "Host ghost\n    HostName ghost-board.invalid\n")
    return path


def _logins(sshd):
    return sshd["log"].read_text(errors="replace").count("Accepted publickey")


def test_device_run_and_listen_through_ssh_config_aliases(sshd, tmp_path, device_export_dir, capsys):
    artifacts = device_export_dir  # conftest: tiny-emb fp32/int8 + tiny-cls, built once per run
    config = _ssh_config(tmp_path / "ssh_config", sshd)
    common = ["--ssh-config", str(config), "--known-hosts", str(sshd["known_hosts"]),
              "--remote-dir", str(tmp_path / "board"), "--remote-python", sys.executable, "--connect-timeout", "10"]

    # device run: the alias alone; one login
    before = _logins(sshd)
    wav = device_support.write_tone_wav(tmp_path / "clip.wav", sr=8000, seconds=1.5)
    code = cli_main.main(["device", "run", "--host", "board", *common, "--artifacts", str(artifacts / "tiny-emb.int8.tflite"),
                          str(artifacts / "tiny-cls.fp32.tflite"), "--audio", str(wav), "--out", str(tmp_path / "results"),
                          "--runs", "3", "--warmup", "0", "--command-timeout", "120"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert _logins(sshd) - before == 1
    (result,) = (tmp_path / "results" / f"{sshd['user']}@127.0.0.1_{sshd['port']}").glob("*/tiny-emb.int8.json")
    bench = json.loads(result.read_text())
    assert bench["status"] == "complete" and bench["files"][0]["predicted_class"] in device_support.CLASSES

    # device listen: through the ProxyJump host; two logins (the gateway, then the board through it)
    before = _logins(sshd)
    code = cli_main.main(["device", "listen", "--host", "board-behind-gateway", *common, "--artifacts", str(artifacts),
                          "--model", "tiny-emb.fp32", "--source", str(wav), "--hop-size", "0.25",
                          "--out-file", str(tmp_path / "live.jsonl")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert _logins(sshd) - before == 2
    assert "board-behind-gateway (" in out.err and f"via {sshd['user']}@127.0.0.1:{sshd['port']}" in out.err
    lines = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert lines[-1]["event"] == "summary" and lines[-1]["windows"] == 3  # 1.5 s at 0.25 s: windows at 1.0, 1.25, 1.5


def test_a_host_that_does_not_resolve_is_one_line_and_writes_nothing(sshd, tmp_path, device_export_dir, capsys):
    artifacts = device_export_dir
    config = _ssh_config(tmp_path / "ssh_config", sshd)
    for argv in (["device", "run", "--host", "ghost", "--out", str(tmp_path / "results")],
                 ["device", "run", "--host", "nobody-knows-this-board", "--out", str(tmp_path / "results")],
                 ["device", "listen", "--host", "ghost", "--out-file", str(tmp_path / "listen" / "live.jsonl")]):
        code = cli_main.main([*argv, "--ssh-config", str(config), "--artifacts", str(artifacts),
                              "--known-hosts", str(sshd["known_hosts"])])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert str(config) in err[0] and "does not resolve" in err[0], err[0]
    assert "HostName ghost-board.invalid" in err[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "listen").exists()
