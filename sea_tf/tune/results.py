"""A tune's results: the cells, the Pareto front per board, the choice under the budgets, and the files.

``OUT/tune.json`` (schema ``sea-tf-tune/1``, docs/TUNE.md) holds one cell per (exported file, threads,
XNNPACK, board): its accuracy (the downstream task's headline figure, through the ``.tflite``),
fidelity to the float student, latency p50/p90/p99 of one window, peak RSS, file and gzip size, MACs,
whether the board throttled, and the time each of its steps took. ``OUT/choice.json`` holds, per
board, the most accurate cell within every budget, or "nothing fits; closest: …" with the budgets it
misses and by how much. ``OUT/report.html`` is the page to open (:mod:`sea_tf.report_html`).
"""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sea_tf import atomic
from sea_tf.config import Config
from sea_tf.tune.grid import Artifact, BenchSetting, Grid, StudentCell
from sea_tf.tune.steps import StepResult

SCHEMA = "sea-tf-tune/1"
#: Each downstream task's headline figure: its key in ``sea-tf classify``'s results, its short name, the
#: page's title for it
TASK_METRIC = {"us8k": ("accuracy_mean", "accuracy", "UrbanSound8K accuracy"),
               "esc50": ("accuracy_mean", "accuracy", "ESC-50 accuracy"),
               "ust": ("micro_auprc", "micro AUPRC", "SONYC-UST micro AUPRC")}
#: Each Pareto plot: its name → the cost it puts on the x axis (lower is better; accuracy is up)
PARETO_AXES = {"latency": ("latency_ms", "p50"), "size": ("size_bytes", None)}
#: Units of the budgets in messages
_UNITS = {"latency_ms": "ms", "rss_mb": "MiB", "flash_kb": "KiB", "accuracy_drop": ""}


def cost(cell: Mapping[str, Any], axis: str) -> float | None:
    """The x value of ``cell`` on Pareto axis ``axis`` (``latency``: p50 ms; ``size``: bytes)."""
    key, sub = PARETO_AXES[axis]
    value = cell.get(key)
    if sub is not None:
        value = (value or {}).get(sub)
    return None if value is None else float(value)


def pareto_front(cells: Sequence[Mapping[str, Any]], axis: str) -> list[str]:
    """Ids of the cells no other cell beats on both accuracy (higher) and ``axis`` cost (lower), by cost.

    A cell is on the front when every cheaper cell is strictly less accurate; of equal cost and
    accuracy the first keeps its place.
    """
    points = [(cost(c, axis), -float(c["accuracy"]), c["id"]) for c in cells
              if c.get("status") == "done" and c.get("accuracy") is not None and cost(c, axis) is not None]
    front: list[str] = []
    best: float | None = None
    for _, neg_acc, cell_id in sorted(points):
        if best is None or -neg_acc > best:
            front.append(cell_id)
            best = -neg_acc
    return front


def budget_misses(cell: Mapping[str, Any], budgets: Mapping[str, float | None],
                  reference_accuracy: float | None) -> dict[str, float]:
    """Each budget ``cell`` exceeds → by how much (in the budget's unit)."""
    measured = {"latency_ms": (cell.get("latency_ms") or {}).get("p50"), "rss_mb": cell.get("peak_rss_mb"),
                "flash_kb": cell["size_bytes"] / 1024 if cell.get("size_bytes") is not None else None,
                "accuracy_drop": (reference_accuracy - cell["accuracy"])
                if reference_accuracy is not None and cell.get("accuracy") is not None else None}
    misses = {}
    for key, limit in budgets.items():
        value = measured[key]
        if limit is not None and value is not None and value > limit + 1e-12:
            misses[key] = float(value - limit)
    return misses


