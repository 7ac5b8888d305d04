"""One self-contained HTML page of a grid of measured cells: the page ``sea-tf tune`` writes as
``DIR/report.html`` and ``sea-tf report --html`` beside ``report.md`` (issue #25 item 4).

The page takes the ``tune.json`` dict (schema ``sea-tf-tune/1``, docs: ``sea_tf.tune.results``) and
opens from ``file://`` with no network at all: its style sheet and script (``report_html.css``,
``report_html.js`` beside this module) are inlined, and the data is the dict itself, embedded as JSON
in a ``<script type="application/json">``. What a reader needs without JavaScript is rendered here:
the task, budgets and choice per board, the table of every cell, the board facts. The script only
adds what needs it: the Pareto plots (SVG), sorting the table, the tooltip on hover and the cell's
card on click. The plots are the page's own SVG (scatter, a step line, dashed lines and ticks)
rather than a plotting library, which would be inlined into every report at hundreds of KB.

Reading order: :func:`render_tune_page` (header, table, facts, the embedded data), then
``report_html.js`` (plots, sorting, tooltip, card). Elements tests and readers can rely on:
``svg.pareto[data-board][data-axis=latency|size]``, ``circle.cell[data-cell]``, ``.chosen`` (the
chosen cell's point and table row), ``line.budget[data-budget]``, ``table#cells``, ``#card``,
``#tooltip``.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

from sea_tf import atomic
from sea_tf.errors import DataError

SCHEMA = "sea-tf-tune/1"
_ASSETS = Path(__file__).resolve().parent

# Colour per export mode (Okabe-Ito, safe for colour-blind readers); modes not listed take the rest in order.
MODE_COLORS = {"fp32": "#0072B2", "fp16": "#56B4E9", "float16": "#56B4E9", "dynamic": "#009E73",
               "int8": "#D55E00", "int16x8": "#CC79A7", "keras": "#555555"}
_OTHER_COLORS = ["#E69F00", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF"]

# Board facts shown first, in this order, with these names; any other fact follows under its own key.
_FACTS = {"cpu_model": "CPU", "cores": "cores", "governor": "governor", "freq_mhz": "frequency (MHz)",
          "temperature_c": "temperature (°C)", "throttled": "throttled"}

Cell = Mapping[str, Any]


def render_tune_page(tune: Mapping[str, Any], *, title: str) -> str:
    """The HTML page of a grid of measured cells, as one self-contained string.

    Parameters
    ----------
    tune : dict
        A ``tune.json`` dict (schema ``sea-tf-tune/1``): ``task``, ``budgets``,
        ``reference_accuracy``, ``boards``, ``cells``, ``pareto``, ``choice``. Accuracy is a fraction,
        latency in ms per window (``latency_ms.p50``; an optional top-level ``latency_stat`` names
        another statistic), size in bytes, peak RSS in MB. Missing sections are shown as absent.
    title : str
        The page's ``<title>`` and heading.

    Returns
    -------
    str
        The page (UTF-8 text); every string of ``tune`` is escaped.

    Raises
    ------
    DataError
        ``tune`` names another schema, or has no list of cells.
    """
    if tune.get("schema", SCHEMA) != SCHEMA or not isinstance(tune.get("cells"), list):
        raise DataError(f"the page needs a {SCHEMA} dict with a list of cells, got schema {tune.get('schema')!r} "
                        "and cells of type " + type(tune.get("cells")).__name__
                        + "; pass the tune.json that `sea-tf tune` wrote")
    stat = str(tune.get("latency_stat") or "p50")
    cells: list[Cell] = tune["cells"]
    colors = _mode_colors(cells)
    boards = _boards(tune)
    chosen = {str(c["cell"]) for c in (tune.get("choice") or {}).values() if isinstance(c, Mapping) and c.get("cell")}
    payload = {"tune": _finite(tune), "latency_stat": stat, "colors": colors}
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no request may leave the page: a report opened offline, or years later, must look the same
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_e(title)}</title>", f"<style>\n{(_ASSETS / 'report_html.css').read_text()}</style>", "</head>",
        "<body>", "<main>", _header(tune, title, boards), _plots(boards), _table(cells, stat, colors, chosen),
        _facts(tune, boards), "</main>",
        '<aside id="card" hidden aria-live="polite" aria-label="cell card">'
        '<button type="button" class="close" aria-label="close the card">×</button>'
        '<h2 class="card-id"></h2><dl></dl><details><summary>JSON</summary><pre></pre></details></aside>',
        '<div id="tooltip" role="tooltip" hidden></div>',
        f'<script type="application/json" id="tune-data">{_script_json(payload)}</script>',
        f"<script>\n{(_ASSETS / 'report_html.js').read_text()}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_tune_page(tune: Mapping[str, Any], path: Path, *, title: str) -> Path:
    """Write :func:`render_tune_page` of ``tune`` to ``path`` atomically; returns ``path``."""
    atomic.write_text(path, render_tune_page(tune, title=title))
    return Path(path)


# --- the parts rendered on the server side (readable without JavaScript) ---------------------------------------------

def _header(tune: Mapping[str, Any], title: str, boards: list[str]) -> str:
    task = tune.get("task") or {}
    created = f" · created {_e(tune['created'])}" if tune.get("created") else ""
    lines = [f"<header><h1>{_e(title)}</h1>",
             f'<p class="subtitle">{_e(task.get("label") or task.get("kind") or "task not named")}{created} · '
             f"{len(tune['cells'])} cell(s) on {len(boards)} board(s)</p>",
             f'<dl class="summary"><dt>Budgets</dt><dd>{_budgets_text(tune)}</dd><dt>Choice</dt><dd>']
    choice = tune.get("choice") or {}
    if not choice:
        lines.append("none: no budgets were given, so no cell is chosen")
    else:
        lines.append('<ul class="choices">')
        for board in boards:
            c = choice.get(board) or {}
            message = str(c.get("message") or "no choice recorded")
            # the cell id set as code: inside the message where it names the cell, else before it
            ids = [str(i) for i in (c.get("cell"), c.get("closest")) if i]
            named = next((i for i in ids if i in message), None)
            text = (_e(message).replace(_e(named), f"<code>{_e(named)}</code>", 1) if named
                    else (f"<code>{_e(ids[0])}</code> " if ids and c.get("cell") else "") + _e(message))
            kind = "fits" if c.get("cell") else "nothing-fits"
            lines.append(f'<li class="choice {kind}" data-board="{_e(board)}"><strong>{_e(_label(tune, board))}</strong>: '
                         f'<span class="message">{text}</span></li>')
        lines.append("</ul>")
    lines.append("</dd></dl></header>")
    return "\n".join(lines)


def _budgets_text(tune: Mapping[str, Any]) -> str:
    b = tune.get("budgets") or {}
    ref = tune.get("reference_accuracy")
    parts = []
    if _num(b.get("latency_ms")):
        parts.append(f"latency p50 ≤ {_g(b['latency_ms'])} ms")
    if _num(b.get("rss_mb")):
        parts.append(f"peak RSS ≤ {_g(b['rss_mb'])} MB")
    if _num(b.get("flash_kb")):
        parts.append(f"file size ≤ {_g(b['flash_kb'])} KB")
    drop = b.get("accuracy_drop")
    if _num(drop) and _num(ref):
        parts.append(f"accuracy ≥ {100 * (ref - drop):.1f} % (the best cell's {100 * ref:.1f} % − "
                     f"{100 * drop:.1f} points)")
    elif _num(drop):
        parts.append(f"accuracy drop ≤ {100 * drop:.1f} points")
    return _e(" · ".join(parts)) if parts else "none given"


def _plots(boards: list[str]) -> str:
    out = ['<section id="plots"><h2>Pareto plots</h2>',
           '<p class="hint">One point per measured cell of the board, coloured by export mode; the step line joins '
           "the Pareto front (no other cell is both cheaper and more accurate). Hover a point for its numbers, "
           "click it for its card.</p>"]
    for board in boards:
        out.append(f'<section class="board-plots" data-board="{_e(board)}"><h3>{_e(board)}</h3><div class="plots">')
        for axis in ("latency", "size"):
            out.append(f'<figure class="plot" data-board="{_e(board)}" data-axis="{axis}">'
                       '<p class="nojs">The plots are drawn by JavaScript; the table below holds every number.</p></figure>')
        out.append('</div><div class="legend" data-board="' + _e(board) + '"></div></section>')
    out.append("</section>")
    return "\n".join(out)


def _table(cells: list[Cell], stat: str, colors: dict[str, str], chosen: set[str]) -> str:
    heads = [("cell", "text"), ("board", "text"), ("student", "text"), ("mode", "text"),
             ("threads", "num"), ("XNNPACK", "text"), ("accuracy (%)", "num"), (f"latency {stat} (ms)", "num"),
             (f"{_tail(stat)} (ms)", "num"), ("size (KB)", "num"), ("RSS (MB)", "num"), ("fits", "text"),
             ("notes", "text")]
    out = ['<section id="table"><h2>All cells</h2>',
           '<p class="hint">Click a column header to sort (again: the other way); click a row for the cell\'s card.'
           + (" † the accuracy of the float model the artifact was converted from, not measured on the artifact: "
              "never plotted." if any(_num(c.get("accuracy_of_float_model")) for c in cells) else "") + "</p>",
           '<div class="table-wrap"><table id="cells"><thead><tr>']
    out += [f'<th scope="col" data-type="{kind}">{_e(name)}</th>' for name, kind in heads]
    out.append("</tr></thead><tbody>")
    for c in cells:
        row = _row(c, stat, colors)
        classes = " ".join(k for k, on in (("chosen", c.get("id") in chosen), ("failed", c.get("status") == "failed"),
                                           ("throttled", c.get("throttled") is True)) if on)
        out.append(f'<tr data-cell="{_e(c.get("id"))}"' + (f' class="{classes}"' if classes else "") + ">"
                   + "".join(row) + "</tr>")
    out.append("</tbody></table></div></section>")
    return "\n".join(out)


def _row(c: Cell, stat: str, colors: dict[str, str]) -> list[str]:
    """The ``<td>`` of one cell; ``data-v`` holds the value the script sorts by (empty: none)."""
    def td(text: str, value: object = None, *, cls: str = "", raw: bool = False) -> str:
        v = "" if value is None else str(value)
        attr = f' class="{cls}"' if cls else ""
        return f'<td{attr} data-v="{_e(v)}">{text if raw else _e(text)}</td>'

    student = c.get("student") or {}
    export = c.get("export") or {}
    bench = c.get("bench") or {}
    latency = c.get("latency_ms") or {}
    mode = export.get("mode")
    size_kb = c["size_bytes"] / 1024 if _num(c.get("size_bytes")) else None
    name = " ".join(str(p) for p in [student.get("preset"), _sparsity(student.get("sparsity")),
                                     "QAT" if student.get("qat") else None] if p)
    swatch = f'<span class="swatch" style="background:{colors[mode]}"></span>' if mode in colors else ""
    mode_text = "/".join(str(p) for p in (mode, export.get("placement")) if p)
    notes: list[str] = []
    if c.get("status") != "done":
        notes.append(f'<span class="error">{_e(c.get("status") or "no status")}: {_e(c.get("error") or "no reason given")}</span>')
    if c.get("throttled") is True:
        notes.append('<span class="warning">throttled</span>')
    if c.get("misses"):
        notes.append("misses " + _e(", ".join(_miss(k, v) for k, v in c["misses"].items())))
    if c.get("note"):
        notes.append(_e(c["note"]))
    xnn = bench.get("xnnpack")
    # a long cell id may break after each "/" and before "@", never inside a name (at its hyphens)
    cell_id = "<wbr>".join(f'<span class="seg">{_e(part)}</span>'
                           for part in re.split(r"(?<=/)|(?=@)", str(c.get("id") or "")))
    return [td(cell_id, c.get("id"), cls="id", raw=True), td(str(c.get("board") or "—"), c.get("board")),
            td(name or "—", name or None),
            td(swatch + _e(mode_text or "—"), mode_text or None, cls="mode", raw=True),
            td(_g(bench.get("threads")), bench.get("threads"), cls="num"),
            td("—" if xnn is None else "on" if xnn else "off", xnn),
            _accuracy(c, td),
            td(_g(latency.get(stat)), latency.get(stat) if _num(latency.get(stat)) else None, cls="num"),
            td(_g(latency.get(_tail(stat))), latency.get(_tail(stat)) if _num(latency.get(_tail(stat))) else None,
               cls="num"),
            td("—" if size_kb is None else f"{size_kb:.1f}", size_kb, cls="num"),
            td(_g(c.get("peak_rss_mb")), c.get("peak_rss_mb") if _num(c.get("peak_rss_mb")) else None, cls="num"),
            td("yes" if c.get("fits") is True else "no" if c.get("fits") is False else "—", c.get("fits")),
            td(" · ".join(notes), " ".join(notes) or None, raw=True)]


def _accuracy(c: Cell, td: Any) -> str:
    """The accuracy cell; ``sea-tf report`` rows may carry only their float model's (†), never plotted."""
    if _num(c.get("accuracy")):
        return str(td(f"{100 * c['accuracy']:.1f}", c["accuracy"], cls="num"))
    if _num(c.get("accuracy_of_float_model")):
        return str(td(f"{100 * c['accuracy_of_float_model']:.1f} †", c["accuracy_of_float_model"], cls="num"))
    return str(td("—", None, cls="num"))


