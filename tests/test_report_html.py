"""The browser report (sea_tf.report_html; issue #25 item 4) in a real headless Chromium: the page of a
tune grid loads from file:// with no console error and no request, draws one point per done cell per
board with the Pareto front, the chosen cell and the budgets, sorts its table, and shows a cell's
numbers on hover and its card on click; ``sea-tf report --html`` writes the same page for a report."""
import html
import json
import struct
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import browser_support
from sea_tf.cli import main as cli_main
from sea_tf.report import pareto_front
from sea_tf.report_html import render_tune_page, write_tune_page
from test_report import results  # noqa: F401 - the report's input files (device, export, classify JSONs)

# --- a realistic small grid: 2 students x 2 modes on 2 boards, one cell failed, budgets set ------------------------

LATENCY_BUDGET, FLASH_BUDGET, ACCURACY_DROP = 25.0, 512.0, 0.02
BUDGETS = {"latency_ms": LATENCY_BUDGET, "rss_mb": None, "flash_kb": FLASH_BUDGET, "accuracy_drop": ACCURACY_DROP}
# (preset, mode) -> accuracy, size in bytes; latency p50 (ms) per board (None: the bench failed there)
ARTIFACTS: dict[tuple[str, str], tuple[float, int]] = {
    ("sea-64", "fp32"): (0.695, 900_000), ("sea-64", "int8"): (0.69, 250_000),
    ("sea-128", "fp32"): (0.71, 1_800_000), ("sea-128", "int8"): (0.705, 470_000)}
LATENCY: dict[str, dict[tuple[str, str], float | None]] = {
    "local": {("sea-64", "fp32"): 0.62, ("sea-64", "int8"): 0.41, ("sea-128", "fp32"): 2.4, ("sea-128", "int8"): 1.3},
    "pi4": {("sea-64", "fp32"): 45.0, ("sea-64", "int8"): 28.0, ("sea-128", "fp32"): 88.0, ("sea-128", "int8"): None}}
ERROR = "RemoteError: pi4 stopped answering during bench (ssh: timed out after 30 s) </script><b>not bold</b>"
FACTS: dict[str, dict[str, Any]] = {
    "local": {"cpu_model": "AMD EPYC 7B13", "cores": 2, "governor": None, "freq_mhz": 2450.0,
              "temperature_c": {"before": None, "after": None}, "throttled": False},
    "pi4": {"cpu_model": "Raspberry Pi 4 Model B Rev 1.4", "cores": 4, "governor": "ondemand",
            "freq_mhz": {"before": 1500, "after": 1000}, "temperature_c": {"before": 61.3, "after": 82.5},
            "throttled": True}}


def cell_id(preset: str, mode: str, board: str) -> str:
    return f"{preset}.published.s0.random.pca64/{mode}.auto/t1.xnnpack@{board}"


