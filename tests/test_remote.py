"""``sea-tf device run`` against a real OpenSSH server on 127.0.0.1 (started by a fixture).

The server gets a throwaway host key and authorizes one generated user key; the tests run the
whole CLI: copy device/ + artifacts, run the bench with this venv's Python, fetch the JSON; and the
failure paths: unknown host, wrong key, unreachable port, missing Python, remote failure.
"""
import hashlib
import io
import json
import os
import sys
from pathlib import Path

import pytest

import device_support
import remote_support
from sea_tf import config, remote
from sea_tf.runs import RUN_ID_RE
from sea_tf.cli import main as cli_main
from sea_tf.errors import RemoteError
from sea_tf.presets import load_defaults, preset_names, schema_of_preset

ROOT = Path(__file__).resolve().parent.parent


_free_port = remote_support.free_port


pytestmark = pytest.mark.usefixtures("no_agent")  # conftest: only the keys the tests pass; sshd too


@pytest.fixture(scope="session")
def export_dir(device_export_dir):
    return device_export_dir  # conftest: built once per run, read only


def device_run(sshd, tmp_path, artifacts, *extra, key=None, known_hosts=None, host=None):
    argv = ["device", "run", "--host", host or f"{sshd['user']}@127.0.0.1", "--port", str(sshd["port"]),
            "--key", str(key or sshd["key"]), "--known-hosts", str(known_hosts or sshd["known_hosts"]),
            "--artifacts", *map(str, artifacts), "--remote-dir", str(tmp_path / "board"),
            "--remote-python", sys.executable, "--out", str(tmp_path / "results"),
            "--runs", "5", "--warmup", "1", "--connect-timeout", "5", "--command-timeout", "120", *map(str, extra)]
    return cli_main.main(argv)


def test_end_to_end_copy_run_fetch(sshd, export_dir, tmp_path, capsys):
    wav = device_support.write_tone_wav(tmp_path / "clip.wav", sr=16000, seconds=1.5)
    code = device_run(sshd, tmp_path, [export_dir], "--audio", wav)
    out = capsys.readouterr()
    assert code == 0, out.err
    (host_dir,) = (tmp_path / "results" / f"{sshd['user']}@127.0.0.1_{sshd['port']}").iterdir()  # one run
    assert RUN_ID_RE.fullmatch(host_dir.name)
    results = sorted(p.name for p in host_dir.glob("*.json"))
    assert results == ["tiny-emb.fp32.json", "tiny-emb.int8.json"]  # one bench per embedding model
    for name in results:
        r = json.loads((host_dir / name).read_text())
        assert r["status"] == "complete" and r["device"] == "127.0.0.1"
        # the bench ran from the copy on the "board", not from this checkout
        assert Path(r["environment"]["harness_dir"]) == tmp_path / "board" / "device"
        assert r["classifier"]["name"] == "tiny-cls" and r["latency_ms"]["total"]["n"] == 5
        (f,) = r["files"]
        assert f["resampled"] == {"from": 16000, "to": 8000, "method": "soxr-hq"}
        assert f["predicted_class"] in device_support.CLASSES
    assert (tmp_path / "board" / "artifacts" / "tiny-cls.fp32.json").exists()
    assert (tmp_path / "board" / "requirements-device.txt").exists()
    assert "per-window latency" in out.out and "tiny-emb [int8]" in out.out
    assert (tmp_path / "results" / "device_run.config.yaml").exists()


def test_unknown_host_is_refused_with_fingerprint(sshd, export_dir, tmp_path, capsys):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code = device_run(sshd, tmp_path, [export_dir], known_hosts=empty)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert sshd["fingerprint"] in err[0] and "unknown host key" in err[0]
    assert f"ssh-keyscan -p {sshd['port']} -t ed25519 127.0.0.1 >> {empty}" in err[0]
    assert empty.read_text() == ""  # never accepted silently
    assert not (tmp_path / "board").exists()


