"""SONYC-UST coarse tagging for one or more embedding models (docs/PROTOCOL.md §4.3).

A run, top to bottom: read the root (:class:`sea_tf.data.ust.UST`) → cut every train / validate
clip to 10 s and embed its 1-s windows (L3E framing, hop 0.1 s: 91 frames; cached per clip and
model like the UrbanSound8K features) → truncate every file to the smallest frame count → train
the MIL (or framewise) classifier on ``train``, keeping the epoch with the lowest ``validate``
loss → predict ``validate`` → score it against the annotator-0 rows with the DCASE 2019 Task 5
metrics (:mod:`sea_tf.classify.ust_metrics`).

Outputs of ``sea-tf classify ust`` (``OUT/``)::

    comparison.json / comparison.md     one row per model: micro/macro AUPRC, micro F1, per class
    <model>/results.json                micro_auprc, macro_auprc, micro_f1, class_auprc (the
                                        evaluator's numbers on output.csv), the threshold-order
                                        areas, framing, settings, training, model provenance
                                        (model_sha256; source_sha256 for a .tflite)
    <model>/output.csv                  DCASE submission format for validate: audio_filename, the
                                        fine columns (zeros: coarse mode), the coarse probabilities
                                        (float32 shortest decimals)
    <model>/pr_curves.png               per-class and micro PR curves
    cache/clip<s>s/<model>/hop<h>-<framing>/<clip>.npz
"""
from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, cast

import numpy as np

from sea_tf import atomic, cards
from sea_tf.classify import mil, ust_metrics
from sea_tf.classify.evaluate import write_comparison_markdown
from sea_tf.classify.features import ClipSet, FrameFeatures, FrameFn, extract_features, frame_l3e, open_embedder
from sea_tf.errors import ClassifyError, SeaTFError, SeaTFWarning

if TYPE_CHECKING:  # annotations only: the dataset module is imported by whoever reads the root
    from sea_tf.data.ust import UST, USTClip
    from sea_tf.models.seamodel import SeaModel

SPLIT_CODES = {"train": 1, "validate": 2}


def fixed_length_frames(clip_seconds: float) -> FrameFn:
    """A ``frame_fn`` for :func:`~sea_tf.classify.features.extract_features` that fixes clips to ``clip_seconds``.

    SONYC-UST clips are nominally 10 s; a shorter one is zero-padded at the end and a longer one
    cut, each with a :class:`SeaTFWarning` naming the file, so that every file has the same frames.

    Returns
    -------
    callable
        ``(path, sample_rate, hop_size, framing) -> (frames [T, sample_rate], timestamps [T])``.
    """
    from sea_tf import audio as audio_mod

    def frames(path: Path, sample_rate: int, hop_size: float, framing: str) -> tuple[np.ndarray, np.ndarray]:
        samples, sr = audio_mod.load_audio(path)
        mono = audio_mod.resample(audio_mod.to_mono(audio_mod.check_audio(samples, name=str(path))), sr, sample_rate)
        want = int(round(clip_seconds * sample_rate))
        if len(mono) != want:
            # a tolerance of one sample at the model rate: resampling rounds lengths
            if abs(len(mono) - want) > 1:
                action = "zero-padded" if len(mono) < want else "cut"
                warnings.warn(f"{path}: lasts {len(mono) / sample_rate:.2f} s, not {clip_seconds:g} s; {action} to "
                              f"{clip_seconds:g} s", SeaTFWarning, stacklevel=2)
            mono = np.pad(mono, (0, max(0, want - len(mono))))[:want]
        if framing == "l3e":
            return frame_l3e(mono, sample_rate, hop_size=hop_size)
        return audio_mod.prepare_frames(mono, sample_rate, sample_rate, hop_size=hop_size,
                                        center=framing == "centered", name=str(path))

    return frames