def tune_grid() -> dict[str, Any]:
    """A tune.json dict (schema sea-tf-tune/1) as sea-tf tune writes it: 8 cells, Pareto fronts, the choice."""
    reference = max(acc for acc, _ in ARTIFACTS.values())
    cells: list[dict[str, Any]] = []
    for board, latencies in LATENCY.items():
        for (preset, mode), p50 in latencies.items():
            acc, size = ARTIFACTS[(preset, mode)]
            artifact = f"{preset}.published.s0.random.pca64/{mode}.auto"
            cell: dict[str, Any] = {"id": cell_id(preset, mode, board), "status": "done" if p50 else "failed",
                    "error": None if p50 else ERROR, "board": board, "artifact": artifact,
                    "student": {"preset": preset, "head": "published", "sparsity": 0.0, "qat": False},
                    "sampling": "random", "reduction": {"method": "pca", "d": 64},
                    "export": {"mode": mode, "placement": "auto"}, "bench": {"threads": 1, "xnnpack": True},
                    "accuracy": acc, "fidelity": {"cosine_mean": 0.97, "cosine_p5": 0.93},
                    "latency_ms": {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.4} if p50 else None,
                    "peak_rss_mb": 41.0 if p50 else None, "size_bytes": size, "gzip_bytes": int(size * 0.8),
                    "macs": 2.1e6, "throttled": board == "pi4" and p50 is not None,
                    "wall_time_s": {"distill": 80.1, "export": 12.0, "bench": 3.1, "classify": 20.0},
                    "card": {"distill": f"distill/{preset}/card.json", "export": f"export/{artifact}/card.json",
                             "bench": f"bench/{board}/{mode}/card.json"}}
            if p50:
                excess = {"latency_ms": p50 - LATENCY_BUDGET, "flash_kb": size / 1024 - FLASH_BUDGET,
                          "accuracy_drop": reference - acc - ACCURACY_DROP}
                misses = {k: round(v, 6) for k, v in excess.items() if v > 1e-9}
                cell.update(fits=not misses, misses=misses)
            else:
                cell.update(fits=None, misses={})
            cells.append(cell)
    pareto: dict[str, dict[str, list[str]]] = {}
    for board in LATENCY:
        done = [c for c in cells if c["board"] == board and c["status"] == "done"]
        costs = {"latency": [c["latency_ms"]["p50"] for c in done], "size": [c["size_bytes"] for c in done]}
        pareto[board] = {axis: [done[i]["id"] for i in pareto_front([(x, c["accuracy"]) for x, c in zip(xs, done)])]
                         for axis, xs in costs.items()}
        for c in done:
            c["pareto"] = {axis: c["id"] in ids for axis, ids in pareto[board].items()}
    return {"schema": "sea-tf-tune/1", "created": "2026-12-07T05:00:00Z",
            "task": {"kind": "us8k", "metric": "accuracy", "label": "UrbanSound8K accuracy (3 folds)"},
            "budgets": BUDGETS, "reference_accuracy": reference,
            "boards": {b: {"label": b, "status": "ok", "error": None, "facts": FACTS[b]} for b in LATENCY},
            "cells": cells, "pareto": pareto,
            "choice": {"local": {"cell": cell_id("sea-128", "int8", "local"),
                                 "message": "the most accurate cell within every budget (70.5 %)"},
                       "pi4": {"cell": None, "closest": cell_id("sea-64", "int8", "pi4"),
                               "message": f"nothing fits on pi4; closest: {cell_id('sea-64', 'int8', 'pi4')} "
                                          "(latency_ms over by 3 ms)"}}}


CHOSEN = cell_id("sea-128", "int8", "local")
FAILED = cell_id("sea-128", "int8", "pi4")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The grid's report.html (written as sea-tf tune writes it) and its dict."""
    path = tmp_path_factory.mktemp("tune") / "report.html"
    tune = tune_grid()
    assert write_tune_page(tune, path, title="sea-tf tune: demo grid") == path
    return path, tune


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[browser_support.Browser]:
    b = browser_support.Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