def choose(cells: Sequence[Mapping[str, Any]], board: str, budgets: Mapping[str, float | None], *,
           metric: str = "accuracy") -> dict[str, Any]:
    """The most accurate done cell of ``board`` within every budget (ties: lower latency, then smaller file).

    ``metric`` names the cells' ``accuracy`` figure in the message (``micro AUPRC`` for SONYC-UST).

    Returns
    -------
    dict
        ``cell`` (its id, or None), ``message`` (one line), and for a choice its accuracy, latency and
        size; when nothing fits, ``closest`` (the cell missing its budgets by the least, relative to
        each budget) and its ``misses``.
    """
    mine = [c for c in cells if c["board"] == board and c["status"] == "done" and c.get("accuracy") is not None]
    if not mine:
        errors = [c.get("error") for c in cells if c["board"] == board and c.get("error")]
        why = f": {errors[0]}" if errors else ""
        return {"cell": None, "closest": None, "message": f"nothing measured on {board}{why}"}
    fitting = [c for c in mine if not c["misses"]]
    if fitting:
        best = min(fitting, key=lambda c: (-c["accuracy"], (c.get("latency_ms") or {}).get("p50") or 0.0,
                                           c.get("size_bytes") or 0))
        limits = ", ".join(f"{k} ≤ {v:g}" for k, v in budgets.items() if v is not None) or "no budget"
        return {"cell": best["id"], "accuracy": best["accuracy"], "latency_ms_p50": (best.get("latency_ms") or {}).get("p50"),
                "size_bytes": best.get("size_bytes"), "fits": len(fitting), "of": len(mine),
                "message": (f"{best['id']} ({metric} {best['accuracy']:.4f}, "
                            f"{(best.get('latency_ms') or {}).get('p50', float('nan')):.3f} ms p50, "
                            f"{(best.get('size_bytes') or 0) / 1024:.0f} KiB); {len(fitting)} of {len(mine)} cells "
                            f"within {limits}")}

    def shortfall(c: Mapping[str, Any]) -> float:
        return sum(excess / budgets[k] if budgets[k] else excess for k, excess in c["misses"].items())

    closest = min(mine, key=shortfall)
    detail = "; ".join(_miss_text(k, excess, budgets[k]) for k, excess in closest["misses"].items())
    return {"cell": None, "closest": closest["id"], "misses": closest["misses"],
            "message": f"nothing fits on {board}; closest: {closest['id']} ({detail})"}


def _miss_text(key: str, excess: float, limit: float | None) -> str:
    unit = _UNITS[key]
    return f"{key} {(limit or 0) + excess:.4g}{unit} > {limit:g}{unit} by {excess:.4g}{unit}".replace("  ", " ")


def write_results(cfg: Config, grid: Grid, out: Path, *, teacher: StepResult, samples: Mapping[str, StepResult],
                  reducers: Mapping[tuple[str, str, int], StepResult], students: Mapping[str, StepResult],
                  exports: Mapping[tuple[StudentCell, str], StepResult], accuracy: Mapping[Artifact, StepResult],
                  bench: Mapping[tuple[Artifact, BenchSetting, str], StepResult], wall_time_s: float,
                  log: Callable[[str], object]) -> dict[str, Any]:
    """Assemble the cells from the steps; write ``tune.json``, ``choice.json``, ``tune.md`` and ``report.html``."""
    cells = []
    for artifact in grid.artifacts:
        distilled = students[artifact.student.distill_key]
        export = exports[(artifact.student, artifact.placement)]
        acc = accuracy[artifact]
        file = exported_file(export, artifact.mode)
        for board in grid.boards:
            for setting in grid.bench:
                b = bench[(artifact, setting, board)]
                cells.append(_cell(grid, artifact, setting, board, distilled, export, acc, b, file))
    accurate = [c["accuracy"] for c in cells if c["status"] == "done" and c["accuracy"] is not None]
    reference = max(accurate) if accurate else None
    for c in cells:
        c["misses"] = budget_misses(c, grid.budgets, reference) if c["status"] == "done" else {}
        c["fits"] = c["status"] == "done" and not c["misses"]
    pareto = {board: {axis: pareto_front([c for c in cells if c["board"] == board], axis) for axis in PARETO_AXES}
              for board in grid.boards}
    for c in cells:
        c["pareto"] = {axis: c["id"] in pareto[c["board"]][axis] for axis in PARETO_AXES}
    metric, name, label = TASK_METRIC[cfg["task"]]
    choice = {board: choose(cells, board, grid.budgets, metric=name) for board in grid.boards}
    shared = {"teacher": teacher, **{f"sample {k}": v for k, v in samples.items()},
              **{f"reduce {'.'.join(map(str, k))}": v for k, v in reducers.items()}}
    tune = {"schema": SCHEMA, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "out": str(out), "task": {"kind": cfg["task"], "metric": metric, "label": label, "data": cfg["data"]},
            "budgets": grid.budgets, "reference_accuracy": reference,
            "boards": _boards(grid, cells, bench), "cells": cells, "pareto": pareto, "choice": choice,
            "shared": {name: _step_summary(step) for name, step in shared.items()},
            "stages": _stage_times([teacher, *samples.values(), *reducers.values(), *students.values(),
                                    *exports.values(), *accuracy.values(), *bench.values()]),
            "wall_time_s": round(wall_time_s, 2), "teacher": teacher.outputs.get("teacher")}
    atomic.write_json(out / "tune.json", tune)
    atomic.write_json(out / "choice.json", {"budgets": grid.budgets, "reference_accuracy": reference, "choice": choice})
    atomic.write_text(out / "tune.md", markdown(tune))
    _write_page(tune, out, log)
    for board in grid.boards:
        log(f"choice on {board}: {choice[board]['message']}")
    return tune


