"""Demo step ``data``: generate (or reuse) the embedded demo dataset and describe it."""
import time
from pathlib import Path
from typing import Any

import numpy as np

from sea_tf import cards
from sea_tf.data import US8K, LabelledDataset
from sea_tf.data.demo_dataset import is_complete, make_demo_dataset
from sea_tf.data.probe import linear_probe_accuracy, mean_logmel_features
from sea_tf.demo import DemoContext, StepReport

FIGURE = "data_logmel_per_class.png"


def run(ctx: DemoContext) -> StepReport:
    """Write the dataset to ``ctx.data_dir`` unless an identical one is there; report its make-up.

    Sets ``ctx.artifacts["data_dir"]`` (UrbanSound8K layout) and ``ctx.artifacts["upstream_dir"]``.
    """
    cfg = ctx.settings("data")
    cfg.update(out=str(ctx.data_dir), seed=ctx.seed, overwrite=True)
    start = time.perf_counter()
    reused = is_complete(ctx.data_dir, cfg)
    card = cards.read_card(ctx.data_dir) if reused else make_demo_dataset(cfg, progress=True)
    generation_s = time.perf_counter() - start
    ctx.artifacts["data_dir"] = ctx.data_dir
    ctx.artifacts["upstream_dir"] = ctx.data_dir / "upstream"

    dataset = US8K(ctx.data_dir)
    problems = dataset.check_audio()
    feats = mean_logmel_features(dataset.clips)
    probe = linear_probe_accuracy(feats, [c.class_id for c in dataset.clips], [c.fold for c in dataset.clips], seed=ctx.seed)
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    _plot_logmel_grid(dataset, ctx.report_dir / FIGURE)

    figures = {
        "data_dir": str(ctx.data_dir), "upstream_dir": str(ctx.data_dir / "upstream"),
        "reused": reused, "generation_s": round(generation_s, 2), "seed": card["seed"],
        "n_clips": card["n_clips"], "n_sources": card["n_sources"],
        "clips_per_fold": card["clips_per_fold"], "classes_per_fold": card["classes_per_fold"],
        "clips_per_class": card["clips_per_class"], "sample_rates": card["sample_rates"],
        "channels": card["channels"], "subtypes": card["subtypes"], "clip_duration_s": card["clip_duration_s"],
        "upstream": card["upstream"], "unreadable_files": len(problems),
        "linear_probe": {"features": "mean log-mel (64 bands, 22.05 kHz)", "model": "logistic regression",
                         "mean_fold_accuracy": round(probe["mean_fold_accuracy"], 4),
                         "pooled_accuracy": round(probe["pooled_accuracy"], 4)},
    }
    return StepReport(figures=figures, markdown=_markdown(figures), images=[FIGURE])


def _markdown(f: dict[str, Any]) -> str:
    folds = " | ".join(str(f["clips_per_fold"].get(str(k), 0)) for k in range(1, 11))
    classes = " | ".join(str(f["classes_per_fold"].get(str(k), 0)) for k in range(1, 11))
    rates = ", ".join(f"{int(sr) / 1000:g} kHz: {n}" for sr, n in f["sample_rates"].items())
    d = f["clip_duration_s"]
    return "\n".join([
        f"Synthetic UrbanSound8K-layout dataset in `{f['data_dir']}` "
        f"({'reused' if f['reused'] else 'generated'} in {f['generation_s']:.1f} s, seed {f['seed']}): "
        f"{f['n_clips']} clips from {f['n_sources']} source recordings, 10 classes, "
        f"{f['upstream']['n_recordings']} unlabelled upstream scenes ({f['upstream']['total_duration_s']} s) "
        f"in `{f['upstream_dir']}`.",
        "",
        "| fold | " + " | ".join(str(k) for k in range(1, 11)) + " |",
        "|---|" + "---|" * 10,
        f"| clips | {folds} |",
        f"| classes | {classes} |",
        "",
        f"Clip durations {d['min']}-{d['max']} s (mean {d['mean']} s, total {d['total']} s); sample rates {rates}; "
        f"channels {f['channels']}; sample types {f['subtypes']}; unreadable files: {f['unreadable_files']}.",
        "",
        f"Linear probe (logistic regression on mean log-mel energies, leave-one-fold-out): "
        f"{100 * f['linear_probe']['mean_fold_accuracy']:.1f} % mean fold accuracy "
        f"({100 * f['linear_probe']['pooled_accuracy']:.1f} % pooled); chance is 10 %.",
    ])


def _plot_logmel_grid(dataset: LabelledDataset, path: Path) -> None:
    """One log-mel spectrogram per class (the longest clip of each) in a 2 x 5 grid."""
    import librosa
    from matplotlib.figure import Figure

    from sea_tf import atomic

    fig = Figure(figsize=(16, 6))
    axes = fig.subplots(2, 5)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.08, top=0.86, wspace=0.3, hspace=0.55)
    for class_id, ax in enumerate(axes.flat):
        clips = [c for c in dataset.clips if c.class_id == class_id]
        if not clips:
            ax.set_axis_off()
            continue
        # The longest clip of the class (UrbanSound8K clips carry start/end; an ESC-50 clip, without them,
        # counts as length 0 and the file name decides).
        clip = max(clips, key=lambda c: ((c.end or 0.0) - (c.start or 0.0), c.slice_file_name))
        audio, sr = librosa.load(clip.path, sr=22050, mono=True)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=sr, n_mels=64, hop_length=256), ref=np.max)
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                  extent=[0, audio.size / sr, 0, mel.shape[0]])
        ax.set_title(f"{dataset.classes[class_id]}\n{clip.slice_file_name}", fontsize=9)
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("mel band", fontsize=8)
    fig.suptitle("Demo dataset: log-mel spectrogram of one clip per class (dB re max)")
    atomic.save_figure(fig, path, dpi=80)