def test_changed_host_key_is_refused(sshd, export_dir, tmp_path, capsys):
    forged = tmp_path / "known_hosts"
    other = (sshd["dir"] / "other_key.pub").read_text().split()
    forged.write_text(f"[127.0.0.1]:{sshd['port']} {other[0]} {other[1]}\n")
    code = device_run(sshd, tmp_path, [export_dir], known_hosts=forged)
    assert code == 2 and "does NOT match" in capsys.readouterr().err


def test_wrong_key_is_an_authentication_failure(sshd, export_dir, tmp_path, capsys):
    code = device_run(sshd, tmp_path, [export_dir], key=sshd["other_key"])
    err = capsys.readouterr().err
    assert code == 2 and "authentication failed" in err and "other_key" in err


def test_remote_failure_prints_remote_stderr(sshd, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    broken = bad / "broken.fp32.tflite"
    broken.write_bytes(b"TFL3" + bytes(300))  # a sidecar that matches it: copied, then the board cannot load it
    broken.with_suffix(".json").write_text(json.dumps({"mode": "fp32", "sha256": hashlib.sha256(broken.read_bytes()).hexdigest()}))
    code = device_run(sshd, tmp_path, [broken])
    err = capsys.readouterr().err
    assert code == 2
    assert "--- remote stderr" in err and "device.bench: error:" in err and "cannot load this model" in err
    assert "sea-tf device run: error:" in err and "device.bench failed on broken.fp32.tflite" in err
    assert not list((tmp_path / "results").rglob("*.json"))  # nothing reported as a result


def test_a_model_without_its_sidecar_is_refused_before_anything_is_copied(sshd, export_dir, tmp_path, capsys):
    bare = tmp_path / "bare.fp32.tflite"
    bare.write_bytes((Path(export_dir) / "tiny-emb.fp32.tflite").read_bytes())
    code = device_run(sshd, tmp_path, [bare])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{bare} has no sidecar" in err[0], err
    assert not (tmp_path / "board").exists() and not (tmp_path / "results").exists()


def test_missing_remote_python(sshd, export_dir, tmp_path, capsys):
    code = cli_main.main(["device", "run", "--host", f"{sshd['user']}@127.0.0.1:{sshd['port']}", "--key", str(sshd["key"]),
                          "--known-hosts", str(sshd["known_hosts"]), "--artifacts", str(export_dir),
                          "--remote-dir", str(tmp_path / "board"), "--remote-python", "/nonexistent/python3",
                          "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and "/nonexistent/python3 is not runnable on the board" in err


def test_several_hosts_one_unreachable(sshd, export_dir, tmp_path, capsys):
    dead = f"{sshd['user']}@127.0.0.1:{_free_port()}"
    code = cli_main.main(["device", "run", "--host", f"{sshd['user']}@127.0.0.1:{sshd['port']}", "--host", dead,
                          "--key", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]),
                          "--artifacts", str(Path(export_dir) / "tiny-emb.int8.tflite"),
                          "--remote-dir", str(tmp_path / "board"), "--remote-python", sys.executable,
                          "--out", str(tmp_path / "results"), "--runs", "3", "--warmup", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach 127.0.0.1" in err and "1 of 2 host(s) failed" in err
    assert len(list((tmp_path / "results").glob("*/*/tiny-emb.int8.json"))) == 1  # the good host's result


def test_several_hosts_run_in_parallel_with_live_progress(sshd, export_dir, tmp_path, capsys):
    (tmp_path / "sshd2").mkdir()
    second = remote_support.start_sshd(tmp_path / "sshd2", keys_from=sshd)   # a second board, same keys
    try:
        known = tmp_path / "known_hosts"
        known.write_text(sshd["known_hosts"].read_text() + second.info["known_hosts"].read_text())
        wav = device_support.write_tone_wav(tmp_path / "clip.wav", sr=8000, seconds=2.5)
        labels = [f"{sshd['user']}@127.0.0.1:{port}" for port in (sshd["port"], second.info["port"])]
        code = cli_main.main(["device", "run", "--host", labels[0], "--host", labels[1], "--key", str(sshd["key"]),
                              "--known-hosts", str(known), "--artifacts", str(Path(export_dir) / "tiny-emb.int8.tflite"),
                              str(Path(export_dir) / "tiny-cls.fp32.tflite"), "--audio", str(wav),
                              "--remote-dir", str(tmp_path / "board-{host}"), "--remote-python", sys.executable,
                              "--out", str(tmp_path / "results"), "--runs", "7", "--warmup", "0"])
        out = capsys.readouterr()
    finally:
        second.stop()
    assert code == 0, out.err
    lines = out.out.splitlines()
    for label in labels:
        (result,) = (tmp_path / "results" / label.replace(":", "_")).glob("*/tiny-emb.int8.json")
        windows = json.loads(result.read_text())["files"][0]["n_windows"]
        # each stage the board finished, parsed from device.bench's progress lines on its stderr
        for stage in ("connect", "tiny-emb.int8.tflite (1/1) timing 7/7", f"tiny-emb.int8.tflite (1/1) file 1/1 windows "
                      f"{windows}/{windows}", "done"):
            assert f"{label}: {stage}" in lines, (stage, out.out)
        assert (tmp_path / f"board-{label.replace(':', '_')}" / "results" / "tiny-emb.int8.json").exists()
    # in parallel: both boards started before either finished (one after the other, the second
    # board's connect would come after the first one's done)
    first_done = min(lines.index(f"{label}: done") for label in labels)
    assert all(lines.index(f"{label}: connect") < first_done for label in labels), out.out
    assert "device.bench: progress" not in out.err   # progress lines are not remote stderr to show


def test_one_board_named_twice_is_refused(sshd, export_dir, tmp_path, capsys):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host board\n    HostName 127.0.0.1\n    Port {sshd['port']}\n")
    code = cli_main.main(["device", "run", "--ssh-config", str(config), "--host", "board", "--host",
                          f"{sshd['user']}@127.0.0.1:{sshd['port']}", "--artifacts", str(export_dir),
                          "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is named more than once" in err[0], err
    assert not (tmp_path / "results").exists()


# -- no server needed -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("pi@board", ("pi", "board", 22)), ("pi@10.0.0.5:2222", ("pi", "10.0.0.5", 2222)),
                                            ("root@[::1]:22", ("root", "::1", 22))])
def test_parse_host(text, expected):
    h = remote.parse_host(text)
    assert (h.user, h.host, h.port) == expected


@pytest.mark.parametrize("bad", ["board", "pi@", "@board", "pi@board:port"])
def test_parse_host_rejects(bad):
    with pytest.raises(RemoteError, match="USER@HOST"):
        remote.parse_host(bad)


def test_plan_sorts_models(export_dir):
    p = remote.plan([export_dir], audio=[])
    assert [m.name for m in p.embeddings] == ["tiny-emb.fp32.tflite", "tiny-emb.int8.tflite"]
    assert [c.name for c in p.classifiers] == ["tiny-cls.fp32.tflite"]
    assert p.classifier_for(p.embeddings[1]).name == "tiny-cls.fp32.tflite"  # no int8 classifier: fp32
    with pytest.raises(RemoteError, match="no embedding model"):
        remote.plan([Path(export_dir) / "tiny-cls.fp32.tflite"], audio=[])


def test_classifier_paired_by_mode(tmp_path):
    for name, meta in [("e.fp32", {"mode": "fp32"}), ("e.int8", {"mode": "int8"}), ("e.fp16", {"mode": "fp16"}),
                       ("c.fp32", {"mode": "fp32", "classes": ["a"]}), ("c.int8", {"mode": "int8", "classes": ["a"]})]:
        (tmp_path / f"{name}.tflite").write_bytes(b"")
        (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    p = remote.plan([tmp_path], audio=[])
    pairs = {e.name: p.classifier_for(e).name for e in p.embeddings}
    assert pairs == {"e.fp16.tflite": "c.fp32.tflite", "e.fp32.tflite": "c.fp32.tflite", "e.int8.tflite": "c.int8.tflite"}


@pytest.mark.parametrize("name", [n for n in preset_names("device") if schema_of_preset(n) == "device/run"])
def test_config_files_resolve(name):
    defaults = load_defaults("device/run")
    cfg = config.resolve(defaults, name)
    assert cfg["bench"]["runs"] >= 1 and cfg["timeouts"]["command_s"] > 0
    assert "password" not in json.dumps(cfg).lower()


@pytest.mark.skipif(os.environ.get("SEA_TF_TEST_SETUP") != "1",
                    reason="--setup pip-installs requirements-device.txt on the 'board' (~100 MB from the package "
                           "index, a minute or more): opt in with SEA_TF_TEST_SETUP=1")
def test_setup_creates_venv(sshd, export_dir, tmp_path, capsys):
    base_python = getattr(sys, "_base_executable", sys.executable)
    code = cli_main.main(["device", "run", "--host", f"{sshd['user']}@127.0.0.1:{sshd['port']}", "--key", str(sshd["key"]),
                          "--known-hosts", str(sshd["known_hosts"]), "--artifacts", str(Path(export_dir) / "tiny-emb.int8.tflite"),
                          "--remote-dir", str(tmp_path / "board"), "--remote-python", base_python, "--setup",
                          "--out", str(tmp_path / "results"), "--runs", "3", "--warmup", "0", "--command-timeout", "900"])
    assert code == 0, capsys.readouterr().err
    (result,) = (tmp_path / "results").glob("*/*/tiny-emb.int8.json")
    env = json.loads(result.read_text())["environment"]
    assert env["interpreter"]["package"] == "ai-edge-litert" and (tmp_path / "board" / ".venv" / "bin" / "python").exists()


def test_classifier_only_pairs_with_a_matching_embedding_size(tmp_path):
    card = lambda size, kind: {"embedding_size": size, "kind": kind}  # noqa: E731
    for name, meta in [("student.fp32", {"mode": "fp32", "model_card": card(64, "student")}),
                       ("teacher.fp32", {"mode": "fp32", "model_card": card(512, "teacher")}),
                       ("cls.fp32", {"mode": "fp32", "classes": ["a"], "model_card": card(64, "classifier")})]:
        (tmp_path / f"{name}.tflite").write_bytes(b"")
        (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    p = remote.plan([tmp_path], audio=[])
    pairs = {e.name: p.classifier_for(e) for e in p.embeddings}
    assert pairs["student.fp32.tflite"].name == "cls.fp32.tflite"
    assert pairs["teacher.fp32.tflite"] is None  # a 512-d teacher cannot feed the 64-d classifier


def test_live_lines_on_a_terminal_redraw_one_line_per_board(capsys):
    from sea_tf.cli.device import LiveLines

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    live = LiveLines(["pi@a", "pi@b:2222"], stream=screen)
    live.update("pi@a", "copy", 3, 9)
    live.update("pi@b:2222", "m.int8.tflite (1/2) file 1/1 windows", 14)
    live.print("a table")
    live.update("pi@a", "done")
    drawn = screen.getvalue()
    # every update redraws both lines in place (cursor up 2 lines, each line cleared), never appends
    assert drawn.count("\x1b[2F") == 3 and drawn.count("\x1b[2K") == 2 * 4
    last = drawn.rsplit("\x1b[2F", 1)[1].replace("\x1b[2K", "").splitlines()
    assert last == ["pi@a: done", "pi@b:2222: m.int8.tflite (1/2) file 1/1 windows 14/?"]
    assert "\x1b[J" in drawn and capsys.readouterr().out == "a table\n"   # printed above the lines, not over them