def exported_file(export: StepResult, mode: str) -> dict[str, Any]:
    """What an export step recorded of its ``mode`` file (path, sha256, sizes, fidelity); empty when it failed."""
    return dict((export.outputs.get("files") or {}).get(mode) or {})


def _write_page(tune: Mapping[str, Any], out: Path, log: Callable[[str], object]) -> None:
    from sea_tf.report_html import write_tune_page
    path = write_tune_page(dict(tune), out / "report.html", title=f"sea-tf tune: {tune['task']['label']}")
    log(f"report: {path}")


def _cell(grid: Grid, artifact: Artifact, setting: BenchSetting, board: str, distilled: StepResult,
          export: StepResult, acc: StepResult, b: StepResult, file: Mapping[str, Any]) -> dict[str, Any]:
    error = next((s.error for s in (distilled, export, acc, b) if not s.ok), None)
    student = artifact.student
    return {"id": grid.cell_id(artifact, setting, board), "status": "failed" if error else "done", "error": error,
            "board": board, "artifact": artifact.key, "student": student.as_dict(), "sampling": student.sampling,
            "reduction": {"method": student.method, "d": student.d},
            "export": {"mode": artifact.mode, "placement": artifact.placement},
            "bench": {"threads": setting.threads, "xnnpack": setting.xnnpack},
            "accuracy": acc.outputs.get("accuracy"),
            "fidelity": {"cosine_mean": file.get("cosine_mean"), "cosine_p5": file.get("cosine_p5"),
                         "cosine_worst": file.get("cosine_worst")},
            "distill": {"r2": distilled.outputs.get("r2"), "cosine": distilled.outputs.get("cosine"),
                        "kept_epoch": distilled.outputs.get("kept_epoch")},
            "latency_ms": b.outputs.get("latency_ms"), "peak_rss_mb": b.outputs.get("peak_rss_mb"),
            "size_bytes": file.get("size_bytes"), "gzip_bytes": file.get("gzip_bytes"),
            "macs": export.outputs.get("macs"), "throttled": b.outputs.get("throttled"),
            "wall_time_s": {"distill": distilled.wall_time_s, "export": export.wall_time_s,
                            "accuracy": acc.wall_time_s, "bench": b.outputs.get("wall_time_s", b.wall_time_s)},
            "card": {kind: str(step.folder / "step.json") for kind, step in
                     (("distill", distilled), ("export", export), ("accuracy", acc), ("bench", b))},
            "file": file.get("path")}


def _boards(grid: Grid, cells: Sequence[Mapping[str, Any]],
            bench: Mapping[tuple[Artifact, BenchSetting, str], StepResult]) -> dict[str, Any]:
    boards = {}
    for board in grid.boards:
        steps = [s for (_, _, b), s in bench.items() if b == board]
        done = [s for s in steps if s.ok]
        throttled = [s.key for s in done if s.outputs.get("throttled")]
        facts = board_facts([s.outputs for s in done])
        boards[board] = {"label": board, "status": "ok" if done else "failed",
                         "error": None if done else next((s.error for s in steps if s.error), "no benchmark ran"),
                         "facts": facts, "throttled": facts.get("throttled"),   # None: unknown, or nothing measured
                         "throttled_cells": throttled, "cells": sum(1 for c in cells if c["board"] == board)}
    return boards


