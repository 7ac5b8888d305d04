"""Demo step: the UrbanSound8K 10-fold protocol for the teacher and the student, and the final classifier.

Both models are embedded at the same hop, chosen so that the slow 48-kHz teacher embeds at most
``teacher_max_windows`` windows (the published 0.1 s when the dataset is small enough; 0.5 s,
481 windows, on the default demo dataset). The MLP is the published 512-128 one; on this tiny
dataset it uses Adam 1e-3 and patience 10 (instead of 1e-4 and 20) so that the 20 trainings
take well under a minute: the packaged preset ``classify/demo`` (``configs/classify/demo.yaml``), which
``sea-tf classify us8k --config classify/demo`` runs too. About 2 min on 2 cores, most of it the teacher's embeddings (cached in
``OUT/classify/cache``, so a re-run is quicker).

Then SONYC-UST (docs/PROTOCOL.md §4.3) on the dataset's ``ust/`` for the same two models: the MIL
with AutoPool of the packaged preset ``classify/ust-demo`` (hop 1 s: 48 clips x 10 windows = 480
teacher windows, about a minute), micro/macro AUPRC of both and their ratio, in
``OUT/classify/ust/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import soundfile as sf

from sea_tf.config import Config, resolve
from sea_tf.demo import DemoContext, StepReport
from sea_tf.presets import load_defaults

if TYPE_CHECKING:
    from sea_tf.classify.features import ClipSet

HOP_CANDIDATES = (0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0)
PRESET = "classify/demo"
UST_PRESET = "classify/ust-demo"
TEACHER_MAX_WINDOWS = 500  # the 48-kHz teacher's share of the demo's time budget


def demo_settings(ctx: DemoContext | None = None) -> Config:
    """The resolved ``classify us8k`` settings of the demo (preset :data:`PRESET`, then ``ctx``'s overrides)."""
    return ctx.settings("classify", PRESET) if ctx else resolve(load_defaults("classify/us8k"), PRESET)


def choose_hop(paths: Sequence[Path | str], max_windows: int, *,
               candidates: Sequence[float] = HOP_CANDIDATES) -> tuple[float, int]:
    """The smallest hop (s) of ``candidates`` whose centred framing of ``paths`` stays within ``max_windows``."""
    from sea_tf.audio import n_frames

    durations = [sf.info(str(p)).duration for p in paths]
    for hop in candidates:
        total = sum(n_frames(int(round(d * 1000)), 1000, hop_size=hop, center=True) for d in durations)
        if total <= max_windows:
            return hop, total
    return candidates[-1], total


def features_settings(hop: float, out: Path | str) -> dict[str, Any]:
    """The demo's frame-embedding settings at ``hop`` seconds, caching under ``out/cache``."""
    return {**demo_settings()["features"], "hop_size": hop, "cache_dir": str(Path(out) / "cache")}


def evaluate_models(ctx: DemoContext, clips: ClipSet, specs: Sequence[str], names: list[str], out: Path, hop: float, *,
                    progress: bool = True) -> dict[str, Any]:
    """The demo's 10-fold protocol (preset :data:`PRESET`) for ``specs``; returns the comparison table."""
    from sea_tf.classify.benchmark import run_benchmark

    cfg = demo_settings(ctx)
    return run_benchmark(clips, specs, out, features_cfg=features_settings(hop, out), clf_cfg=cfg["classifier"],
                         seed=ctx.seed, test_folds=cfg["protocol"]["test_folds"], workers=cfg["protocol"]["workers"],
                         progress=progress, names=names)


def ust_settings(ctx: DemoContext | None = None) -> Config:
    """The resolved ``classify ust`` settings of the demo (preset :data:`UST_PRESET`, then ``ctx``'s overrides)."""
    return ctx.settings("classify_ust", UST_PRESET) if ctx else resolve(load_defaults("classify/ust"), UST_PRESET)


def run_ust(ctx: DemoContext, root: Path, teacher: str, student: str,
            out: Path) -> tuple[dict[str, Any], str, list[str]] | None:
    """SONYC-UST for the teacher and the student on ``root``; returns (figures, markdown, images) or None.

    None when the dataset has no ``ust/`` (made before the UST set existed: regenerate it).
    """
    from sea_tf.classify.ust import comparison_markdown, run_ust as run_ust_models
    from sea_tf.data.ust import UST

    if not (root / "annotations.csv").is_file():
        return None
    dataset = UST(root)
    cfg = ust_settings(ctx)
    cfg["seed"] = ctx.seed
    cfg["features"] = {**cfg["features"], "cache_dir": str(out / "cache")}
    table = run_ust_models(dataset, [teacher, student], out, cfg, names=["teacher", "student"], progress=False)
    models = table["models"]
    ratio = {k: models["student"][k] / models["teacher"][k]
             for k in ("micro_auprc", "macro_auprc") if {"teacher", "student"} <= models.keys() and models["teacher"][k]}
    images = []
    for name in models:
        dest = ctx.report_dir / f"classify-ust-pr-{name}.png"
        shutil.copyfile(models[name]["pr_png"], dest)
        images.append(dest.name)
    teacher_windows = (models["teacher"]["framing"]["frames_per_file"] * (models["teacher"]["n_train"] +
                       models["teacher"]["n_validate"])) if "teacher" in models else None
    figures = {"dataset": "ust", "root": str(root), "n_train": len(dataset.clips_in_split("train")),
               "n_validate": len(dataset.clips_in_split("validate")), "teacher_windows": teacher_windows,
               "models": {n: {k: r[k] for k in ("spec", "micro_auprc", "macro_auprc", "micro_f1", "class_auprc",
                                                "n_validate_scored", "embedding_size", "weights")}
                          for n, r in models.items()},
               "student_teacher_ratio": ratio, "failed_models": table["failed"],
               "settings": {"preset": UST_PRESET, "features": cfg["features"], "classifier": cfg["classifier"]}}
    md = ["### SONYC-UST (coarse tagging of the validate split)", "",
          comparison_markdown(models, dataset.classes).strip(),
          f"MIL + AutoPool ({cfg['classifier']['n_hidden']} hidden layer of {cfg['classifier']['hidden_size']}, Adam "
          f"{cfg['classifier']['learning_rate']}, {cfg['classifier']['epochs']} epochs, best validation loss "
          f"restored) on {figures['n_train']} train / {figures['n_validate']} validate clips of 10 s, 1-s windows "
          f"every {cfg['features']['hop_size']} s ({teacher_windows} teacher windows)."]
    if ratio:
        md.append(f"Student / teacher: micro AUPRC **{100 * ratio['micro_auprc']:.1f} %**, macro AUPRC "
                  f"**{100 * ratio['macro_auprc']:.1f} %**.")
    if table["failed"]:
        md.append("Failed: " + "; ".join(f"{n}: {r}" for n, r in table["failed"].items()))
    return figures, "\n\n".join(md), images


def _student_spec(ctx: DemoContext) -> tuple[str, str]:
    """The student to evaluate (a model spec) and where it came from, for the report."""
    from sea_tf.weights import is_cached

    for key in ("student_model", "embed_model"):
        if ctx.artifacts.get(key):
            return ctx.artifacts[key], {"student_model": "the distilled student",
                                        "embed_model": "the models step's student (no distilled student)"}[key]
    if is_cached("edgel3/sea-64"):
        return "edgel3/sea-64", "published SEA-64 from the weights cache (no student in this demo run)"
    return "sea-64", ("untrained sea-64 preset (no student in this demo run, and the published SEA-64 is not in "
                      "the weights cache: `sea-tf models import edgel3_sea_ust_audio_emb_64.h5`)")


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.classify.evaluate import comparison_markdown
    from sea_tf.classify.features import extract_features, load_clipset, open_embedder
    from sea_tf.classify.final import train_final

    data_dir = Path(ctx.artifacts.get("data_dir", ctx.data_dir))
    out = ctx.out_dir / "classify"
    teacher = ctx.artifacts.get("teacher_model") or "l3-mel256-512"
    teacher_source = (ctx.results.get("teacher", {}).get("teacher") or "the teacher step's model"
                      if ctx.artifacts.get("teacher_model") else "untrained l3-mel256-512 preset (no teacher step)")
    student, student_source = _student_spec(ctx)

    clips = load_clipset(data_dir, "us8k")
    settings = demo_settings(ctx)
    mlp = settings["classifier"]["mlp"]
    hop, teacher_windows = choose_hop(clips.paths, TEACHER_MAX_WINDOWS)
    features = features_settings(hop, out)
    table = evaluate_models(ctx, clips, [teacher, student], ["teacher", "student"], out, hop)
    models = table["models"]
    acc = {name: models[name]["accuracy_mean"] for name in models}
    ratio = acc["student"] / acc["teacher"] if "teacher" in acc and "student" in acc and acc["teacher"] else None

    # The deployable classifier for the student: all folds, early stopping on 10 % of the clips held out.
    clf_path = out / "classifier" / "student-classifier.keras"
    card = None
    if "student" in models:
        embedder = open_embedder(student, name="student")
        feats = extract_features(clips, embedder, out / "cache", hop_size=hop, framing=features["framing"],
                                 max_failed_fraction=features["max_failed_fraction"], progress=False)
        card = train_final(feats, embedder.card, clf_path, mlp_cfg=mlp, seed=ctx.seed, features_cfg=features,
                           val_fraction=0.1, progress=False)
        ctx.artifacts["classifier"] = str(clf_path)
    ctx.artifacts["classify_results"] = str(out / "comparison.json")

    images = []
    for name in models:
        png = Path(models[name]["confusion_png"])
        dest = ctx.report_dir / f"classify-confusion-{name}.png"
        shutil.copyfile(png, dest)
        images.append(dest.name)

    figures = {
        "hop_size_s": hop, "teacher_windows": teacher_windows, "n_clips": len(clips),
        "teacher": {"spec": str(teacher), "source": teacher_source},
        "student": {"spec": str(student), "source": student_source},
        "accuracy": {name: {"mean": models[name]["accuracy_mean"], "std": models[name]["accuracy_std"],
                            "per_fold": models[name]["per_fold"],
                            "per_class": models[name]["per_class_accuracy"]} for name in models},
        "student_teacher_ratio": ratio,
        "target_ratio": 0.9,
        "failed_models": table["failed"],
        "classifier": None if card is None else {
            "path": str(clf_path), "params": card["params"], "classes": card["classes"],
            "validation_accuracy": card["training"]["validation_accuracy"],
            "epochs_run": card["training"]["epochs_run"]},
        "settings": {"preset": PRESET, "teacher_max_windows": TEACHER_MAX_WINDOWS, "features": features,
                     "classifier": settings["classifier"], "protocol": settings["protocol"]},
    }
    md = [comparison_markdown(models, table["n_folds"]).strip(),
          f"Hop {hop} s and {features['framing']} framing for both models ({teacher_windows} teacher windows); "
          f"MLP 512-128, Adam "
          f"{mlp['learning_rate']}, batch {mlp['batch_size']}, patience "
          f"{mlp['patience']}. Teacher: {teacher_source} (`{teacher}`); student: {student_source} "
          f"(`{student}`)."]
    if ratio is not None:
        verdict = "meets" if ratio >= 0.9 else "misses"
        md.append(f"Student / teacher mean accuracy: **{100 * ratio:.1f} %** ({verdict} the 90 % target).")
    if table["failed"]:
        md.append("Failed: " + "; ".join(f"{n}: {r}" for n, r in table["failed"].items()))
    md.append(f"Final classifier: `{clf_path}` ({card['params']} parameters, scaler folded in)." if card else
              "No final classifier: the student could not be evaluated.")

    ust = run_ust(ctx, data_dir / "ust", teacher, student, out / "ust")
    if ust is None:
        md.append(f"SONYC-UST: skipped, {data_dir / 'ust'} has no annotations.csv (a dataset made before the UST set; "
                  "regenerate it with `sea-tf data make-demo --overwrite`).")
    else:
        figures["ust"], ust_md, ust_images = ust
        md.append(ust_md)
        images += ust_images
        ctx.artifacts["classify_ust_results"] = str(out / "ust" / "comparison.json")
    return StepReport(figures=figures, markdown="\n\n".join(md), images=images)
