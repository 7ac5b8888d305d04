"""Demo step: export the demo student in every mode, the teacher in fp32 and the classifier; the table.

Calibration: the upstream scenes (what the student is distilled on); held-out: the labelled demo
clips. Everything lands in ``out/export`` (``ctx.artifacts["export_dir"]``), which the device step
benchmarks; the classifier is exported once (fp32), because the board pairs every embedding
model with one classifier. About 1–2 minutes on 2 cores.
"""
from pathlib import Path

from sea_tf.config import resolve
from sea_tf.demo import StepReport
from sea_tf.presets import load_defaults

PRESET = "export/demo"
TEACHER_PRESET = "export/teacher-fp32"


def _student_spec(ctx):
    for key in ("student_model", "embed_model"):
        if ctx.artifacts.get(key):
            return ctx.artifacts[key], key
    return "sea-64", "untrained sea-64 preset (no student in this demo run)"


def run(ctx):
    from export.pipeline import export_model
    from export.report import markdown_table

    out = ctx.out_dir / "export"
    data_dir = Path(ctx.artifacts.get("data_dir", ctx.data_dir))
    upstream = Path(ctx.artifacts.get("upstream_dir") or data_dir / "upstream")
    clips = data_dir / "audio"
    defaults = load_defaults("export")
    cfg = ctx.settings("export", PRESET)
    cfg["calibration"]["seed"] = cfg["held_out"]["seed"] = ctx.seed
    cfg["classifier_modes"] = ["fp32"]
    student, source = _student_spec(ctx)
    classifier = ctx.artifacts.get("classifier")
    summary = export_model(student, out, calibration=[upstream], held_out=[clips], classifier=classifier,
                           cfg=cfg, progress=False, log=print)
    artifacts = list(summary["artifacts"])
    figures = {"student": str(student), "student_source": source, "classifier": classifier,
               "calibration_windows": summary["calibration"]["n_windows"],
               "held_out_windows": summary["held_out"]["n_windows"]}

    teacher = ctx.artifacts.get("teacher_model")
    teacher_fp32 = None
    if teacher:
        tcfg = resolve(defaults, TEACHER_PRESET)
        tcfg["held_out"]["seed"] = ctx.seed
        tsum = export_model(teacher, out / "teacher", held_out=[clips], cfg=tcfg, progress=False, log=print)
        # The teacher's file sits beside the student's so the device step benchmarks both.
        for art in tsum["artifacts"]:
            for key in ("path", "sidecar"):
                src = Path(art[key])
                art[key] = str(src.replace(out / src.name))
        artifacts += tsum["artifacts"]
        teacher_fp32 = tsum["artifacts"][0]
        figures["teacher"] = str(teacher)

    by_mode = {f"{a['model']}.{a['mode']}": {k: a.get(k) for k in (
        "size_bytes", "gzip_bytes", "cosine_mean", "cosine_p5", "cosine_worst", "max_abs_error", "invoke_ms",
        "end_to_end_ms", "top1_agreement", "accuracy_change", "input_kind")} for a in artifacts}
    figures["artifacts"] = by_mode
    int8 = next((a for a in summary["artifacts"] if a["mode"] == "int8" and a["model"] == summary["model"]), None)
    if teacher_fp32 and int8:
        figures["teacher_fp32_over_student_int8_end_to_end"] = teacher_fp32["end_to_end_ms"] / int8["end_to_end_ms"]
    ctx.artifacts["export_dir"] = str(out)
    image = ctx.report_dir / "export.png"
    Path(summary["report"]["png"]).replace(image)
    markdown = (f"Student `{student}` ({source}) in every mode, calibrated on {summary['calibration']['n_windows']} "
                f"upstream windows; fidelity vs Keras on {summary['held_out']['n_windows']} held-out windows of the "
                "demo clips; latency: LiteRT, 1 thread, median per 1-s window (`end-to-end` includes the numpy "
                "front end for files that take the dB image). Files: `" + str(out) + "`.\n\n"
                + markdown_table(artifacts))
    return StepReport(figures=figures, markdown=markdown, images=[image.name])