def _facts(tune: Mapping[str, Any], boards: list[str]) -> str:
    out = ['<section id="boards"><h2>Boards</h2><div class="board-facts">']
    known = tune.get("boards") or {}
    for board in boards:
        b = known.get(board) or {}
        facts = dict(b.get("facts") or {})
        out.append(f'<div class="board" data-board="{_e(board)}"><h3>{_e(_label(tune, board))}'
                   f' <span class="status">{_e(b.get("status") or "")}</span></h3>')
        if b.get("error"):
            out.append(f'<p class="error">{_e(b["error"])}</p>')
        if facts.get("throttled") or b.get("throttled") or any(c.get("throttled") is True for c in tune["cells"] if c.get("board") == board):
            out.append('<p class="warning" role="alert">⚠ This board throttled while measuring: its latencies are '
                       "slower than the board can run; cool it (or fix its power supply) and measure again.</p>")
        items = [(_FACTS[k], facts.pop(k)) for k in list(_FACTS) if k in facts] + sorted(facts.items())
        if items:
            out.append("<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(_fact(v))}</dd>" for k, v in items) + "</dl>")
        else:
            out.append('<p class="muted">no facts recorded</p>')
        out.append("</div>")
    out.append("</div></section>")
    return "\n".join(out)


# --- small helpers ----------------------------------------------------------------------------------------------------

