"""``sea-tf tune`` end to end (issue #25): real stages on tiny generated data, the real test sshd as a
second board beside this machine, a second sshd killed while it benchmarks, and the report in a real
headless Chromium. No mocks.

One module fixture (:func:`runs`) runs the CLI in-process on one OUT, in the order a user would meet
it, and keeps what each run left:

A. the dataset's metadata is away (a copy not finished): every accuracy step fails, the rest is done;
B. the metadata is back, the same command: only the failed steps run again and pass;
C. the same command once more: nothing runs, nothing is rewritten, the same results;
E. a latency budget nothing keeps: nothing runs, and the choice says what is closest and by how much;
D. a third board whose sshd is killed while it runs ``device.bench``: its cells fail with the
   reason, the two other boards' cells stay done, the command exits 1.
"""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import browser_support
import remote_support
import tune_support
from sea_tf.cli import main as cli_main
from sea_tf.tune import pareto_front, status, walk_steps
from sea_tf.tune.results import PARETO_AXES

KINDS = ("teacher", "sample", "reduce", "distill", "export", "accuracy", "bench")
METADATA = Path("metadata") / "UrbanSound8K.csv"
TIGHT_MS = 0.001        # a latency budget no board keeps


def _tune(*argv):
    """``sea-tf tune ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main.main(["tune", *map(str, argv)])
    return code, out.getvalue(), err.getvalue()


def _status(out):
    """``sea-tf tune --status OUT`` in-process: (exit code, its table)."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = cli_main.main(["tune", "--status", str(out)])
    return code, text.getvalue()


def _cards(out):
    """Every step card under ``out``: its path → (mtime ns, status)."""
    return {path: (path.stat().st_mtime_ns, json.loads(path.read_text())["status"])
            for path in sorted(Path(out).rglob("step.json"))}