class Elements(HTMLParser):
    """The dumped DOM's SVG plots (their circles and budget lines), the table's rows, and ``.chosen`` elements."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, Any]] = []
        self.rows: list[dict[str, str | None]] = []
        self.chosen: list[tuple[str, dict[str, str | None]]] = []
        self._svg: dict[str, Any] | None = None
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "chosen" in classes:
            self.chosen.append((tag, a))
        if tag == "svg" and "pareto" in classes:
            self._svg = {"attrs": a, "circles": [], "budgets": [], "front": 0}
            self.svgs.append(self._svg)
        elif self._svg is not None and tag == "circle" and "cell" in classes:
            self._svg["circles"].append(a)
        elif self._svg is not None and tag == "line" and "budget" in classes:
            self._svg["budgets"].append(a["data-budget"])
        elif self._svg is not None and tag == "path" and "front" in classes:
            self._svg["front"] += 1
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and self._table == "cells" and "data-cell" in a:
            self.rows.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        elif tag == "table":
            self._table = None


def _point(browser: browser_support.Browser, board: str, axis: str, cell: str) -> tuple[float, float]:
    """Viewport centre of a plotted cell, scrolled into view."""
    selector = f'svg.pareto[data-board="{board}"][data-axis="{axis}"] circle.cell[data-cell="{cell}"]'
    return browser.evaluate(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
        e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
        return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")


def test_page_draws_one_point_per_done_cell(chromium: str, page: tuple[Path, dict[str, Any]]) -> None:
    path, tune = page
    dom, console = browser_support.headless(chromium, path.as_uri(), "--dump-dom")
    assert console == []   # the page logs nothing: any line is an error or an uncaught exception
    found = Elements()
    found.feed(dom)
    plots = {(s["attrs"]["data-board"], s["attrs"]["data-axis"]): s for s in found.svgs}
    assert set(plots) == {(b, axis) for b in ("local", "pi4") for axis in ("latency", "size")}
    for (board, axis), svg in plots.items():
        done = {c["id"] for c in tune["cells"] if c["board"] == board and c["status"] == "done"}
        assert sorted(c["data-cell"] for c in svg["circles"]) == sorted(done), (board, axis)
        assert svg["front"] == 1
        # latency/flash budget vertical, the accuracy floor (0.71 - 0.02) horizontal
        assert sorted(svg["budgets"]) == sorted(["accuracy", "latency_ms" if axis == "latency" else "flash_kb"])
    # the chosen cell: its point on both plots of its board and its table row; pi4 has none
    assert sorted((tag, a.get("data-cell")) for tag, a in found.chosen if a.get("data-cell")) == [
        ("circle", CHOSEN), ("circle", CHOSEN), ("tr", CHOSEN)]
    assert [a["data-cell"] for a in found.rows] == [c["id"] for c in tune["cells"]]
    assert 'class="chosen-ring"' in dom and ">chosen</text>" in dom
    # the failed cell's error is text in its row, not markup
    assert html.escape(ERROR, quote=False) in dom and "<b>not bold</b>" not in dom
    assert f"nothing fits on pi4; closest: <code>{cell_id('sea-64', 'int8', 'pi4')}</code> (latency_ms" in dom
    assert "This board throttled while measuring" in dom


def test_screenshot_shows_the_plots(chromium: str, page: tuple[Path, dict[str, Any]]) -> None:
    path, _ = page
    png = path.with_name("report.png")
    browser_support.headless(chromium, path.as_uri(), f"--screenshot={png}", "--window-size=1400,1000")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1400, 1000)
    from PIL import Image
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(np.int32)
    assert len(np.unique(pixels @ np.array([1 << 16, 1 << 8, 1]))) > 200   # text, lines, markers: not a blank page

    def near(rgb: tuple[int, int, int], tol: int = 40) -> int:
        """Pixels of about ``rgb``: anti-aliasing and fill-opacity 0.9 over white blend a marker's colour."""
        return int((np.abs(pixels - np.array(rgb)) <= tol).all(axis=1).sum())
    # the first screen shows the plots: many pixels of the int8 (#D55E00) and fp32 (#0072B2) markers
    assert near((0xD5, 0x5E, 0x00)) > 300 and near((0x00, 0x72, 0xB2)) > 300


def test_hover_shows_the_cell_and_click_shows_its_card(browser: browser_support.Browser,
                                                      page: tuple[Path, dict[str, Any]]) -> None:
    path, tune = page
    browser.load(path.as_uri())
    target = cell_id("sea-64", "int8", "pi4")
    x, y = _point(browser, "pi4", "latency", target)
    browser.mouse("mouseMoved", x, y)
    tip = browser.evaluate("[document.getElementById('tooltip').hidden, document.getElementById('tooltip').innerText]")
    assert tip[0] is False and target in tip[1] and "accuracy 69 %" in tip[1] and "latency p50 28 ms" in tip[1]
    assert browser.evaluate("document.getElementById('card').hidden") is True
    browser.click(x, y)
    card = browser.evaluate("""[document.getElementById('card').hidden,
        document.querySelector('#card .card-id').textContent,
        [...document.querySelectorAll('#card dt')].map(e => e.textContent),
        [...document.querySelectorAll('#card dd a')].map(e => e.getAttribute('href'))]""")
    assert card[0] is False and card[1] == target
    assert {"accuracy", "latency_ms.p50", "size_bytes", "export.mode", "bench.xnnpack"} <= set(card[2])
    assert card[3] == list(next(c for c in tune["cells"] if c["id"] == target)["card"].values())
    browser.mouse("mouseMoved", 5, 5)
    assert browser.evaluate("document.getElementById('tooltip').hidden") is True
    # a table row opens its card too: the failed cell, with its error
    browser.evaluate(f"document.querySelector('#cells tr[data-cell={json.dumps(FAILED)}] td.id').click()")
    assert browser.evaluate("document.querySelector('#card .card-id').textContent") == FAILED
    assert ERROR in browser.evaluate("document.querySelector('#card dl').textContent")
    assert browser.errors() == []
    assert all(url.startswith("file://") for url in browser.requests()), browser.requests()


