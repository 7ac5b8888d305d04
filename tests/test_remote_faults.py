"""``sea-tf device run`` under faults, against real OpenSSH servers on 127.0.0.1 (tests/remote_support.py).

Each test builds the fault for real: a child that writes stderr after the command exited, an sshd
session process stopped with SIGSTOP (a board that stopped answering while its TCP stack still
acknowledges), a command that overruns, broken known_hosts lines, an SFTP subsystem that is not
there, a server that asks for a second factor, a model whose sidecar makes device.bench crash.
"""
import builtins
import getpass
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import device_support
import remote_support
from sea_tf import remote, report
from sea_tf.cli import main as cli_main
from sea_tf.errors import ConfigError, RemoteError
from sea_tf.presets import load_defaults

MARKER = "END-OF-STDERR-MARKER"


pytestmark = pytest.mark.usefixtures("no_agent")  # conftest: only the keys the tests pass; sshd too


@pytest.fixture(scope="session")
def export_dir(device_export_dir):
    return device_export_dir  # conftest: built once per run, read only


@pytest.fixture
def connection(sshd):
    conn = remote.connect(remote.Host(sshd["user"], "127.0.0.1", sshd["port"]), key_path=sshd["key"],
                          known_hosts=sshd["known_hosts"], timeout=5, keepalive_s=1)
    yield conn
    conn.close()


def run_cli(sshd, tmp_path, artifacts, *extra, hosts=None, known_hosts=None):
    argv = ["device", "run"]
    for host in hosts or [f"{sshd['user']}@127.0.0.1:{sshd['port']}"]:
        argv += ["--host", host]
    argv += ["--key", str(sshd["key"]), "--known-hosts", str(known_hosts or sshd["known_hosts"]),
             "--artifacts", *map(str, artifacts), "--remote-dir", str(tmp_path / "board"),
             "--remote-python", sys.executable, "--out", str(tmp_path / "results"), "--runs", "3", "--warmup", "0",
             "--connect-timeout", "5", "--command-timeout", "120", *map(str, extra)]
    return cli_main.main(argv)


def test_output_after_the_exit_status_is_read(connection):
    # The shell exits at once (sshd sends its exit status) while a child still writes 200 KB of
    # stderr; reading until the exit status loses all of it, reading until the channel closes none.
    late = f"(sleep 0.3; head -c 200000 /dev/zero | tr '\\0' x >&2; echo {MARKER} >&2) & exit 0"
    code, _, err = remote.execute(connection, late, 30)
    assert code == 0 and err == "x" * 200000 + MARKER + "\n"
    direct = f"{sys.executable} -c \"import sys; sys.stderr.write('y' * 200000 + '{MARKER}')\""
    for _ in range(5):  # the review lost the tail of such a stderr in 1 of 15 runs
        code, _, err = remote.execute(connection, direct, 30)
        assert code == 0 and err == "y" * 200000 + MARKER