def board_facts(benches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One board's facts over its benchmarks (``device.bench``'s ``board`` and ``environment``), flat for a page.

    The CPU, cores and governor as the first benchmark found them; the frequency now / at most, the
    temperature before the first and after the last benchmark (°C), whether any throttled and why.
    """
    if not benches:
        return {}
    first = (benches[0].get("board") or {}).get("before") or {}
    last = (benches[-1].get("board") or {}).get("after") or {}
    env = benches[0].get("environment") or {}
    interpreter = env.get("interpreter") or {}
    freq = first.get("freq_mhz") or {}
    verdicts = [(b.get("board") or {}).get("throttled") for b in benches]
    details = sorted({d for b in benches for d in ((b.get("board") or {}).get("throttle_detail") or [])})
    temps = (first.get("temperature_c"), last.get("temperature_c"))
    return {"cpu_model": first.get("cpu_model") or env.get("cpu"), "cores": first.get("cores"),
            "governor": first.get("governor"),
            "freq_mhz": f"{_fmt(freq.get('cur'), '.0f')} now, {_fmt(freq.get('max'), '.0f')} max"
            if any(v is not None for v in freq.values()) else None,     # no cpufreq (a VM): unknown, not "— now"
            "temperature_c": f"{_fmt(temps[0], '.1f')} → {_fmt(temps[1], '.1f')}" if any(t is not None for t in temps) else None,
            "throttled": True if any(v is True for v in verdicts) else (False if verdicts and all(v is False for v in verdicts) else None),
            "throttle_detail": "; ".join(details) or None,
            "interpreter": f"{interpreter.get('package')} {interpreter.get('version')}" if interpreter else None,
            "notes": "; ".join(first.get("notes") or []) or None, "benchmarks": len(benches)}


def _step_summary(step: StepResult) -> dict[str, Any]:
    return {"status": step.status, "error": step.error, "wall_time_s": step.wall_time_s, "folder": str(step.folder),
            "outputs": step.outputs}


def _stage_times(steps: Sequence[StepResult]) -> dict[str, dict[str, Any]]:
    """Per kind of step: how many, how many ran in this call, how many failed, and their wall time."""
    stages: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for step in steps:
        if (step.kind, step.key) in seen:
            continue
        seen.add((step.kind, step.key))
        entry = stages.setdefault(step.kind, {"steps": 0, "ran_now": 0, "failed": 0, "wall_time_s": 0.0})
        entry["steps"] += 1
        entry["ran_now"] += int(step.ran)
        entry["failed"] += int(not step.ok)
        entry["wall_time_s"] = round(entry["wall_time_s"] + (step.wall_time_s or 0.0), 2)
    return stages


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(tune: Mapping[str, Any]) -> str:
    """``tune.md``: the choice per board, then every cell (a table to paste into a pull request)."""
    lines = [f"# sea-tf tune: {tune['task']['label']}", ""]
    budgets = ", ".join(f"{k} ≤ {v:g}" for k, v in tune["budgets"].items() if v is not None) or "none"
    lines += [f"Budgets: {budgets}. Reference accuracy (the grid's best): {_fmt(tune['reference_accuracy'], '.4f')}.", ""]
    lines += [f"- {board}: {c['message']}" for board, c in tune["choice"].items()] + [""]
    lines += ["| cell | status | accuracy | cosine mean | p50 ms | p90 ms | peak RSS MiB | KiB | gzip KiB | front (lat/size) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in tune["cells"]:
        lat = c.get("latency_ms") or {}
        front = "/".join("●" if c["pareto"][a] else "·" for a in PARETO_AXES)
        status = c["status"] if not c.get("error") else f"failed: {c['error']}"
        lines.append(f"| `{c['id']}` | {status} | {_fmt(c['accuracy'], '.4f')} | {_fmt(c['fidelity']['cosine_mean'], '.4f')} "
                     f"| {_fmt(lat.get('p50'), '.3f')} | {_fmt(lat.get('p90'), '.3f')} | {_fmt(c['peak_rss_mb'], '.1f')} "
                     f"| {_fmt((c['size_bytes'] or 0) / 1024 if c['size_bytes'] else None, '.0f')} "
                     f"| {_fmt((c['gzip_bytes'] or 0) / 1024 if c['gzip_bytes'] else None, '.0f')} | {front} |")
    lines += ["", "| stage | steps | ran now | failed | wall time s |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['steps']} | {v['ran_now']} | {v['failed']} | {v['wall_time_s']:.1f} |" for k, v in tune["stages"].items()]
    return "\n".join(lines) + "\n"
