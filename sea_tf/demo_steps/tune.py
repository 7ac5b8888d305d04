"""Demo step ``tune``: ``sea-tf tune --config tune/demo`` on the demo's own teacher shards; the demo ends with ``report.html``.

The grid (configs/tune/demo.yaml; each stage also takes the demo's ``steps.<stage>`` overrides, so
``demo/ci`` sizes the tune's samples and exports too) runs its own samples, reducers, distillations, exports, accuracies
and benchmarks on this machine, under the preset's budget, and writes ``OUT/tune/tune.json``,
``choice.json`` and ``report.html``; the page is copied to the demo's report folder as ``report.html``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sea_tf.demo import DemoContext, StepReport

PRESET = "tune/demo"


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.tune import tune

    shards = ctx.artifacts.get("teacher_shards")
    if not shards:
        reason = "no teacher shards (the teacher step did not run)"
        return StepReport(figures={"skipped": reason}, markdown=f"Skipped: {reason}.")
    cfg = ctx.settings("tune", PRESET)
    for stage, own in cfg["stages"].items():   # the demo's sizing of a stage (`steps.<stage>`) holds in its tune too
        own["set"] = [*ctx.step_settings.get(stage, []), *own["set"]]
    cfg.update(data=str(ctx.artifacts.get("data_dir", ctx.data_dir)), shards=[str(shards)],
               out=str(ctx.out_dir / "tune"), progress=False)
    result = tune(cfg)
    page = Path(cfg["out"]) / "report.html"
    shutil.copyfile(page, ctx.report_dir / "report.html")
    done = [c for c in result["cells"] if c["status"] == "done"]
    figures = {"cells": len(result["cells"]), "done": len(done), "budgets": result["budgets"],
               "reference_accuracy": result["reference_accuracy"], "choice": result["choice"],
               "pareto": result["pareto"], "stages": result["stages"], "tune_json": str(Path(cfg["out"]) / "tune.json"),
               "report_html": str(ctx.report_dir / "report.html"),
               "results": [{"model": c["id"], "accuracy": c["accuracy"], "latency_ms": (c["latency_ms"] or {}).get("p50"),
                            "size_bytes": c["size_bytes"]} for c in done]}
    budgets = ", ".join(f"{k} ≤ {v:g}" for k, v in result["budgets"].items() if v is not None) or "none"
    md = [f"`sea-tf tune --config {PRESET}` on the teacher shards above: {len(result['cells'])} cells "
          f"({len(done)} measured), budgets {budgets}. Open `report.html` (this folder) in a browser.", ""]
    md += [f"- {board}: {c['message']}" for board, c in result["choice"].items()]
    md += ["", "| cell | accuracy | p50 ms | KiB | fits |", "|---|---|---|---|---|"]
    md += [f"| `{c['id']}` | {c['accuracy']:.4f} | {(c['latency_ms'] or {}).get('p50', float('nan')):.3f} | "
           f"{(c['size_bytes'] or 0) / 1024:.0f} | {'yes' if c['fits'] else ', '.join(c['misses'])} |" for c in done]
    md += ["", "| stage | steps | wall time s |", "|---|---|---|"]
    md += [f"| {k} | {v['steps']} | {v['wall_time_s']:.1f} |" for k, v in result["stages"].items()]
    return StepReport(figures=figures, markdown="\n".join(md))