def _cmdline(pid):
    """``/proc/PID/cmdline``, or b"" when the process ended since it was listed (another test's session closing)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_board_that_stops_answering_is_noticed(sshd, connection):
    outcome = {}

    def run():
        start = time.monotonic()
        try:
            remote.execute(connection, "sleep 61.25", 120)
        except RemoteError as exc:
            outcome["error"] = str(exc)
        outcome["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while not remote_support.processes_with("sleep 61.25"):
        assert time.monotonic() < deadline, "the remote sleep never started"
        time.sleep(0.05)
    # The per-connection sshd processes (not what they run): the board's SSH side is frozen.
    sessions = [pid for pid in remote_support.session_processes(sshd["pid"])
                if _cmdline(pid).startswith(b"sshd")]
    assert sessions
    for pid in sessions:
        remote_support._signal(pid, signal.SIGSTOP)
    try:
        worker.join(timeout=30)
        assert not worker.is_alive(), "execute() still waits on a board that stopped answering"
    finally:
        for pid in sessions:
            remote_support._signal(pid, signal.SIGCONT)
            remote_support._signal(pid, signal.SIGKILL)
        for pid in remote_support.processes_with("sleep 61.25"):
            remote_support._signal(pid, signal.SIGKILL)
    assert "stopped answering" in outcome["error"] and "fewer --runs" not in outcome["error"]
    assert outcome["seconds"] < 2 * 1 + 5  # 2 x keepalive_s, plus polling slack on a loaded machine
    assert 2 * load_defaults("device/run")["timeouts"]["keepalive_s"] <= 30  # the default: within 30 s


def test_a_remote_timeout_kills_the_process_group(connection):
    command = "sleep 301.25 & sleep 302.25 & sleep 303.25"
    with pytest.raises(RemoteError, match="did not finish within 1 s") as caught:
        remote.execute(connection, command, 1)
    deadline = time.monotonic() + 10
    while any(remote_support.processes_with(f"sleep {s}") for s in ("301.25", "302.25", "303.25")):
        if time.monotonic() > deadline:
            for s in ("301.25", "302.25", "303.25"):
                for pid in remote_support.processes_with(f"sleep {s}"):
                    remote_support._signal(pid, signal.SIGKILL)
            pytest.fail("processes of the timed-out command still run on the board")
        time.sleep(0.1)
    assert "was stopped on the board" in str(caught.value) and "fewer --runs" in str(caught.value)


def test_every_ssh_fault_is_one_hosts_error(sshd, export_dir, tmp_path, capsys):
    """Five hosts, one good: broken known_hosts lines for three, a broken SFTP subsystem for one."""
    servers = {}
    try:
        for name, extra in [("malformed", ()), ("revoked", ()), ("ca", ()), ("nosftp", ["Subsystem sftp /bin/false"])]:
            (tmp_path / name).mkdir()
            servers[name] = remote_support.start_sshd(tmp_path / name, extra, keys_from=sshd)
        port = {name: s.info["port"] for name, s in servers.items()}
        key = sshd["host_key_line"]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text("\n".join([
            f"[127.0.0.1]:{sshd['port']} {key}",
            f"[127.0.0.1]:{port['malformed']} ssh-ed25519 AAAA!!not-base64",
            f"[127.0.0.1]:{port['revoked']} {key}", f"@revoked [127.0.0.1]:{port['revoked']} {key}",
            f"@cert-authority [127.0.0.1]:{port['ca']} {key}",
            f"[127.0.0.1]:{port['nosftp']} {key}", ""]))
        hosts = [f"{sshd['user']}@127.0.0.1:{p}" for p in [sshd["port"], *port.values()]]
        code = run_cli(sshd, tmp_path, [Path(export_dir) / "tiny-emb.int8.tflite"], hosts=hosts, known_hosts=known_hosts)
    finally:
        for server in servers.values():
            server.stop()
    err = capsys.readouterr().err
    assert code == 2 and "4 of 5 host(s) failed" in err, err
    assert "internal error" not in err
    lines = {name: next(line for line in err.splitlines() if f":{p}:" in line) for name, p in port.items()}
    assert "line 2 for this host is malformed" in lines["malformed"]
    assert "is marked @revoked" in lines["revoked"]
    assert "unknown host key" in lines["ca"] and "@cert-authority" in lines["ca"]
    assert "SSH connection failed" in lines["nosftp"] and "SFTP" in lines["nosftp"]
    assert len(list((tmp_path / "results").glob(f"*_{sshd['port']}/*/tiny-emb.int8.json"))) == 1  # the good host


def test_a_bench_crash_shows_its_traceback(sshd, export_dir, tmp_path, capsys):
    # A sidecar that is valid JSON with a wrong type: the harness does not expect it and raises.
    crash = tmp_path / "crash"
    crash.mkdir()
    shutil.copy(Path(export_dir) / "tiny-emb.fp32.tflite", crash / "odd.fp32.tflite")
    meta = json.loads((Path(export_dir) / "tiny-emb.fp32.json").read_text())
    meta["model_card"] = "not a mapping"
    (crash / "odd.fp32.json").write_text(json.dumps(meta))
    code = run_cli(sshd, tmp_path, [crash / "odd.fp32.tflite"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "device.bench crashed on odd.fp32.tflite (exit 1" in err
    assert "--- remote stderr" in err and "Traceback" in err and "AttributeError" in err
    assert "could not be fetched" not in err


def test_same_named_audio_files_stay_apart_and_partial_is_fetched(sshd, export_dir, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    short = device_support.write_tone_wav(tmp_path / "a" / "x.wav", sr=8000, seconds=1.5, freq=300.0)
    long = device_support.write_tone_wav(tmp_path / "b" / "x.wav", sr=8000, seconds=3.0, freq=900.0)
    broken = tmp_path / "b" / "broken.wav"
    broken.write_bytes(b"RIFF not really a wav")
    code = run_cli(sshd, tmp_path, [Path(export_dir) / "tiny-emb.int8.tflite"], "--audio", short, long, broken)
    out = capsys.readouterr()
    assert code == 1, out.err  # partial: fetched and reported, not a failed host
    (result,) = (tmp_path / "results").glob("*/*/tiny-emb.int8.json")
    r = json.loads(result.read_text())
    assert r["status"] == "partial" and "(PARTIAL)" in out.out
    files = r["files"]
    assert [f["status"] for f in files] == ["ok", "ok", "failed"]
    assert files[0]["file"] != files[1]["file"] and Path(files[0]["file"]).name == "x.wav"
    assert [f["duration_s"] for f in files[:2]] == [1.5, 3.0]  # each its own file, none overwritten


def test_a_second_factor_is_an_error_never_a_prompt(tmp_path, monkeypatch):
    prompts = []

    def prompt(*args, **kwargs):
        prompts.append(args)
        raise EOFError("sea-tf prompted")

    monkeypatch.setattr(builtins, "input", prompt)
    monkeypatch.setattr(getpass, "getpass", prompt)
    # keyboard-interactive through PAM sends a real "Password:" prompt after the key is accepted
    cases = {"keyboard-interactive": ["AuthenticationMethods publickey,keyboard-interactive",
                                      "KbdInteractiveAuthentication yes", "UsePAM yes"],
             "password": ["AuthenticationMethods publickey,password", "PasswordAuthentication yes"]}
    if os.geteuid() != 0:
        del cases["keyboard-interactive"]  # sshd runs PAM's conversation only as root; the password case still runs
    for method, extra in cases.items():
        (tmp_path / method).mkdir()
        server = remote_support.start_sshd(tmp_path / method, extra)
        info = server.info
        try:
            with pytest.raises(RemoteError) as caught:
                remote.connect(remote.Host(info["user"], "127.0.0.1", info["port"]), key_path=info["key"],
                               known_hosts=info["known_hosts"], timeout=5, keepalive_s=10.0).close()
        finally:
            server.stop()
        assert f"also asks for {method} (a second factor); sea-tf never prompts" in str(caught.value)
    assert prompts == []


@pytest.mark.parametrize("text", ["pi@h:99999", "pi@h:0", "pi@h:65536"])
def test_port_out_of_range(text):
    with pytest.raises(ConfigError, match="outside 1-65535"):
        remote.parse_host(text)


def test_port_range_of_the_default_port():
    assert remote.parse_host("pi@h:65535").port == 65535
    with pytest.raises(ConfigError, match="port 70000 is outside"):
        remote.parse_host("pi@h", default_port=70000)


def test_same_named_artifacts_are_refused(export_dir, tmp_path):
    shutil.copy(Path(export_dir) / "tiny-emb.int8.tflite", tmp_path / "tiny-emb.int8.tflite")
    with pytest.raises(RemoteError, match="tiny-emb.int8.tflite given from several directories"):
        remote.plan([Path(export_dir) / "tiny-emb.int8.tflite", tmp_path / "tiny-emb.int8.tflite"], audio=[])


def test_a_new_run_never_merges_the_old_ones(sshd, export_dir, tmp_path, capsys):
    assert run_cli(sshd, tmp_path, [export_dir]) == 0                                       # fp32 + int8
    assert run_cli(sshd, tmp_path, [Path(export_dir) / "tiny-emb.int8.tflite"], "--runs", 4) == 0   # int8 only
    out = capsys.readouterr().out
    host_dir = tmp_path / "results" / f"{sshd['user']}@127.0.0.1_{sshd['port']}"
    first, second = sorted(host_dir.iterdir())
    assert {p.name for p in first.glob("*.json")} == {"tiny-emb.fp32.json", "tiny-emb.int8.json"}
    assert str(second / "tiny-emb.int8.json") in out
    files = report.find_json([tmp_path / "results"])
    assert files == [second / "tiny-emb.int8.json"]  # the latest run only: no stale fp32 row
    assert json.loads(files[0].read_text())["settings"]["runs"] == 4
    assert report.find_json([first]) == sorted(first.glob("*.json"))  # a named run is read as it is
    code = cli_main.main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report")])
    assert code == 0
    rows = json.loads((tmp_path / "report" / "rows.json").read_text())
    assert [row["stem"] for row in rows] == ["tiny-emb.int8"]


def test_known_hosts_hashed_wildcard_and_other_hosts_broken_lines(sshd, tmp_path):
    import paramiko

    host = remote.Host("pi", "10.1.2.3", 2222)
    key = sshd["host_key_line"]
    path = tmp_path / "known_hosts"
    path.write_text("\n".join([
        "# comment", "",
        f"[other]:22 ssh-ed25519 AAAA!!broken",               # another host's broken line: not this host's concern
        f"@revoked *.lan {key}",                               # a marker line for other names
        f"{paramiko.HostKeys.hash_host('[10.1.2.3]:2222')} {key}",   # ssh-keyscan -H / HashKnownHosts yes
        f"[10.1.2.*]:2222 {key}",                              # a wildcard
        f"[10.1.*]:2222,![10.1.2.3]:2222 ssh-ed25519 AAAA!!broken", ""]))  # negated: not this host's line
    known = remote.read_known_hosts(path, host)
    assert len(known.accepted) == 2 and not known.revoked and not known.cert_authority
    assert not remote.read_known_hosts(path, remote.Host("pi", "10.1.2.3", 22)).accepted  # the port is part of the name
    path.write_text(f"[10.1.2.3]:2222 ssh-ed25519\n")
    with pytest.raises(RemoteError, match="line 1 for this host is malformed"):
        remote.read_known_hosts(path, host)