def ust_clipset(dataset: UST) -> tuple[ClipSet, list[USTClip]]:
    """The train and validate clips with audio, as a :class:`ClipSet` (fold 1 = train, 2 = validate).

    Returns
    -------
    clips : ClipSet
        ``labels`` are unused (UST targets are multi-label): see the second value.
    ust_clips : list of sea_tf.data.ust.USTClip
        In the same order.
    """
    chosen = [c for split in SPLIT_CODES for c in dataset.clips_in_split(split)]
    if dataset.missing:
        shown = ", ".join(c.audio_filename for c in dataset.missing[:5])
        warnings.warn(f"{dataset.annotations_path}: {len(dataset.missing)} listed file(s) have no audio under "
                      f"{dataset.root / 'audio'} and are skipped: {shown}"
                      + (" ..." if len(dataset.missing) > 5 else ""), SeaTFWarning, stacklevel=2)
    # clips_in_split lists only clips whose audio exists, so every path is set
    clips = ClipSet(names=[c.audio_filename for c in chosen], paths=[cast(Path, c.path) for c in chosen],
                    folds=np.array([SPLIT_CODES[c.split] for c in chosen], dtype=int),
                    labels=np.zeros(len(chosen), dtype=int), classes=list(dataset.classes),
                    fold_ids=list(SPLIT_CODES.values()), kind="ust")
    return clips, chosen