def test_table_sorts_by_a_numeric_column(browser: browser_support.Browser, page: tuple[Path, dict[str, Any]]) -> None:
    path, tune = page
    browser.load(path.as_uri())
    column = "[...document.querySelectorAll('#cells th')].findIndex(th => th.textContent.startsWith('latency p50'))"
    order = f"""(() => {{ const i = {column};
        document.querySelectorAll('#cells th')[i].querySelector('button').click();
        return [...document.querySelectorAll('#cells tbody tr')].map(r => r.getAttribute('data-cell')); }})()"""
    p50 = {c["id"]: c["latency_ms"]["p50"] for c in tune["cells"] if c["latency_ms"]}
    # numeric, not text order (88 after 28 and 45; 0.41 first); the failed cell has none: last both ways
    ascending = sorted(p50, key=lambda k: p50[k]) + [FAILED]
    assert browser.evaluate(order) == ascending
    assert browser.evaluate(order) == ascending[-2::-1] + [FAILED]
    assert browser.evaluate(f"document.querySelectorAll('#cells th')[{column}].getAttribute('aria-sort')") == "descending"
    assert browser.errors() == []


def test_data_strings_are_text_never_markup(browser: browser_support.Browser, tmp_path: Path) -> None:
    tune = tune_grid()
    tune["cells"][0]["id"] = nasty = 'sea-64"</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    tune["task"]["label"] = "<i>task</i> & co"
    text = render_tune_page(tune, title="</title><script>window.pwned=3</script>")
    assert "<script>window.pwned" not in text and "<img src=x" not in text
    (tmp_path / "report.html").write_text(text)
    browser.load((tmp_path / "report.html").as_uri())
    assert browser.evaluate("window.pwned === undefined && document.scripts.length") == 2   # the data and the page's
    assert browser.evaluate("document.title") == "</title><script>window.pwned=3</script>"
    assert browser.evaluate("document.querySelector('#cells td.id').textContent") == nasty
    assert browser.evaluate("document.querySelectorAll('circle.cell').length") == 7 * 2
    assert browser.errors() == [] and all(u.startswith("file://") for u in browser.requests())


def test_cli_report_html(results: Path, tmp_path: Path, browser: browser_support.Browser,  # noqa: F811 - imported fixture
                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert cli_main.main(["report", str(results), "--out", str(out)]) == 0
    assert not (out / "report.html").exists()       # html: false by default (configs/report.yaml)
    assert cli_main.main(["report", str(results), "--out", str(out), "--html"]) == 0, capsys.readouterr().err
    assert str(out / "report.html") in capsys.readouterr().out
    rows = json.loads((out / "rows.json").read_text())
    browser.load((out / "report.html").as_uri())
    assert browser.errors() == []
    counts = browser.evaluate("""Object.fromEntries([...document.querySelectorAll('svg.pareto')].map(s =>
        [s.dataset.board + ' ' + s.dataset.axis, s.querySelectorAll('circle.cell').length]))""")
    # a point per row with accuracy measured on its own artifact (inherited, †, never plots) and that cost
    measured = [r for r in rows if r.get("accuracy") is not None and not r["accuracy_inherited"]]
    expected = {f"{board} {axis}": sum(1 for r in measured if (r["device"] or "no device run") == board
                                       and r.get(key) is not None)
                for board in {r["device"] or "no device run" for r in rows}
                for axis, key in (("latency", "latency_ms"), ("size", "size_bytes"))}
    assert counts == expected and counts["pi4 latency"] == 1 and counts["pi5 latency"] == 1
    assert browser.evaluate("document.querySelectorAll('#cells tbody tr').length") == len(rows)
    # sea-64 fp32 on pi4 carries its float model's accuracy: in the table, marked †, and explained
    assert browser.evaluate("""document.querySelector('#cells tr[data-cell="sea-64 [fp32] @pi4"]').cells[
        [...document.querySelectorAll('#cells th')].findIndex(th => th.textContent.startsWith('accuracy'))].textContent"""
                            ) == "70.0 †"
    assert "† the accuracy of the float model" in (out / "report.html").read_text()
    assert browser.evaluate("document.querySelectorAll('.chosen').length") == 0