def _boards(tune: Mapping[str, Any]) -> list[str]:
    """Board keys: those of ``boards`` in order, then any a cell names that ``boards`` does not."""
    boards = [str(b) for b in tune.get("boards") or {}]
    for c in tune["cells"]:
        if c.get("board") is not None and str(c["board"]) not in boards:
            boards.append(str(c["board"]))
    return boards


def _label(tune: Mapping[str, Any], board: str) -> str:
    return str(((tune.get("boards") or {}).get(board) or {}).get("label") or board)


def _mode_colors(cells: list[Cell]) -> dict[str, str]:
    modes = sorted({str((c.get("export") or {}).get("mode")) for c in cells if (c.get("export") or {}).get("mode")})
    others = iter(_OTHER_COLORS * (1 + len(modes) // len(_OTHER_COLORS)))
    return {m: MODE_COLORS.get(m) or next(others) for m in modes}


def _tail(stat: str) -> str:
    """The table's second latency statistic: the tail beside the plotted one."""
    return "p99" if stat == "p90" else "p90"


def _miss(budget: str, excess: object) -> str:
    """One missed budget and by how much, in the budget's unit (``accuracy_drop``: a fraction, shown in points)."""
    if budget == "accuracy_drop" and _num(excess):
        return f"accuracy by {100 * excess:.1f} points"
    unit = {"latency_ms": ("latency", "ms"), "flash_kb": ("size", "KB"), "rss_mb": ("RSS", "MB")}.get(budget)
    return f"{unit[0]} by {_g(excess)} {unit[1]}" if unit else f"{budget} by {_g(excess)}"


def _fact(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fact(v) for v in value)
    return "—" if value is None else _g(value) if isinstance(value, float) else str(value)


def _sparsity(value: object) -> str | None:
    return f"{100 * value:g} % sparse" if _num(value) and value else None


def _num(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _g(value: object) -> str:
    """A number in 4 significant digits (``—`` when absent)."""
    if not _num(value):
        return "—" if value is None else str(value)
    return f"{value:.4g}"


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: ``JSON.parse`` refuses Python's ``NaN``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _script_json(obj: Any) -> str:
    """JSON that cannot end its ``<script>`` element early: ``<``, ``>`` and ``&`` (which occur only
    inside JSON strings) as ``\\u`` escapes, so a ``</script>`` or ``<!--`` in the data stays text."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
