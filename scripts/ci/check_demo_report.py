"""Check a finished demo's ``report.json``: the machine, then all ten stages, in order, each with its figures.

    .venv/bin/python scripts/ci/check_demo_report.py DEMO_OUT/report

A step that crashed stops the demo, so a missing stage is the usual failure; a stage present with a
NaN error figure, no exported artifact or no benchmark row is the quiet one this also catches. Prints
one line per stage and exits 1 with every problem listed, 0 when all hold. Needs only the standard
library (it runs before anything is known to work).
"""
import json
import math
import sys
from pathlib import Path

STAGES = ["data", "models", "teacher", "sampling", "reduce", "distill", "classify", "export", "device", "tune"]

# Per stage: (dotted path of a figure, lowest value it may take). Each must be a finite number; counts
# must be positive, fractions non-negative. Only figures the step has reported since the demo's first
# version are named, so that the check follows what a step promises rather than how it prints it.
FIGURES = {
    "data": [("n_clips", 1), ("linear_probe.mean_fold_accuracy", 0)],
    "models": [("windows", 1)],
    "teacher": [("rows", 1), ("shards", 1)],
    "sampling": [("m", 1)],
    "reduce": [("explained_variance", 0), ("d", 1)],
    "distill": [("held_out_mse", 0), ("held_out_windows", 1), ("epochs", 1)],
    "classify": [("accuracy.teacher.mean", 0), ("accuracy.student.mean", 0)],
    "export": [],
    "device": [],
    "tune": [("cells", 1), ("done", 1), ("reference_accuracy", 0)],
}


def _get(figures, dotted):
    node = figures
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _numbers(node):
    """Every number inside ``node`` (dicts and lists walked), booleans excluded."""
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)


def problems_of(report: dict, report_dir: Path) -> list:
    """Every way ``report`` (a parsed ``report.json``) falls short, as one line each."""
    found = []
    stages = [key for key in report if key != "machine"]
    if stages != STAGES:
        missing = [s for s in STAGES if s not in report]
        found.append(f"stages {stages}; expected {STAGES}" + (f" (missing: {', '.join(missing)})" if missing else ""))
    # The times mean something only beside the machine that made them.
    machine = report.get("machine") if isinstance(report.get("machine"), dict) else {}
    if not isinstance(machine.get("cpu_model"), str) or not machine["cpu_model"]:
        found.append(f"machine: cpu_model = {machine.get('cpu_model')!r}, expected the CPU's name")
    cores = machine.get("cores")
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        found.append(f"machine: cores = {cores!r}, expected a positive integer")
    if not isinstance(machine.get("flags"), list):
        found.append(f"machine: flags = {machine.get('flags')!r}, expected a list of the CPU's vector flags")
    for stage in STAGES:
        figures = report.get(stage)
        if not isinstance(figures, dict):
            continue
        wall = figures.get("wall_time_s")
        if not isinstance(wall, (int, float)) or not wall > 0:
            found.append(f"{stage}: wall_time_s = {wall!r}, expected a positive number")
        if len(figures) < 2:
            found.append(f"{stage}: no figures besides wall_time_s")
        for dotted, lowest in FIGURES[stage]:
            value = _get(figures, dotted)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < lowest:
                found.append(f"{stage}: {dotted} = {value!r}, expected a finite number >= {lowest}")
    # The last three stages carry tables (one row per artifact / per benchmarked model / per tune cell):
    # at least one row each, and every number in them finite.
    for stage in ("export", "device", "tune"):
        figures = report.get(stage) or {}
        rows = [v for k, v in figures.items() if k != "wall_time_s" and isinstance(v, (list, dict)) and v]
        if figures and not rows:
            found.append(f"{stage}: no table of results (every figure is empty or a scalar)")
        bad = [n for n in _numbers(figures) if isinstance(n, float) and not math.isfinite(n)]
        if bad:
            found.append(f"{stage}: {len(bad)} non-finite number(s) in its figures")
    md = report_dir / "report.md"
    if not md.is_file() or md.stat().st_size == 0:
        found.append(f"{md}: missing or empty")
    else:
        text = md.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("![") and "](" in line:
                image = report_dir / line.split("](", 1)[1].rstrip(")")
                if not image.is_file():
                    found.append(f"report.md shows {image.name}, which is not there")
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    report_dir = Path(argv[0])
    path = report_dir / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"{path}: cannot read it ({exc}); did the demo run?", file=sys.stderr)
        return 1
    machine = report.get("machine") if isinstance(report.get("machine"), dict) else {}
    if machine:
        print(f"  machine   {machine.get('cpu_model')}, {machine.get('cores')} cores, "
              f"{' '.join(machine.get('flags') or [])}")
    for stage in STAGES:
        if stage in report:
            print(f"  {stage:9s} {report[stage].get('wall_time_s', '?'):>8} s")
    found = problems_of(report, report_dir)
    for line in found:
        print(f"demo report: {line}", file=sys.stderr)
    if not found:
        total = sum(report[s]["wall_time_s"] for s in STAGES)
        print(f"demo report: all {len(STAGES)} stages with their figures ({total:.0f} s in the stages)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
