"""Board facts with every measurement (issue #25 item 5): device.system.board_facts on this machine and
on a constructed sysfs/proc tree with a real ``vcgencmd`` executable on PATH, device.system.throttling,
and device.bench's ``board`` block, THROTTLED line and ``--no-xnnpack`` setting."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from device import system
from device.runner import load_artifact
from sea_tf.cli import main as cli_main
from sea_tf.cli.common import resolved_config

ROOT = Path(__file__).resolve().parents[1]


def _fake_vcgencmd(bin_dir, output, code=0):
    """A real executable named vcgencmd that prints ``output`` for ``get_throttled`` and exits ``code``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "vcgencmd"
    exe.write_text(f'#!/bin/sh\n[ "$1" = get_throttled ] || exit 2\necho "{output}"\nexit {code}\n')
    exe.chmod(0o755)
    return bin_dir


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def board_tree(tmp_path):
    """A Pi-like tree: 4 CPUs (cpu0-2 with cpufreq, two governors; cpu3 without), two thermal zones."""
    root = tmp_path / "root"
    _write(root / "proc/cpuinfo", "processor\t: 0\nmodel name\t: ARMv7 Processor rev 3 (v7l)\n"
                                  "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    _write(root / "proc/loadavg", "0.52 0.31 0.20 1/180 4242\n")
    for cpu, (gov, cur) in enumerate([("ondemand", 600000), ("ondemand", 1800000), ("performance", 1500000)]):
        freq = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        for name, value in [("scaling_governor", gov), ("scaling_cur_freq", cur), ("cpuinfo_min_freq", 600000),
                            ("cpuinfo_max_freq", 1800000), ("scaling_max_freq", 1500000)]:
            _write(freq / name, f"{value}\n")
    (root / "sys/devices/system/cpu/cpu3").mkdir(parents=True)
    (root / "sys/devices/system/cpu/cpufreq").mkdir()      # not a CPU: must not be counted
    zone0 = root / "sys/class/thermal/thermal_zone0"
    for name, value in [("type", "cpu-thermal"), ("temp", "86500"), ("trip_point_0_type", "passive"),
                        ("trip_point_0_temp", "85000"), ("trip_point_1_type", "critical"),
                        ("trip_point_1_temp", "110000")]:
        _write(zone0 / name, value + "\n")
    zone1 = root / "sys/class/thermal/thermal_zone1"
    # x86_pkg_temp-style: an unset passive trip reads 0 and is no limit
    for name, value in [("type", "x86_pkg_temp"), ("temp", "41000"), ("trip_point_0_type", "passive"),
                        ("trip_point_0_temp", "0")]:
        _write(zone1 / name, value + "\n")
    return root


def test_board_facts_on_this_machine():
    facts = system.board_facts()
    assert isinstance(facts["cpu_model"], str) and facts["cpu_model"]
    assert isinstance(facts["cores"], int) and facts["cores"] >= 1
    assert 1 <= facts["usable_cores"] <= max(facts["cores"], os.cpu_count() or 1)
    assert set(facts["freq_mhz"]) == {"cur", "min", "max"}
    assert facts["governor"] is None or isinstance(facts["governor"], str)
    assert facts["temperature_c"] is None or -40 < facts["temperature_c"] < 150
    assert isinstance(facts["cpus"], list) and isinstance(facts["thermal_zones"], list)
    assert all(isinstance(note, str) for note in facts["notes"])
    # what this machine does not report is null with a note saying why, never a guess
    if facts["governor"] is None:
        assert any("no cpufreq" in note for note in facts["notes"])
    if not facts["thermal_zones"]:
        assert facts["temperature_c"] is None and any("no thermal zones" in note for note in facts["notes"])
    if facts["vcgencmd"] is None:
        assert any("vcgencmd" in note for note in facts["notes"])
    json.dumps(facts)                                        # it goes into the bench's JSON as is
    # how long the read took is reported (its speed is the board's, not a test's bound)
    assert isinstance(facts["read_ms"], float) and 0 <= facts["read_ms"] < float("inf")


def test_board_facts_parse_a_constructed_board(board_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{_fake_vcgencmd(tmp_path / 'bin', 'throttled=0x50005')}{os.pathsep}{os.environ['PATH']}")
    facts = system.board_facts(board_tree)
    assert facts["cpu_model"] == "ARMv7 Processor rev 3 (v7l)"
    assert facts["cores"] == 4 and facts["load_avg"] == [0.52, 0.31, 0.20]
    assert [c["governor"] for c in facts["cpus"]] == ["ondemand", "ondemand", "performance", None]
    assert facts["governor"] == "ondemand/performance"
    assert facts["cpus"][1] == {"cpu": 1, "governor": "ondemand", "cur_mhz": 1800.0, "min_mhz": 600.0,
                                "max_mhz": 1800.0, "scaling_max_mhz": 1500.0}
    assert facts["freq_mhz"] == {"cur": 1800.0, "min": 600.0, "max": 1800.0}
    zone0, zone1 = facts["thermal_zones"]
    assert zone0 == {"zone": "thermal_zone0", "type": "cpu-thermal", "temp_c": 86.5,
                     "trips": [{"type": "passive", "temp_c": 85.0}, {"type": "critical", "temp_c": 110.0}],
                     "passed": ["passive"]}
    assert zone1["temp_c"] == 41.0 and zone1["trips"] == [] and zone1["passed"] == []
    assert facts["temperature_c"] == 86.5
    # 0x50005: bits 0, 2 (now) and 16, 18 (since boot)
    assert facts["vcgencmd"] == {"raw": "0x50005", "flags": {
        "under_voltage": True, "arm_frequency_capped": False, "currently_throttled": True,
        "soft_temperature_limit": False, "under_voltage_occurred": True, "arm_frequency_capping_occurred": False,
        "throttling_occurred": True, "soft_temperature_limit_occurred": False}}
    assert not any("cpufreq" in note or "thermal" in note or "vcgencmd" in note for note in facts["notes"])


def test_unreadable_sources_are_null_with_a_note(board_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_vcgencmd(tmp_path / "bin", "VCHI initialization failed", code=255)))
    temp = board_tree / "sys/class/thermal/thermal_zone1/temp"
    temp.unlink()
    temp.mkdir()                                             # reading it raises IsADirectoryError
    facts = system.board_facts(board_tree)
    assert facts["vcgencmd"] is None and facts["thermal_zones"][1]["temp_c"] is None
    assert "vcgencmd get_throttled exited 255: VCHI initialization failed" in facts["notes"]
    assert "thermal_zone1: temperature unreadable" in facts["notes"]
    empty = system.board_facts(tmp_path / "nothing-here")
    assert (empty["governor"], empty["temperature_c"], empty["vcgencmd"], empty["load_avg"]) == (None, None, None, None)
    assert len(empty["notes"]) == 3


def _facts(root, bin_dir, raw, monkeypatch):
    monkeypatch.setenv("PATH", str(_fake_vcgencmd(bin_dir, f"throttled={raw}")))
    return system.board_facts(root)


def test_throttling_is_what_the_platform_says(board_tree, tmp_path, monkeypatch):
    cool = tmp_path / "cool"
    _write(cool / "sys/class/thermal/thermal_zone0/type", "cpu-thermal")
    _write(cool / "sys/class/thermal/thermal_zone0/temp", "52000")
    _write(cool / "sys/class/thermal/thermal_zone0/trip_point_0_type", "passive")
    _write(cool / "sys/class/thermal/thermal_zone0/trip_point_0_temp", "85000")
    bin_dir = tmp_path / "bin"
    clear = _facts(cool, bin_dir, "0x0", monkeypatch)
    assert system.throttling(clear, clear) == (False, [])
    # a "has occurred" bit set before the run is an old event; one that appears during it is this run's
    old = _facts(cool, bin_dir, "0x40000", monkeypatch)
    assert system.throttling(old, old) == (False, [])
    throttled, detail = system.throttling(clear, old)
    assert throttled is True and detail == ["vcgencmd during the run: throttling_occurred (0x0 -> 0x40000)"]
    now = _facts(cool, bin_dir, "0x4", monkeypatch)
    assert system.throttling(clear, now) == (True, ["vcgencmd after: currently_throttled (0x4)"])
    # no vcgencmd: the thermal zone's passive trip decides
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    hot = system.board_facts(board_tree)
    throttled, detail = system.throttling(hot, hot)
    assert throttled is True and detail[0].startswith("thermal_zone0 (cpu-thermal) before: 86.5 °C at or above")
    assert system.throttling(system.board_facts(cool), system.board_facts(cool)) == (False, [])
    nothing = system.board_facts(tmp_path / "nothing-here")
    assert system.throttling(nothing, nothing)[0] is None


def _bench(args, env_path=None):
    env = dict(os.environ)
    if env_path is not None:
        env["PATH"] = f"{env_path}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "device.bench", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bench_records_the_board_and_xnnpack(device_artifacts, tmp_path):
    model = device_artifacts["emb_int8"]
    on, off = tmp_path / "on.json", tmp_path / "off.json"
    # a board whose firmware says it is throttled now: the JSON and the first line of the table say so
    proc_on = _bench(["--model", model, "--runs", 5, "--warmup", 1, "--out-file", on],
                     env_path=_fake_vcgencmd(tmp_path / "bin", "throttled=0x4"))
    proc_off = _bench(["--model", model, "--runs", 5, "--warmup", 1, "--no-xnnpack", "--out-file", off])
    assert proc_on.returncode == 0, proc_on.stderr
    assert proc_off.returncode == 0, proc_off.stderr
    r_on, r_off = json.loads(on.read_text()), json.loads(off.read_text())
    assert (r_on["settings"]["xnnpack"], r_off["settings"]["xnnpack"]) == (True, False)
    assert r_on["environment"]["interpreter"]["op_resolver"] == "AUTO"
    assert r_off["environment"]["interpreter"]["op_resolver"] == "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
    assert r_off["environment"]["interpreter"]["xnnpack"] is False
    # LiteRT says on stderr when it applies the XNNPACK delegate: only the default run may
    assert "XNNPACK" in proc_on.stderr and "XNNPACK" not in proc_off.stderr
    for r in (r_on, r_off):
        assert r["latency_ms"]["invoke"]["n"] == 5
        board = r["board"]
        assert {"cpu_model", "governor", "freq_mhz", "temperature_c", "notes"} <= set(board["before"])
        assert board["after"]["time_unix"] >= board["before"]["time_unix"]
    assert r_on["board"]["throttled"] is True
    assert r_on["board"]["throttle_detail"] == ["vcgencmd before: currently_throttled (0x4)",
                                                "vcgencmd after: currently_throttled (0x4)"]
    assert proc_on.stdout.splitlines()[0].startswith("THROTTLED: vcgencmd before: currently_throttled (0x4)")
    assert "THROTTLED" not in proc_off.stdout.splitlines()[0]
    assert r_off["board"]["throttled"] is system.throttling(r_off["board"]["before"], r_off["board"]["after"])[0]
    board_lines = [line for line in proc_off.stdout.splitlines() if line.startswith("board ")]
    assert len(board_lines) == 1 and "governor" in board_lines[0] and "no XNNPACK" in proc_off.stdout


def test_xnnpack_setting_reaches_the_batched_interpreter(device_artifacts):
    # the offline batch choice is cached per XNNPACK setting and runs the batched interpreter the same way
    art = load_artifact(device_artifacts["emb_fp32"], xnnpack=False)
    choice = art.choose_batch(4, timer=lambda b: 1.0 / b)
    assert "|xnnpack=off|" in choice.key
    on = load_artifact(device_artifacts["emb_fp32"]).choose_batch(4, timer=lambda b: 1.0 / b)
    assert "|xnnpack=on|" in on.key and on.key.replace("=on|", "=off|") == choice.key


@pytest.mark.parametrize("argv, xnnpack", [([], True), (["--no-xnnpack"], False),
                                           (["--set", "bench.xnnpack=false"], False),
                                           (["--config", "device/pi4"], True)])
def test_device_run_resolves_the_xnnpack_setting(argv, xnnpack):
    args = cli_main.build_parser().parse_args(["device", "run", "--host", "pi@board", *argv])
    assert resolved_config(args)["bench"]["xnnpack"] is xnnpack


@pytest.mark.usefixtures("no_agent")
def test_device_run_passes_no_xnnpack_to_the_board(sshd, device_artifacts, tmp_path, capsys):
    # a real OpenSSH server on 127.0.0.1 (conftest): the setting must reach device.bench on the "board"
    model = Path(device_artifacts["emb_int8"])
    code = cli_main.main(["device", "run", "--host", f"{sshd['user']}@127.0.0.1", "--port", str(sshd["port"]),
                          "--key", str(sshd["key"]), "--known-hosts", str(sshd["known_hosts"]),
                          "--artifacts", str(model), "--remote-dir", str(tmp_path / "board"),
                          "--remote-python", sys.executable, "--out", str(tmp_path / "results"),
                          "--runs", "3", "--warmup", "0", "--connect-timeout", "5", "--command-timeout", "120",
                          "--set", "bench.xnnpack=false"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (result,) = (tmp_path / "results").glob("*/*/tiny-emb.int8.json")
    r = json.loads(result.read_text())
    assert r["settings"]["xnnpack"] is False and r["environment"]["interpreter"]["xnnpack"] is False
    assert {"before", "after", "throttled", "throttle_detail"} <= set(r["board"])