def file_embeddings(features: FrameFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Frame embeddings grouped per file and truncated to the smallest frame count.

    Returns
    -------
    x : np.ndarray [shape=(n_embedded, T, d)], float32
    index : np.ndarray [shape=(n_embedded,)], int
        Index into ``features.clips`` of each row (clips that failed to embed are absent).
    """
    index = np.unique(features.frame_clip)
    groups = [features.x[features.frame_clip == i] for i in index]
    if not groups:
        raise ClassifyError(f"{features.model_name}: no clip could be embedded; nothing to classify")
    t = min(len(g) for g in groups)   # the paper code truncates to the shortest file, as here
    return np.stack([g[:t] for g in groups]).astype(np.float32), index


def probability_text(probs: np.ndarray) -> list[list[str]]:
    """Each probability as the shortest decimal that reads back as its float32 value.

    At most 9 significant digits: every CSV reader (Python's ``float``, pandas' parsers, the
    evaluator's) reads such a decimal to the same float64, so the metrics computed on
    :func:`written_probabilities` are the ones the evaluator computes on ``output.csv``.

    Parameters
    ----------
    probs : np.ndarray [shape=(n_files, n_classes)]

    Returns
    -------
    list of list of str
    """
    return [[np.format_float_positional(np.float32(p), unique=True, trim="-") for p in row] for row in probs]


def written_probabilities(text: list[list[str]]) -> np.ndarray:
    """The float64 values a reader of ``output.csv`` gets from :func:`probability_text`'s strings."""
    return np.array([[float(v) for v in row] for row in text], dtype=np.float64).reshape(len(text), -1)


def output_csv(dataset: UST, names: list[str], text: list[list[str]]) -> str:
    """The DCASE 2019 Task 5 submission table: ``audio_filename``, fine columns (0), coarse probabilities.

    ``text`` holds the probabilities as :func:`probability_text` writes them (one row per name).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["audio_filename", *dataset.fine_columns, *dataset.coarse_columns])
    zeros = ["0"] * len(dataset.fine_columns)   # coarse mode: no fine predictions
    for name, row in zip(names, text):
        writer.writerow([name, *zeros, *row])
    return buffer.getvalue()


def plot_pr_curves(y_true: np.ndarray, probs: np.ndarray, classes: list[str], path: Path, *, title: str) -> Path:
    """Save the per-class and micro PR curves (the challenge's points) as a PNG; returns ``path``."""
    plt = atomic.pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 5))
    for i, name in enumerate(classes):
        c = ust_metrics.class_curve(y_true[:, i], probs[:, i])
        ax.plot(np.r_[0, c["recall"], 1], np.r_[1, c["precision"], 0], lw=1, alpha=0.8,
                label=f"{name} ({c['auprc']:.2f})")
    m = ust_metrics.micro_curve(y_true, probs)
    ax.plot(np.r_[0, m["recall"][::-1], 1], np.r_[1, m["precision"][::-1], 0], "k", lw=2.5,
            label=f"micro ({m['auprc']:.2f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return atomic.save_figure(fig, path, dpi=100)


def check_splits(dataset: UST) -> None:
    """ClassifyError unless train and validate have audio and validate has annotator-0 rows.

    A validate split without verified rows is an error, never a zero score.
    """
    train, val = dataset.clips_in_split("train"), dataset.clips_in_split("validate")
    if not train or not val:
        raise ClassifyError(f"{dataset.root}: the train and validate splits both need files with audio (found "
                            f"{len(train)} train, {len(val)} validate); check the split column and audio/")
    if not any(c.verified is not None for c in val):
        raise ClassifyError(f"{dataset.annotations_path}: the validate split has no annotator_id 0 (verified) rows; "
                            "the SONYC-UST evaluation scores against them, so there is nothing to score")


def evaluate_model(dataset: UST, spec: str | Path | SeaModel, *, name: str, out_dir: Path, cfg: dict,
                   progress: bool) -> dict:
    """Embed, train, predict and score one model; writes ``OUT/<name>/``.

    Parameters
    ----------
    dataset : sea_tf.data.ust.UST
    spec
        Anything :func:`~sea_tf.classify.features.open_embedder` takes (Keras or ``.tflite``).
    name : str
        Directory and table name.
    out_dir : Path
        ``OUT``; the model's files go to ``OUT/<name>/``.
    cfg : dict
        The resolved ``classify ust`` settings (``features``, ``classifier``, ``seed``).

    Returns
    -------
    dict
        The model's ``results.json``.

    Raises
    ------
    ClassifyError
        An empty split, or a validate split without annotator-0 rows (evaluation needs the
        verified ground truth: never a zero score).
    """
    fcfg, ccfg = cfg["features"], cfg["classifier"]
    check_splits(dataset)
    clips, ust_clips = ust_clipset(dataset)
    embedder = open_embedder(spec, name=name)
    # The clip length is not in the cache key (model + audio hash), so it names a directory of its own.
    cache = (Path(fcfg["cache_dir"]) if fcfg["cache_dir"] else out_dir / "cache") / f"clip{fcfg['clip_seconds']:g}s"
    feats = extract_features(clips, embedder, cache, hop_size=fcfg["hop_size"], framing=fcfg["framing"],
                             max_failed_fraction=fcfg["max_failed_fraction"], progress=progress, frame_fn=fixed_length_frames(float(fcfg["clip_seconds"])))
    x, index = file_embeddings(feats)
    kept = [ust_clips[i] for i in index]
    split = np.array([c.split for c in kept])
    y = dataset.targets(kept)
    train, val = split == "train", split == "validate"
    model, info = mil.fit_classifier(x[train], y[train], x[val], y[val], cfg=ccfg, seed=int(cfg["seed"]),
                                     progress=progress)
    val_names = [c.audio_filename for c in kept if c.split == "validate"]
    text = probability_text(mil.predict_files(model, x[val], cfg=ccfg))
    # scored as written to output.csv, so that the challenge's evaluator run on that file gives these numbers
    probs = written_probabilities(text)
    scored = np.array([c.verified is not None for c in kept if c.split == "validate"])
    truth = dataset.targets([c for c in kept if c.split == "validate" and c.verified is not None], verified_only=True)
    metrics = ust_metrics.ust_metrics(truth, probs[scored], dataset.classes)
    model_dir = out_dir / name
    atomic.write_text(model_dir / "output.csv", output_csv(dataset, val_names, text))
    png = plot_pr_curves(truth, probs[scored], dataset.classes, model_dir / "pr_curves.png",
                         title=f"{name}: micro AUPRC {metrics['micro_auprc']:.3f}, macro "
                               f"{metrics['macro_auprc']:.3f} ({metrics['n_files']} validate files)")
    results = {
        "model": name, "spec": str(spec), "dataset": "ust", "model_key": embedder.key, **embedder.identity(),
        "weights": cards.weights_provenance(embedder.card), "embedding_size": int(x.shape[2]),
        **{k: metrics[k] for k in ("micro_auprc", "macro_auprc", "micro_f1", "micro_f1_threshold", "class_auprc",
                                   "micro_auprc_threshold_order", "macro_auprc_threshold_order")},
        "n_validate_scored": metrics["n_files"], "validate_positives": metrics["positives"],
        "n_train": int(train.sum()), "n_validate": int(val.sum()),
        "framing": {"framing": fcfg["framing"], "hop_size": float(fcfg["hop_size"]),
                    "clip_seconds": float(fcfg["clip_seconds"]), "frames_per_file": int(x.shape[1]),
                    "sample_rate": embedder.sample_rate},
        "settings": {"classifier": ccfg, "seed": int(cfg["seed"]), "features": fcfg},
        "training": info, "failed_clips": feats.failed, "cache": feats.stats,
        "output_csv": str(model_dir / "output.csv"), "pr_png": str(png),
    }
    atomic.write_json(model_dir / "results.json", results)
    return results


def comparison_markdown(models: dict, classes: list[str]) -> str:
    """Models side by side: micro/macro AUPRC, micro F1, each relative to the first model, then per class."""
    if not models:
        return ""
    first = next(iter(models))
    ref = models[first]
    lines = [f"| model | dim | micro AUPRC | macro AUPRC | micro F1 | micro / {first} | macro / {first} |",
             "|---|---|---|---|---|---|---|"]
    for name, r in models.items():
        ratio = [(r[k] / ref[k]) if ref[k] else float("nan") for k in ("micro_auprc", "macro_auprc")]
        lines.append(f"| {name} | {r['embedding_size']} | {r['micro_auprc']:.3f} | {r['macro_auprc']:.3f} "
                     f"| {r['micro_f1']:.3f} | {100 * ratio[0]:.1f} % | {100 * ratio[1]:.1f} % |")
    lines += ["", "| class | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for c in classes:
        lines.append(f"| {c} | " + " | ".join(f"{models[n]['class_auprc'][c]:.3f}" for n in models) + " |")
    return "\n".join(lines) + "\n"


def run_ust(dataset: UST, specs: Sequence[str | Path | SeaModel], out_dir: Path | str, cfg: dict, *,
            names: list[str] | None = None, progress: bool) -> dict:
    """Evaluate every model of ``specs``; writes ``OUT/comparison.{json,md}`` and each model's directory.

    A model that fails (cannot be loaded, nothing embedded) is listed under ``failed`` and the others
    still run; a dataset problem (no verified validate rows) stops the run.

    Returns
    -------
    dict
        ``{"dataset": "ust", "classes", "features", "classifier", "models": {name: results},
        "failed": {name: reason}}``.
    """
    from sea_tf.classify.benchmark import unique_names

    out_dir = Path(out_dir)
    names = names or unique_names(specs)
    check_splits(dataset)   # the dataset's problems stop the run; a model's are reported per model
    models: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for spec, name in zip(specs, names):
        try:
            models[name] = evaluate_model(dataset, spec, name=name, out_dir=out_dir, cfg=cfg, progress=progress)
        except SeaTFError as exc:
            failed[name] = str(exc)
            if progress:
                print(f"classify ust: {name} failed: {exc}")
    table = {"dataset": "ust", "classes": list(dataset.classes), "features": cfg["features"],
             "classifier": cfg["classifier"], "seed": cfg["seed"],
             "models": {n: {k: v for k, v in r.items() if k != "settings"} for n, r in models.items()},
             "failed": failed}
    atomic.write_json(out_dir / "comparison.json", table)
    c = cfg["classifier"]
    kind = "MIL + AutoPool" if c["type"] == "mil" else f"framewise ({c['aggregation']} of frames)"
    md = ["# SONYC-UST: coarse tagging of the validate split (DCASE 2019 Task 5 metrics)", "",
          comparison_markdown(models, dataset.classes),
          f"Frames: 1-s windows every {cfg['features']['hop_size']} s ({cfg['features']['framing']} framing) of "
          f"{cfg['features']['clip_seconds']:g}-s clips; classifier: {kind}, {c['n_hidden']} hidden layer(s) of "
          f"{c['hidden_size']}, Adam {c['learning_rate']}, batch {c['batch_size']}, {c['epochs']} epochs "
          f"(patience {c['patience']}, best validation loss restored)."]
    write_comparison_markdown(out_dir, md, failed, any_succeeded=bool(models))
    return table