def _snapshot(out, code, stdout, stderr):
    return {"code": code, "stdout": stdout, "stderr": stderr, "tune": json.loads((out / "tune.json").read_text()),
            "choice": json.loads((out / "choice.json").read_text()), "cards": _cards(out), "status": _status(out)}


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class _KillWhenBenching:
    """Kills (SIGKILL) an sshd and every process of its sessions as soon as one of them runs
    ``device.bench``: a board that goes away in the middle of its benchmark."""

    def __init__(self, server):
        self.server, self.killed = server, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        master = self.server.proc.pid
        while not self._stop.is_set():
            sessions = remote_support.session_processes(master)
            if any(b"device.bench" in _cmdline(pid) for pid in sessions):
                for pid in [*sessions, master]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.killed = [*sessions, master]
                return
            time.sleep(0.02)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def runs(sshd, tmp_path_factory):
    """Runs A-E of the module docstring on one OUT; what each left (exit code, output, tune.json,
    choice.json, the step cards' mtimes, ``--status``)."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("SSH_AUTH_SOCK", raising=False)     # only the test's key (no_agent is per test)
        yield from _runs(sshd, tmp_path_factory)


def _runs(sshd, tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    shards = tune_support.write_shards(root / "shards")
    data = tune_support.write_tones(root / "data")
    second = remote_support.start_sshd(tmp_path_factory.mktemp("sshd-dying"), keys_from=sshd)
    try:
        known = root / "known_hosts"
        known.write_text(sshd["known_hosts"].read_text() + second.info["known_hosts"].read_text())
        board = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
        dying = f"{sshd['user']}@127.0.0.1:{second.info['port']}"
        out = root / "out"
        # the packaged tune/demo preset (its stage presets kept), every stage cut to seconds by --set
        args = tune_support.demo_args(data=data, shards=shards, remote_dir=root / "boards", known_hosts=known,
                                      key=sshd["key"])
        cfg = [*args, "--out", out]
        found = {"out": out, "args": args, "board": board, "dying": dying, "root": root}

        (data / METADATA).rename(data / "UrbanSound8K.csv.copying")
        try:
            found["A"] = _snapshot(out, *_tune(*cfg, "--host", board))
        finally:
            (data / "UrbanSound8K.csv.copying").rename(data / METADATA)
        found["B"] = _snapshot(out, *_tune(*cfg, "--host", board))
        found["C"] = _snapshot(out, *_tune(*cfg, "--host", board))
        found["E"] = _snapshot(out, *_tune(*cfg, "--host", board, "--budget", f"latency_ms={TIGHT_MS}"))
        killer = _KillWhenBenching(second)
        try:
            found["D"] = _snapshot(out, *_tune(*cfg, "--host", board, dying))
        finally:
            killer.stop()
        found["killed"] = killer.killed
        yield found
    finally:
        second.stop()


def _cells(snapshot, board=None):
    return [c for c in snapshot["tune"]["cells"] if board is None or c["board"] == board]


def _one_line(text):
    return isinstance(text, str) and text.strip() and "\n" not in text


# -- 1. end to end on two boards ------------------------------------------------------------------------------------

def test_end_to_end_on_this_machine_and_the_test_sshd(runs):
    b = runs["B"]
    assert b["code"] == 0, b["stderr"]
    tune = b["tune"]
    boards = ["local", runs["board"]]
    assert tune["schema"] == "sea-tf-tune/1" and list(tune["boards"]) == boards
    # one cell per (artifact, setting, board): 1 student x 2 modes x 1 setting x 2 boards
    ids = [c["id"] for c in tune["cells"]]
    assert len(ids) == len(set(ids)) == len(tune_support.MODES) * len(boards)
    assert sorted((c["export"]["mode"], c["board"]) for c in tune["cells"]) == sorted(
        (m, bd) for m in tune_support.MODES for bd in boards)
    for c in tune["cells"]:
        assert c["status"] == "done" and c["error"] is None, c
        assert c["id"] == f"{c['artifact']}/t1.xnnpack@{c['board']}"
        assert 0 <= c["accuracy"] <= 1
        assert 0 < c["latency_ms"]["p50"] <= c["latency_ms"]["p90"] <= c["latency_ms"]["p99"]
        assert c["peak_rss_mb"] > 0 and c["macs"] > 0
        assert c["size_bytes"] == Path(c["file"]).stat().st_size and 0 < c["gzip_bytes"] < c["size_bytes"]
        assert 0 < c["fidelity"]["cosine_p5"] <= c["fidelity"]["cosine_mean"] <= 1
        assert c["reduction"] == {"method": "pca", "d": tune_support.D} and c["sampling"] == "random"
        assert all(Path(card).is_file() for card in c["card"].values())
    # accuracy is the artifact's, the same on every board; latency is each board's own measurement
    for mode in tune_support.MODES:
        same = [c for c in tune["cells"] if c["export"]["mode"] == mode]
        assert len({c["accuracy"] for c in same}) == 1
        assert len({Path(c["card"]["bench"]).parent for c in same}) == 2
    assert tune["reference_accuracy"] == max(c["accuracy"] for c in tune["cells"])
    # the Pareto fronts: non-empty, and what sea_tf.tune.pareto_front makes of the cells
    for bd in boards:
        for axis in PARETO_AXES:
            front = tune["pareto"][bd][axis]
            assert front and front == pareto_front(_cells(b, bd), axis)
            assert all(c["pareto"][axis] == (c["id"] in front) for c in _cells(b, bd))
    # choice.json per board: the most accurate cell within every budget (flash 512 KiB, 0.5 accuracy drop)
    assert b["choice"]["choice"] == tune["choice"] and list(tune["choice"]) == boards
    for bd in boards:
        fits = [c for c in _cells(b, bd) if c["fits"]]
        assert fits and all(not c["misses"] for c in fits)
        chosen = tune["choice"][bd]
        assert chosen["cell"] in {c["id"] for c in fits}
        assert chosen["accuracy"] == max(c["accuracy"] for c in fits)
        assert _one_line(chosen["message"]) and chosen["cell"] in chosen["message"]
    # the board facts of both boards, measured by device.bench on each
    for bd in boards:
        entry = tune["boards"][bd]
        assert entry["status"] == "ok" and entry["error"] is None
        facts = entry["facts"]
        assert facts["cores"] >= 1 and facts["cpu_model"] and facts["benchmarks"] == 2 and facts["interpreter"]
        assert "throttled" in facts and "temperature_c" in facts      # None where the board has no sensor
        assert facts["freq_mhz"] is None or not facts["freq_mhz"].startswith("—")   # no cpufreq (a VM): None
    md = (runs["out"] / "tune.md").read_text()
    assert all(c["id"] in md for c in tune["cells"]) and "Budgets: flash_kb ≤ 512" in md
    assert (runs["out"] / "report.html").is_file()


# -- 2. re-running does no work -------------------------------------------------------------------------------------

def test_rerunning_the_same_command_does_no_work(runs):
    b, c = runs["B"], runs["C"]
    assert c["code"] == 0, c["stderr"]
    assert c["cards"] == b["cards"]                      # no card rewritten (same mtimes), none added
    assert {kind: entry["ran_now"] for kind, entry in c["tune"]["stages"].items()} == {kind: 0 for kind in KINDS}
    assert "done in" not in c["stdout"] and "FAILED" not in c["stdout"] and "bench: " not in c["stdout"]
    for key in ("cells", "pareto", "choice", "boards", "budgets", "reference_accuracy"):
        assert c["tune"][key] == b["tune"][key], key
    assert c["choice"] == b["choice"]


def test_a_budget_changes_the_choice_not_the_work(runs):
    e = runs["E"]
    assert e["code"] == 0, e["stderr"]
    assert {kind: entry["ran_now"] for kind, entry in e["tune"]["stages"].items()} == {kind: 0 for kind in KINDS}
    assert e["tune"]["budgets"]["latency_ms"] == TIGHT_MS and e["tune"]["budgets"]["flash_kb"] == 512
    for bd, choice in e["choice"]["choice"].items():
        mine = _cells(e, bd)
        fastest = min(mine, key=lambda c: c["latency_ms"]["p50"])
        assert choice["cell"] is None and choice["closest"] == fastest["id"]
        assert choice["misses"] == {"latency_ms": pytest.approx(fastest["latency_ms"]["p50"] - TIGHT_MS)}
        assert choice["message"].startswith(f"nothing fits on {bd}; closest: {fastest['id']} (latency_ms ")
        assert _one_line(choice["message"]) and not any(c["fits"] for c in mine)
    # the Pareto fronts are the grid's, whatever the budget
    assert e["tune"]["pareto"] == runs["B"]["tune"]["pareto"]


# -- 3. bad input: one line before any work -------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--budget", "speed=1"], "budget 'speed': no such budget; known: latency_ms, rss_mb, flash_kb, accuracy_drop"),
    (["--set", "grid.d=[1024]"], "d=1024 is larger than the teacher's 32 dimensions"),
    (["--set", "grid.qat=[true]", "grid.modes=[fp16]"], "a QAT student exports as int8 or dynamic only"),
])
def test_bad_input_is_one_line_before_work(runs, tmp_path, extra, message):
    out = tmp_path / "never"
    code, stdout, stderr = _tune(*runs["args"], "--out", out, *extra)
    # refused before any stage ran: not even the tune's first line ("tune: N student(s) ..."), no OUT
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not out.exists()


# -- 4. a board that stops answering mid-grid -----------------------------------------------------------------------

def test_a_board_killed_while_benchmarking_fails_its_own_cells_only(runs):
    d, dying = runs["D"], runs["dying"]
    assert runs["killed"], "the second sshd was never seen running device.bench"
    assert d["code"] == 1
    assert list(d["tune"]["boards"]) == ["local", runs["board"], dying]
    for cell in _cells(d, dying):
        assert cell["status"] == "failed" and _one_line(cell["error"]) and cell["latency_ms"] is None, cell
        assert cell["error"].startswith(f"{dying}: "), cell["error"]    # the board's own line, no class name
    reason = _cells(d, dying)[0]["error"]
    assert len(_cells(d, dying)) == len(tune_support.MODES)
    # the two other boards' cells are done, as run B left them (nothing of theirs ran again)
    others = [c for c in d["tune"]["cells"] if c["board"] != dying]
    assert others == runs["B"]["tune"]["cells"]
    assert d["tune"]["stages"]["bench"]["ran_now"] == len(tune_support.MODES)
    assert {k: v["ran_now"] for k, v in d["tune"]["stages"].items() if k != "bench"} == {k: 0 for k in KINDS[:-1]}
    assert d["tune"]["boards"][dying]["status"] == "failed" and d["tune"]["boards"][dying]["error"] == reason
    assert d["choice"]["choice"][dying] == {"cell": None, "closest": None,
                                            "message": f"nothing measured on {dying}: {reason}"}
    assert d["choice"]["choice"]["local"]["cell"] == runs["B"]["choice"]["choice"]["local"]["cell"]
    assert d["tune"]["pareto"][dying] == {axis: [] for axis in PARETO_AXES}
    code, table = d["status"]
    assert code == 1 and sum(f"bench {dying}/" in line and ": failed: " in line for line in table.splitlines()) == 2


# -- 5. a failed step is retried on the next run --------------------------------------------------------------------

def test_a_failed_step_is_retried_and_only_it(runs):
    a, b = runs["A"], runs["B"]
    assert a["code"] == 1
    n_files = len(tune_support.MODES)
    accuracy_cards = {p: s for p, (_, s) in a["cards"].items() if p.relative_to(runs["out"]).parts[0] == "accuracy"}
    assert len(accuracy_cards) == n_files and set(accuracy_cards.values()) == {"failed"}
    assert {p: s for p, (_, s) in a["cards"].items() if p not in accuracy_cards} == {
        p: "done" for p in a["cards"] if p not in accuracy_cards}
    for cell in a["tune"]["cells"]:
        assert cell["status"] == "failed" and _one_line(cell["error"]) and "UrbanSound8K.csv" in cell["error"], cell
        assert cell["latency_ms"]["p50"] > 0       # benchmarked all the same: only the accuracy is missing
    assert a["tune"]["stages"]["accuracy"] == {**a["tune"]["stages"]["accuracy"], "failed": n_files, "ran_now": n_files}
    # B: the accuracy steps, and nothing else, ran again
    assert {k: v["ran_now"] for k, v in b["tune"]["stages"].items()} == {
        **{k: 0 for k in KINDS}, "accuracy": n_files}
    changed = {p for p in b["cards"] if b["cards"][p] != a["cards"][p]}
    assert changed == set(accuracy_cards)
    assert all(json.loads(p.read_text())["attempt"] >= 2 for p in changed)
    assert all(c["status"] == "done" for c in b["tune"]["cells"])


# -- 6. sea-tf tune --status -----------------------------------------------------------------------------------------

def test_status_after_a_full_run_and_after_a_failing_one(runs):
    code, table = runs["B"]["status"]
    assert code == 0, table
    lines = table.splitlines()
    assert lines[0] == f"{runs['out']}: {len(runs['B']['cards'])} step(s)"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:2 + len(KINDS)]}
    n_files = len(tune_support.MODES)
    assert set(rows) == set(KINDS) and rows["bench"] == [str(2 * n_files), "0", "0", "0"]
    assert rows["accuracy"] == [str(n_files), "0", "0", "0"] and rows["export"] == ["1", "0", "0", "0"]
    assert lines[-1] == f"results: {runs['out'] / 'tune.json'}"
    code, table = runs["A"]["status"]
    assert code == 1
    failed = [line for line in table.splitlines() if ": failed: " in line]
    assert len(failed) == 2, table
    assert all(line.startswith("  accuracy ") and "UrbanSound8K.csv: metadata not found" in line for line in failed)
    assert "  accuracy       0       2        0        0" in table.splitlines()


def test_status_shows_a_step_left_running_by_a_killed_process_as_stopped(tmp_path):
    """A real process runs a step and is killed in it: its card stays ``running`` with a pid nobody has."""
    out = tmp_path / "out"
    script = ("import sys, time; from sea_tf.tune.steps import run_step; "
              "run_step(sys.argv[1], 'distill', 'sea-64.killed', {}, lambda folder: time.sleep(120), log=print)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not list(walk_steps(out)):
            assert proc.poll() is None and time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        code, table = _status(out)
        assert code == 1 and "  distill sea-64.killed: running" in table   # alive: still running
    finally:
        proc.kill()
        proc.wait()
    (card,) = walk_steps(out)
    assert card["status"] == "running" and card["pid"] == proc.pid
    printed = []
    assert status(out, print_fn=printed.append) == 1
    assert "  distill sea-64.killed: stopped" in printed
    assert printed[2].split() == ["distill", "0", "0", "0", "1"]
    assert printed[-1] == "results: not written yet (the tune has not reached its end)"


# -- 7. the report in a real headless Chromium ----------------------------------------------------------------------

def test_report_of_the_real_tune_in_chromium(runs, chromium, tmp_path):
    import base64

    tune = runs["D"]["tune"]
    page = runs["out"] / "report.html"
    (tmp_path / "profile").mkdir()
    browser = browser_support.Browser(chromium, tmp_path / "profile")
    try:
        browser.load(page.as_uri())
        counts = browser.evaluate("""Object.fromEntries([...document.querySelectorAll('svg.pareto')].map(s =>
            [s.dataset.board + ' ' + s.dataset.axis,
             [...s.querySelectorAll('circle.cell')].map(c => c.dataset.cell).sort()]))""")
        chosen = browser.evaluate("""[...document.querySelectorAll('.chosen')].map(e =>
            [e.tagName.toLowerCase(), e.getAttribute('data-cell')])""")
        rows = browser.evaluate("[...document.querySelectorAll('#cells tbody tr')].map(r => r.dataset.cell)")
        shot = browser.send("Page.captureScreenshot", format="png")
        errors, requests = browser.errors(), browser.requests()
    finally:
        browser.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    # one point per done cell per board on each plot; the killed board has none
    expected = {f"{bd} {axis}": sorted(c["id"] for c in tune["cells"] if c["board"] == bd and c["status"] == "done")
                for bd in tune["boards"] for axis in PARETO_AXES}
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in expected.items() if v}
    assert all(not counts.get(f"{runs['dying']} {axis}") for axis in PARETO_AXES)
    assert sorted(rows) == sorted(c["id"] for c in tune["cells"])
    # the chosen cell of each board that has one: its point on both plots and its table row
    for bd, choice in tune["choice"].items():
        marked = sorted(tag for tag, cell in chosen if cell == choice["cell"])
        assert marked == (["circle", "circle", "tr"] if choice["cell"] else []), (bd, chosen)
    png = tmp_path / "report.png"
    png.write_bytes(base64.b64decode(shot["data"]))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(np.int64)
    assert len(np.unique(pixels @ np.array([1 << 16, 1 << 8, 1]))) > 100    # text, axes, markers: not a blank page
