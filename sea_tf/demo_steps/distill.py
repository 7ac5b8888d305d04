"""Demo step ``distill``: distil the demo student (SEA-64) on the reduced teacher targets.

Reads ``teacher_shards``, ``targets`` and ``reducer`` from earlier steps; d comes from the reducer
card. Warm-starts from the published SEA-64 (``edgel3/sea-64``) when it is in the weights cache
and d = 64 (the student card records it); otherwise trains from the seeded initialisation and
the report says how to import the published student. Sets ``student_model`` and ``distill_run``
for the classify and export steps.
"""
import shutil
from pathlib import Path

from sea_tf import cards
from sea_tf.demo import DemoContext, StepReport
from sea_tf.shards import canonical_sha256

PRESET = "distill/demo"
PUBLISHED_SEA64 = "edgel3/sea-64"
PRESETS = {64: "sea-64", 128: "sea-128", 256: "sea-256", 512: "sea-512"}


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.distill import distill
    from sea_tf.weights import is_cached

    cfg = ctx.settings("distill", PRESET)
    reducer = ctx.artifacts.get("reducer")
    d = int(cards.read_card(Path(reducer))["d"]) if reducer else int(cards.read_card(Path(ctx.artifacts["targets"]))["d"])
    cfg.update(shards=[str(ctx.artifacts["teacher_shards"])], targets=str(ctx.artifacts["targets"]),
               reducer=str(reducer) if reducer else None, seed=int(ctx.seed))
    if d in PRESETS:
        cfg["student"]["preset"] = PRESETS[d]
    else:
        cfg["student"]["overrides"]["embedding_size"] = d
    if d == 64 and is_cached(PUBLISHED_SEA64):
        cfg["student"]["init"] = PUBLISHED_SEA64
    # One run directory per configuration: a re-run of the demo resumes (or reuses) its own run and
    # never collides with a run made by another version of demo.yaml.
    cfg["out"] = str(ctx.out_dir / f"distill-{canonical_sha256(cfg)[:8]}")
    report = distill(cfg)
    held = report["held_out"]
    images = []
    if report.get("loss_png"):
        shutil.copyfile(report["loss_png"], ctx.report_dir / "distill_loss.png")
        images.append("distill_loss.png")
    ctx.artifacts["student_model"] = report["student"]
    ctx.artifacts["distill_run"] = report["run_dir"]
    if cfg["student"]["init"]:
        warm = f"warm-started from the published SEA-64 (`{PUBLISHED_SEA64}`, weights cache)"
    elif d == 64:
        warm = ("trained from the seeded initialisation; the published SEA-64 is not in the weights cache: "
                "`sea-tf models import edgel3_sea_ust_audio_emb_64.h5` makes the demo warm-start from it")
    else:
        warm = "trained from the seeded initialisation"
    figures = {"student": report["student"], "preset": cfg["student"]["preset"], "d": d,
               "held_out_r2": round(held["r2"], 4), "held_out_mse": round(held["mse"], 5),
               "held_out_mae": round(held["mae"], 5), "held_out_cosine": round(held["cosine"], 4),
               "held_out_windows": held["n_windows"], "r2_target": 0.5, "r2_target_met": held["r2"] >= 0.5,
               "epochs": report["epochs_run"], "steps_per_epoch": report["steps_per_epoch"],
               "steps": report["epochs_run"] * report["steps_per_epoch"], "batch_size": report["global_batch"],
               "stopped": report["stopped"], "best_epoch": (report["best"] or {}).get("epoch"),
               "train_windows": report["split"]["n_train_rows"], "valid_windows": report["split"]["n_valid_rows"],
               "fit_windows_per_s": report["fit_windows_per_s"] and round(report["fit_windows_per_s"], 1),
               "warm_start": cfg["student"]["init"]}
    markdown = (f"Student **{cfg['student']['preset']}** ({warm}) distilled on {report['split']['n_train_rows']} windows "
                f"of {report['split']['n_train_sources']} upstream files to the d = {d} targets: {report['epochs_run']} "
                f"epochs of {report['steps_per_epoch']} steps of {report['global_batch']} windows, "
                f"{figures['steps']} steps (stopped: {report['stopped']}), best epoch {figures['best_epoch']}. On "
                f"{held['n_windows']} held-out windows from {report['split']['n_valid_sources']} other files: "
                f"**R² {held['r2']:.3f}**, MSE {held['mse']:.4g}, mean cosine {held['cosine']:.3f}. "
                f"Run directory `{report['run_dir']}` (checkpoints, history.csv, TensorBoard logs, report.json).")
    return StepReport(figures=figures, markdown=markdown, images=images)
