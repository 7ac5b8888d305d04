"""The fold protocol for one model's frame embeddings: train, validate, test, aggregate.

For every test fold (docs/PROTOCOL.md §4.1, §4.2): train on the training folds' frames with early stopping on
the validation fold's frames, predict the test frames, average them per clip, and score the clips.
Fold results are saved as they finish (``fold-<k>.json``) and reused when the run is repeated
with the same model and settings, so an interrupted run resumes.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from sea_tf import atomic
from sea_tf.classify import defaults, protocol
from sea_tf.classify.evaluate import clip_metrics, clip_probabilities, plot_confusion, summarize_folds
from sea_tf.errors import ClassifyError, SeaTFWarning

if TYPE_CHECKING:  # annotations only
    from sea_tf.classify.features import FrameFeatures

CLASSIFIER_DEFAULTS = defaults.CLASSIFIER


def run_fold(x: np.ndarray, frame_clip: np.ndarray, clip_labels: np.ndarray, clip_folds: np.ndarray,
             clip_names: Sequence[str], n_classes: int, split: protocol.FoldSplit, *, clf_cfg: dict, seed: int,
             progress: bool) -> dict:
    """Train on ``split.train``, early-stop on ``split.validation``, score clips of ``split.test``.

    Parameters
    ----------
    x : np.ndarray [shape=(n_frames, dim)]
        Raw frame embeddings.
    frame_clip : np.ndarray [shape=(n_frames,)], int
        Clip index of each frame.
    clip_labels, clip_folds : np.ndarray [shape=(n_clips,)], int
    clip_names : list of str
    n_classes : int
    split : protocol.FoldSplit
    clf_cfg : dict
        ``CLASSIFIER_DEFAULTS``-shaped settings.
    seed : int
        Seed of this fold's classifier.

    Returns
    -------
    dict
        :func:`~sea_tf.classify.evaluate.clip_metrics` keys plus ``fold``, ``validation_fold``,
        ``train_folds``, ``train_frames``, training info and per-clip ``predictions``.
    """
    train_c, val_c, test_c = protocol.split_masks(clip_folds, split, augmented=protocol.is_augmented(clip_names))
    train_f, val_f, test_f = train_c[frame_clip], val_c[frame_clip], test_c[frame_clip]
    y = clip_labels[frame_clip]
    if clf_cfg["type"] == "mlp":
        from sea_tf.classify import mlp
        model, info = mlp.train_mlp(x[train_f], y[train_f], n_classes, x[val_f], y[val_f], cfg=clf_cfg["mlp"],
                                    seed=seed, progress=progress, desc=f"fold {split.test} epochs")
        probs = mlp.predict_proba(model, x[test_f])
    elif clf_cfg["type"] == "svm":
        from sea_tf.classify import svm
        model, info = svm.train_svm(x[train_f], y[train_f], x[val_f], y[val_f], frame_clip[val_f],
                                    cfg=clf_cfg["svm"], seed=seed)
        probs = svm.predict_proba(model, x[test_f], n_classes=n_classes)
    else:
        raise ClassifyError(f"unknown classifier type {clf_cfg['type']!r}; choose 'mlp' or 'svm'")
    test_clips = np.flatnonzero(test_c & np.isin(np.arange(len(clip_labels)), frame_clip[test_f]))
    compact = np.searchsorted(test_clips, frame_clip[test_f])
    clip_probs = clip_probabilities(probs, compact, n_clips=len(test_clips))
    pred = clip_probs.argmax(axis=1)
    truth = clip_labels[test_clips]
    result = clip_metrics(truth, pred, n_classes)
    result.update(fold=split.test, validation_fold=split.validation, train_folds=list(split.train),
                  train_frames=int(train_f.sum()), validation_frames=int(val_f.sum()), test_frames=int(test_f.sum()),
                  training=info,
                  predictions={clip_names[int(c)]: [int(t), int(p)] for c, t, p in zip(test_clips, truth, pred)})
    return result


def _run_fold_from_file(arrays_path: Path | str, clip_names: Sequence[str], n_classes: int, split: protocol.FoldSplit,
                        clf_cfg: dict, seed: int) -> dict:
    # Worker entry point: the frame matrix is memory-mapped instead of pickled to each process.
    x = np.load(Path(arrays_path) / "x.npy", mmap_mode="r")
    with np.load(Path(arrays_path) / "index.npz") as idx:
        frame_clip, labels, folds = idx["frame_clip"], idx["labels"], idx["folds"]
    return run_fold(np.asarray(x), frame_clip, labels, folds, clip_names, n_classes, split, clf_cfg=clf_cfg,
                    seed=seed, progress=False)


def settings_hash(features: FrameFeatures, clf_cfg: dict, seed: int) -> str:
    """sha256 of what a fold result depends on (model, clips, classifier settings, seed)."""
    blob = json.dumps({"model": features.model_key, "clf": clf_cfg, "seed": seed, "n_frames": len(features.x),
                       "clips": features.clips.names, "folds": features.clips.folds.tolist(),
                       "labels": features.clips.labels.tolist()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cross_validate(features: FrameFeatures, out_dir: Path | str, *, clf_cfg: dict | None = None, seed: int,
                   test_folds: Sequence[int] | None = None, workers: int, progress: bool,
                   resume: bool = True, framing: dict | None = None, extra: dict | None = None) -> dict:
    """Run the fold protocol on ``features`` and write the model's results.

    Parameters
    ----------
    features : sea_tf.classify.features.FrameFeatures
    out_dir : str or Path
        Receives ``fold-<k>.json``, ``results.json`` and ``confusion.png``.
    clf_cfg : dict, optional
        ``CLASSIFIER_DEFAULTS``-shaped settings.
    seed : int
        Fold ``k`` trains with seed ``seed + k`` (the same whatever the order or worker count).
    test_folds : list of int, optional
        A subset of test folds (default: all).
    workers : int
        Folds trained in parallel processes (1: sequentially in this process).
    progress : bool
        tqdm bars over folds (and epochs when sequential).
    resume : bool
        Reuse ``fold-<k>.json`` written by an earlier run with the same settings.
    framing : dict, optional
        How the clips were cut into frames (``{"framing", "hop_size"}``), recorded in ``results.json``
        because accuracies under different framings are not comparable (docs/PROTOCOL.md §3.5).
    extra : dict, optional
        More keys for ``results.json`` (the model's ``spec``, ``weights``, ``model_sha256`` …).

    Returns
    -------
    dict
        :func:`~sea_tf.classify.evaluate.summarize_folds` summary plus ``model``, ``folds``
        (per-fold results), ``failed_clips`` and the ``confusion_png`` path.
    """
    from tqdm.auto import tqdm

    settings = _merge(CLASSIFIER_DEFAULTS, clf_cfg or {})
    clips = features.clips
    out_dir = Path(out_dir)
    if len(features.x) == 0:
        raise ClassifyError(f"{features.model_name}: no clip could be embedded; nothing to classify")
    embedded = np.zeros(len(clips), bool)
    embedded[features.frame_clip] = True
    protocol.check_folds(clips.folds[embedded], clips.labels[embedded],
                         [n for n, e in zip(clips.names, embedded) if e], folds=clips.fold_ids, classes=clips.classes)
    splits = protocol.all_splits(clips.fold_ids, test_folds=test_folds)
    key = settings_hash(features, settings, seed)
    n_classes = len(clips.classes)
    results: dict[int, dict] = {}
    todo: list[protocol.FoldSplit] = []
    for split in splits:
        done = out_dir / f"fold-{split.test}.json"
        if resume and done.exists():
            try:
                saved = json.loads(done.read_text())
            except (OSError, ValueError):
                saved = {}
            if saved.get("settings_hash") == key:
                results[split.test] = saved
                continue
        todo.append(split)
    bar = tqdm(total=len(splits), initial=len(results), desc=f"{features.model_name} folds", unit="fold",
               disable=not progress)

    def finish(result: dict) -> None:
        result["settings_hash"] = key
        atomic.write_json(out_dir / f"fold-{result['fold']}.json", result)
        results[result["fold"]] = result
        bar.set_postfix(acc=f"{result['accuracy']:.3f}")
        bar.update(1)

    workers = _affordable_workers(workers, features.x.nbytes)
    if workers > 1 and len(todo) > 1:
        with tempfile.TemporaryDirectory(prefix=".frames-", dir=_mkdir(out_dir)) as tmp:
            np.save(Path(tmp) / "x.npy", features.x)
            np.savez(Path(tmp) / "index.npz", frame_clip=features.frame_clip, labels=clips.labels, folds=clips.folds)
            ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
                futures = [pool.submit(_run_fold_from_file, tmp, clips.names, n_classes, s, settings,
                                       seed + s.test) for s in todo]
                for future in futures:
                    finish(future.result())
    else:
        for split in todo:
            finish(run_fold(features.x, features.frame_clip, clips.labels, clips.folds, clips.names, n_classes,
                            split, clf_cfg=settings, seed=seed + split.test, progress=progress))
    bar.close()
    ordered = [results[s.test] for s in splits]
    summary = summarize_folds(ordered, clips.classes)
    png = plot_confusion(summary["confusion"], clips.classes, out_dir / "confusion.png",
                         title=f"{features.model_name}: {100 * summary['accuracy_mean']:.1f} ± "
                               f"{100 * summary['accuracy_std']:.1f} % over {len(ordered)} folds")
    summary.update(model=features.model_name, dataset=clips.kind, model_key=features.model_key, embedding_size=features.embedding_size,
                   n_clips=int(embedded.sum()), n_frames=int(len(features.x)), classifier=settings["type"],
                   seed=seed, failed_clips=features.failed, cache=features.stats, confusion_png=str(png),
                   folds=[{k: v for k, v in r.items() if k != "predictions"} for r in ordered])
    if framing is not None:
        summary["framing"] = dict(framing)
    summary.update(extra or {})
    atomic.write_json(out_dir / "results.json", summary)
    return summary


def _affordable_workers(workers: int, frame_bytes: int) -> int:
    """``workers`` reduced so that the processes' copies of the frames fit in half the free memory."""
    if workers <= 1:
        return 1
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return workers
    # each worker holds the frames, the training subset and TensorFlow (~1 GB)
    fit = int(0.5 * free // (2 * frame_bytes + (1 << 30)))
    if fit < workers:
        warnings.warn(f"{workers} fold workers would need more memory than is free ({free / 2**30:.1f} GiB); "
                      f"using {max(fit, 1)}", SeaTFWarning, stacklevel=3)
    return max(1, min(workers, fit))


def _mkdir(path: Path) -> Path:
    os.makedirs(path, exist_ok=True)
    return path


def _merge(base: dict, overrides: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in overrides.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
