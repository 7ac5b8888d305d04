"""Demo step: benchmark the exported demo artifacts on this machine, then the accuracy-vs-cost report.

Runs the same entry point as the board (``python -m device.bench``, in a subprocess without
TensorFlow in its imports) once per exported embedding model, with the exported classifier and a
few demo clips, then merges those JSONs with the export sidecars and the classification results
into ``report/pareto_report.md`` + two Pareto PNGs (:mod:`sea_tf.report`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sea_tf.config import resolve
from sea_tf.demo import DemoContext, StepReport
from sea_tf.presets import load_defaults

if TYPE_CHECKING:
    from sea_tf.remote import RunPlan

PRESET = "device/demo"  # few timed passes, hop 0.5 s: the demo's whole budget is 15 minutes
N_AUDIO = 2             # demo clips classified per model (enough to show per-file predictions)


def bench_settings(ctx: DemoContext | None = None) -> dict[str, Any]:
    """``bench`` settings of ``sea-tf device run`` with the demo's preset (threads, runs, warmup, hop_s)."""
    return (ctx.settings("device", PRESET) if ctx else resolve(load_defaults("device/run"), PRESET))["bench"]


def _aliases(ctx: DemoContext) -> dict[str, str]:
    """Classification names (``teacher``/``student`` in the classify step) → model-card names."""
    from sea_tf import cards

    aliases: dict[str, str] = {}
    for name, key in (("student", "student_model"), ("teacher", "teacher_model")):
        spec = ctx.artifacts.get(key)
        if not spec:
            continue
        card = cards.read_card(spec, required=False) if Path(str(spec)).exists() else None
        aliases[name] = (card or {}).get("name") or Path(str(spec)).name.rsplit(".", 1)[0]
    return aliases


def _classify_artifacts(ctx: DemoContext, plan: RunPlan) -> Path | None:
    """10-fold accuracy of each exported student file (run through LiteRT), so every quantization mode
    has its own accuracy on the Pareto plots instead of inheriting the float model's.

    Uses the classify step's hop, framing and MLP settings; returns the ``comparison.json`` path, or
    None when the classify step did not run.
    """
    from sea_tf.classify.features import load_clipset
    from sea_tf.demo_steps.classify import evaluate_models

    hop = ctx.results.get("classify", {}).get("hop_size_s")
    files = [m for m in plan.embeddings if plan.classifier_for(m)]  # the models the demo classifier fits
    if hop is None or not files:
        return None
    out = ctx.out_dir / "device" / "classify-artifacts"
    clips = load_clipset(Path(ctx.artifacts.get("data_dir", ctx.data_dir)), "us8k")
    evaluate_models(ctx, clips, [str(m) for m in files], [m.stem for m in files], out, hop, progress=False)
    return out / "comparison.json"


def run(ctx: DemoContext) -> StepReport:
    from sea_tf import remote
    from sea_tf.report import markdown_table, write_report
    from sea_tf.errors import SeaTFError
    from device.bench import format_table
    from sea_tf.tune.boards import bench_local

    export_dir = ctx.artifacts.get("export_dir")
    if not export_dir or not list(Path(export_dir).glob("*.tflite")):
        reason = "no exported .tflite artifacts (ctx.artifacts['export_dir'] missing or empty); run the export step first"
        return StepReport(figures={"skipped": reason}, markdown=f"Skipped: {reason}.")
    try:
        plan = remote.plan([export_dir], audio=[])
    except SeaTFError as exc:
        return StepReport(figures={"skipped": str(exc)}, markdown=f"Skipped: {exc}.")
    settings = bench_settings(ctx)
    audio = sorted(Path(ctx.artifacts.get("data_dir", ctx.data_dir)).rglob("*.wav"))[:N_AUDIO]
    out_dir = ctx.out_dir / "device"
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: dict[Path, list[str]] = {}
    for model in plan.embeddings:
        classifier = plan.classifier_for(model)
        extra[model] = (["--classifier", str(classifier)] if classifier else []) + (["--audio", *map(str, audio)] if audio else [])
    outcome = bench_local(plan.embeddings, out_dir, settings, threads=settings["threads"], xnnpack=settings["xnnpack"],
                          log=print, extra_args=extra)
    results = [found for found in outcome.values() if isinstance(found, Path)]
    failed = {model.name: found for model, found in outcome.items() if isinstance(found, str)}
    classify_results = [p for p in [ctx.artifacts.get("classify_results")] if p and Path(p).exists()]
    artifact_accuracy = _classify_artifacts(ctx, plan)
    if artifact_accuracy:
        classify_results.append(artifact_accuracy)
    latency_stat = load_defaults("report")["latency_stat"]     # `sea-tf report`'s statistic
    report = write_report([*results, export_dir, *classify_results], ctx.report_dir, objects=[ctx.results],
                          title="Demo: accuracy vs cost", latency_stat=latency_stat, md_name="pareto_report.md",
                          html=load_defaults("report")["html"],
                          prefix="device-", aliases=_aliases(ctx))
    per_model = {}
    for path in results:
        r = json.loads(path.read_text())
        lat = r["latency_ms"]
        per_model[path.stem] = {
            "status": r["status"], "size_bytes": r["model"]["size_bytes"], "mode": r["model"]["mode"],
            "latency_p50_ms": {k: lat[k].get("p50") for k in ("frontend", "network", "invoke", "classifier", "total")},
            "real_time_factor": r["real_time_factor"], "peak_rss_mb": r["memory_mb"]["peak"],
            "interpreter": r["environment"]["interpreter"],
            "predictions": {Path(f["file"]).name: (f.get("predicted_class"), f.get("confidence")) if f["status"] == "ok"
                            else "failed" for f in r["files"]},
            "json": str(path)}
    figures = {"models": per_model, "failed": failed,
               "classifiers": {m.stem: str(plan.classifier_for(m)) if plan.classifiers else None for m in plan.embeddings},
               "audio_files": [str(a) for a in audio], "settings": {**settings, "n_audio": N_AUDIO},
               "report": str(report["markdown"]), "pareto_pngs": [str(p) for p in report["pngs"]],
               "rows": len(report["rows"])}
    md = ["Benchmarked on this machine with `python -m device.bench` (numpy + LiteRT only), "
          f"{settings['runs']} runs after {settings['warmup']} warm-ups, {len(audio)} demo clips.", ""]
    tables = [format_table(json.loads(path.read_text())) for path in results]   # what device.bench prints on a board
    md += ["```", *tables, "```", ""] if tables else []
    md += [f"- {name}: FAILED: {why}" for name, why in failed.items()]
    md += [markdown_table(report["rows"], latency_stat=latency_stat), "", f"Full report: `{report['markdown'].name}`."]
    return StepReport(figures=figures, markdown="\n".join(md), images=[p.name for p in report["pngs"]])
