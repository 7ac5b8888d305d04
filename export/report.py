"""The fidelity and cost report of one export run: ``<name>.report.json``, ``.md``, ``.png``."""
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from export import metadata
from sea_tf import atomic

COLUMNS = [("model", "model"), ("mode", "mode"), ("input", "input"), ("size_kb", "size KB"),
           ("gzip_kb", "gzip KB"), ("size_vs_fp32", "size/fp32"), ("cosine_mean", "cos mean"),
           ("cosine_p5", "cos p5"), ("cosine_worst", "cos worst"), ("max_abs_error", "max abs err"),
           ("invoke_ms", "invoke ms"), ("end_to_end_ms", "end-to-end ms"), ("extra", "classifier")]


def table_rows(artifacts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per artifact (for the markdown table and the demo report)."""
    rows: list[dict[str, Any]] = []
    fp32_size = {a["model"]: a["size_bytes"] for a in artifacts if a["mode"] == "fp32"}
    for a in artifacts:
        extra = ""
        if "top1_agreement" in a:
            extra = f"top-1 agree {a['top1_agreement']:.3f}"
            if a.get("accuracy_change") is not None:
                extra += f", acc {a['clip_accuracy']:.3f} ({a['accuracy_change']:+.3f})"
        base = fp32_size.get(a["model"]) or fp32_size.get(a.get("reference"))  # a QAT row: its float student's fp32
        rows.append({"model": a["model"], "mode": a["mode"], "input": a["input_kind"],
                     "size_kb": a["size_bytes"] / 1024, "gzip_kb": a["gzip_bytes"] / 1024,
                     "size_vs_fp32": a["size_bytes"] / base if base else None,
                     "cosine_mean": a.get("cosine_mean"), "cosine_p5": a.get("cosine_p5"),
                     "cosine_worst": a.get("cosine_worst"), "max_abs_error": a.get("max_abs_error"),
                     "invoke_ms": a.get("invoke_ms"), "end_to_end_ms": a.get("end_to_end_ms"), "extra": extra})
    return rows


def _fmt(key: str, value: Any) -> str:
    if value is None or value == "":
        return "—" if value is None else ""
    if isinstance(value, str):
        return value
    if key.startswith("cosine"):
        return f"{value:.5f}"
    if key == "max_abs_error":
        return f"{value:.2e}"
    if key == "size_vs_fp32":
        return f"{value:.0%}"
    if key.endswith("_ms"):
        return f"{value:.3f}"
    return f"{value:.1f}"


def markdown_table(artifacts: Sequence[dict[str, Any]]) -> str:
    """The per-artifact fidelity/cost table as GitHub markdown."""
    rows = table_rows(artifacts)
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(key, row[key]) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The whole ``report.md`` text of an export run."""
    lines = ["# sea-tf export report", "",
             f"Held-out set: {summary['held_out']['n_windows']} windows "
             f"({summary['held_out']['description']}). Calibration: {summary['calibration']['n_windows']} windows "
             f"({summary['calibration']['description']}). Latency: LiteRT "
             f"{summary['interpreter'].get('version', '?')}, {summary['threads']} thread, median of "
             f"{summary['latency_runs']} windows; `end-to-end` = raw 1-s audio → output, numpy front end included "
             "when the file holds only the network body.", "",
             markdown_table(summary["artifacts"]), ""]
    qat = summary.get("qat")
    if qat:
        own = ", ".join(f"{a['mode']} {a['qat_keras_cosine_mean']:.5f}" for a in summary["artifacts"] if a.get("qat"))
        lines += [f"Rows `{qat['name']}`: the quantization-aware student ({qat['path']}) converted with the ranges it "
                  f"learnt, measured like the post-training rows against the float student `{qat['float_student']}` "
                  f"on the same held-out windows (the QAT Keras model itself: cosine mean "
                  f"{qat['keras_vs_float']['cosine_mean']:.5f} vs the float student; each file vs its own Keras "
                  f"model: {own}).", ""]
    notes = [a for a in summary["artifacts"] if not a["frontend_in_model"] and a["input_kind"] == "frontend_features"]
    if notes:
        lines.append("Files with input `frontend_features` take the dB mel image; the device computes it with "
                     "`device.frontends.compute_frontend` from the spec in the sidecar (never approximated).")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path | str) -> Path:
    """Bar charts of size, end-to-end latency and cosine p5 per artifact; written atomically as PNG."""
    plt = atomic.pyplot()

    arts = summary["artifacts"]
    labels = [f"{a['model']}\n{a['mode']}" for a in arts]
    fig, axes = plt.subplots(1, 3, figsize=(max(8, 1.2 * len(arts) * 3), 4))
    axes[0].bar(labels, [a["size_bytes"] / 1024 for a in arts], color="tab:blue", label="file")
    axes[0].bar(labels, [a["gzip_bytes"] / 1024 for a in arts], color="tab:cyan", width=0.5, label="gzip")
    axes[0].set_ylabel("KB")
    axes[0].legend()
    axes[0].set_title("size")
    axes[1].bar(labels, [a["end_to_end_ms"] for a in arts], color="tab:orange")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("ms per window (1 thread)")
    axes[1].set_title("end-to-end latency")
    axes[2].bar(labels, [1.0 - a["cosine_p5"] for a in arts], color="tab:red")
    axes[2].set_yscale("symlog", linthresh=1e-6)
    axes[2].set_ylabel("1 - cosine p5 vs Keras")
    axes[2].set_title("fidelity loss")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7, rotation=90)
    fig.tight_layout()
    return atomic.save_figure(fig, path, dpi=90)


def write_report(summary: dict[str, Any], out_dir: Path | str, *, name: str) -> dict[str, Path]:
    """Write ``<name>.report.json``, ``.md`` and ``.png`` into ``out_dir``; returns their paths.

    Named after the export (``name``, the model file's stem), like its ``.tflite`` files: two models
    exported into one folder keep a report each (one ``report.json`` was replaced by the second).
    """
    out_dir = Path(out_dir)
    stem = metadata.artifact_stem(name, "report")
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    atomic.write_json(paths["json"], summary)
    atomic.write_text(paths["markdown"], markdown(summary))
    plot(summary, paths["png"])
    return paths
