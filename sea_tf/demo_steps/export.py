"""Demo step: export the demo student in every mode, the teacher in fp32 and the classifier; the table.

Calibration: the upstream scenes (what the student is distilled on); held-out: the labelled demo
clips. Everything lands in ``out/export`` (``ctx.artifacts["export_dir"]``), which the device step
benchmarks; the classifier is exported once (fp32), because the board pairs every embedding
model with one classifier. About 1–2 minutes on 2 cores.

When the distill step ran with QAT (``qat.enabled``), its ``student-qat.h5`` is exported too, in
int8 and dynamic with the ranges it learnt, and its rows sit beside the float student's PTQ rows
in one table (same held-out windows, same float reference). Files are named after the model
file (``student.int8.tflite``, ``student-qat.int8.tflite``); the demo owns ``out/export``, so a
re-run replaces them.
"""
from pathlib import Path
from typing import Any

from sea_tf.config import resolve
from sea_tf.demo import DemoContext, StepReport
from sea_tf.presets import load_defaults

PRESET = "export/demo"
TEACHER_PRESET = "export/teacher-fp32"


def _student_spec(ctx: DemoContext) -> tuple[str | Path, str]:
    """The student to export (a model spec or file) and where it came from."""
    for key in ("student_model", "embed_model"):
        if ctx.artifacts.get(key):
            return ctx.artifacts[key], key
    return "sea-64", "untrained sea-64 preset (no student in this demo run)"


def _qat_student(ctx: DemoContext, student: str | Path) -> str | None:
    """The QAT student fine-tuned from ``student`` in this run (its card links the student's sha256), or None."""
    from sea_tf import cards

    if not Path(str(student)).is_file():
        return None
    candidate = Path(ctx.artifacts.get("student_qat") or Path(student).parent / "student-qat.h5")
    if not candidate.is_file():
        return None
    link = ((cards.read_card(candidate, required=False) or {}).get("qat") or {}).get("student") or {}
    # A QAT file left from an earlier run with QAT on belongs to another student: not this one's row.
    return str(candidate) if link.get("sha256") == cards.sha256_file(student) else None


def run(ctx: DemoContext) -> StepReport:
    from export.pipeline import export_file
    from export.report import markdown_table

    out = ctx.out_dir / "export"
    data_dir = Path(ctx.artifacts.get("data_dir", ctx.data_dir))
    upstream = Path(ctx.artifacts.get("upstream_dir") or data_dir / "upstream")
    clips = data_dir / "audio"
    defaults = load_defaults("export")
    cfg = ctx.settings("export", PRESET)
    cfg["calibration"]["seed"] = cfg["held_out"]["seed"] = ctx.seed
    cfg["classifier_modes"] = ["fp32"]
    cfg["overwrite"] = True   # out/export is the demo's own folder: a re-run's new student replaces the old files
    student, source = _student_spec(ctx)
    classifier = ctx.artifacts.get("classifier")
    qat = _qat_student(ctx, student)
    summary = export_file(student, out, calibration=[upstream], held_out=[clips], classifier=classifier,
                          cfg=cfg, progress=False, log=print, qat=qat)
    artifacts = list(summary["artifacts"])
    figures = {"student": str(student), "student_source": source, "classifier": classifier,
               "calibration_windows": summary["calibration"]["n_windows"],
               "held_out_windows": summary["held_out"]["n_windows"], "qat": _qat_figures(summary)}

    teacher = ctx.artifacts.get("teacher_model")
    teacher_fp32 = None
    if teacher:
        tcfg = resolve(defaults, TEACHER_PRESET)
        tcfg["held_out"]["seed"] = ctx.seed
        tcfg["overwrite"] = True
        tsum = export_file(teacher, out / "teacher", held_out=[clips], cfg=tcfg, progress=False, log=print)
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
    if figures["qat"]:
        markdown += "\n\n" + _qat_sentence(summary["qat"]["name"], figures["qat"])
    return StepReport(figures=figures, markdown=markdown, images=[image.name])


def _qat_figures(summary: dict[str, Any]) -> dict[str, Any] | None:
    """QAT vs PTQ int8 of the same float student: cosine mean / p5 / worst of each (None without QAT)."""
    if not summary.get("qat"):
        return None
    rows = {(a.get("qat", False), a["mode"]): a for a in summary["artifacts"] if a["model"] in
            (summary["model"], summary["qat"]["name"])}
    keys = ("cosine_mean", "cosine_p5", "cosine_worst")
    return {"path": summary["qat"]["path"], "keras_vs_float": summary["qat"]["keras_vs_float"],
            **{f"{'qat' if q else 'ptq'}_{mode}": {k: a[k] for k in keys} for (q, mode), a in rows.items()
               if mode in summary["qat"]["modes"]}}


def _qat_sentence(name: str, qat: dict[str, Any]) -> str:
    """The report's sentence on the QAT rows ``name``: what they are, int8 cosines of QAT and PTQ."""

    def cosines(row: dict[str, float]) -> str:
        return " / ".join(f"{row[k]:.5f}" for k in ("cosine_mean", "cosine_p5", "cosine_worst"))

    text = (f"Rows `{name}`: the quantization-aware student (`distill` with qat.enabled) converted with the ranges "
            "it learnt, beside post-training quantization (PTQ) of the same float student, both measured against "
            "the float Keras student on the same held-out windows.")
    if "qat_int8" in qat and "ptq_int8" in qat:
        text += f" int8 cosine mean / p5 / worst: QAT {cosines(qat['qat_int8'])}, PTQ {cosines(qat['ptq_int8'])}."
    return text
