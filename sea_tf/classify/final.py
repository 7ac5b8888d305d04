"""The deployable clip classifier: an MLP trained on all folds (or a chosen split), with a card.

The saved ``<name>.keras`` takes raw frame embeddings ``float32 [B, D]`` (the scaler is its first
layer) and outputs class probabilities; a clip is classified by the mean of its frames'
probabilities. ``<name>.card.json`` names the classes, the scaler statistics, the framing and the
card of the embedding model the classifier expects, so ``sea-tf export`` and the device harness
can pair them.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import numpy.typing as npt

from sea_tf import cards, package_version
from sea_tf.classify import mlp
from sea_tf.classify.evaluate import clip_probabilities
from sea_tf.backend import keras
from sea_tf.errors import ClassifyError, ModelError, OutputError, SeaTFWarning

if TYPE_CHECKING:  # annotations only
    from sea_tf.classify.features import ClipSet, FrameFeatures

AGGREGATION = "mean of frame probabilities, then argmax"


def final_split(clips: ClipSet, *, train_folds: Sequence[int] | None = None, val_fold: int | None = None,
                val_fraction: float, seed: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Clip masks ``(train, validation)`` for the final classifier.

    Parameters
    ----------
    clips : sea_tf.classify.features.ClipSet
    train_folds : list of int, optional
        Folds to train on (default: every fold except ``val_fold``).
    val_fold : int, optional
        Fold for early stopping. Without it, about ``val_fraction`` of the training clips is held
        out, grouped by source recording (``clips.sources``: UrbanSound8K ``fsID``) like the folds
        themselves, so slices of one recording never land on both sides; ``val_fraction`` 0 trains on
        everything for the configured number of epochs.
    val_fraction : float
        In [0, 0.5]. The hold-out is one split of ``StratifiedGroupKFold(round(1 / val_fraction))``
        (sklearn: whole groups, class shares kept as far as the groups allow).
    seed : int

    Returns
    -------
    train, validation : np.ndarray [shape=(n_clips,)], bool
    """
    folds = clips.folds
    if val_fold is not None and val_fold not in clips.fold_ids:
        raise ClassifyError(f"validation fold {val_fold} is not one of the dataset's folds {clips.fold_ids}")
    chosen = list(train_folds) if train_folds else [f for f in clips.fold_ids if f != val_fold]
    unknown = sorted(set(chosen) - set(clips.fold_ids))
    if unknown:
        raise ClassifyError(f"training folds {unknown} are not among the dataset's folds {clips.fold_ids}")
    train = np.isin(folds, chosen)
    if val_fold is not None:
        val = folds == val_fold
        return train & ~val, val
    if not 0 <= val_fraction <= 0.5:
        raise ClassifyError(f"split.val_fraction must lie in [0, 0.5], got {val_fraction}")
    val = np.zeros_like(train)
    if val_fraction > 0:
        val[np.flatnonzero(train)[_grouped_holdout(clips, train, val_fraction, seed)]] = True
    return train & ~val, val


def _grouped_holdout(clips: ClipSet, train: npt.NDArray[np.bool_], val_fraction: float,
                     seed: int) -> npt.NDArray[np.bool_]:
    """Boolean mask over the training clips: whole source recordings held out for early stopping."""
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.flatnonzero(train)
    labels = clips.labels[idx]
    sources = np.full(len(clips), -1) if clips.sources is None else np.asarray(clips.sources)
    groups = sources[idx].astype(np.int64)
    unknown = groups < 0
    groups[unknown] = -1 - np.arange(int(unknown.sum()))  # a clip of unknown source is its own group
    # sklearn refuses more splits than the largest class has members: on small data (8 clips per
    # class) the hold-out is one of fewer, larger splits.
    n_splits = min(max(2, int(round(1.0 / val_fraction))), int(np.bincount(labels).max()))
    if n_splits < 2 or len(np.unique(groups)) < n_splits:
        return np.zeros(len(idx), dtype=bool)
    with warnings.catch_warnings():
        # "The least populated class has only n members": expected for rare classes; handled below.
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, held = next(splitter.split(np.zeros(len(idx)), labels, groups))
    val = np.zeros(len(idx), dtype=bool)
    val[held] = True
    # A class whose every clip went to validation could never be learned: give its recordings back.
    for c in np.unique(labels):
        if not np.any(~val & (labels == c)):
            val[np.isin(groups, groups[labels == c])] = False
    return val


def train_final(features: FrameFeatures, embedder_card: dict, out_path: Path | str, *, mlp_cfg: dict | None = None,
                seed: int, train_folds: Sequence[int] | None = None, val_fold: int | None = None,
                val_fraction: float, features_cfg: dict | None = None, progress: bool) -> dict:
    """Train the final MLP on ``features`` and save ``out_path`` (``.keras``) with its card.

    Parameters
    ----------
    features : sea_tf.classify.features.FrameFeatures
    embedder_card : dict
        Card of the embedding model that produced ``features``.
    out_path : str or Path
        Destination ``<name>.keras``; the card goes to ``<name>.card.json``.
    mlp_cfg : dict, optional
        ``sea_tf.classify.mlp.DEFAULTS`` keys.
    seed : int
    train_folds, val_fold, val_fraction
        See :func:`final_split`.
    features_cfg : dict, optional
        ``hop_size`` and ``framing`` used for ``features`` (recorded in the card).
    progress : bool

    Returns
    -------
    dict
        The card written.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise ClassifyError(f"{out_path}: the classifier is saved in Keras format; give a path ending in .keras")
    clips = features.clips
    train_c, val_c = final_split(clips, train_folds=train_folds, val_fold=val_fold, val_fraction=val_fraction,
                                 seed=seed)
    train_f, val_f = train_c[features.frame_clip], val_c[features.frame_clip]
    y = features.y
    cfg = {**mlp.DEFAULTS, **(mlp_cfg or {})}
    in_data = set(y.tolist())
    missing = sorted(in_data - set(y[train_f].tolist()))
    if missing:
        raise ClassifyError(f"classes {[clips.classes[c] for c in missing]} have clips in the dataset but none in "
                            f"the training folds {sorted(set(clips.folds[train_c].tolist()))}; the classifier could "
                            "never predict them. Choose other --train-folds")
    absent = [clips.classes[c] for c in range(len(clips.classes)) if c not in in_data]
    if absent:
        warnings.warn(f"classes {absent} have no clips in the dataset; the classifier keeps their outputs but will "
                      "never predict them", SeaTFWarning, stacklevel=2)
    model, info = mlp.train_mlp(features.x[train_f], y[train_f], len(clips.classes), features.x[val_f], y[val_f],
                                cfg=cfg, seed=seed, progress=progress, desc="final epochs")
    val_acc = None
    if val_f.any():
        probs = clip_probabilities(mlp.predict_proba(model, features.x[val_f]), features.frame_clip[val_f],
                                   n_clips=len(clips))
        idx = np.flatnonzero(val_c & ~np.isnan(probs[:, 0]))
        val_acc = float(np.mean(probs[idx].argmax(1) == clips.labels[idx]))
    _save_keras_atomically(model, out_path)
    fcfg = features_cfg or {}
    card = {
        "name": out_path.name[: -len(".keras")],
        "kind": "classifier",
        "classes": list(clips.classes),
        "n_classes": len(clips.classes),
        "input": {"kind": "embedding", "shape": [None, features.embedding_size], "dtype": "float32",
                  "scaled_in_model": True},
        "output": {"kind": "probabilities", "shape": [None, len(clips.classes)]},
        "aggregation": AGGREGATION,
        # Named so that nobody copies it into a sidecar "scaler" (the device would scale twice).
        "input_standardization": {"in_model": True, "layer": "scaler",
                                  "mean": model.get_layer("scaler").mean.numpy().ravel().tolist(),
                                  "variance": model.get_layer("scaler").variance.numpy().ravel().tolist()},
        "architecture": {"hidden": list(cfg["hidden"]), "l2": cfg["l2"]},
        "params": int(model.count_params()),
        "embedding_model": embedder_card,
        "embedding_model_key": features.model_key,
        "embedding_size": features.embedding_size,
        "features": {"hop_size": fcfg.get("hop_size", 0.1), "framing": fcfg.get("framing", "centered"),
                     "frame_length_s": 1.0},
        "training": {"dataset": clips.kind, "train_folds": sorted(set(clips.folds[train_c].tolist())),
                     "validation": (f"fold {val_fold}" if val_fold is not None
                                    else f"{int(val_c.sum())} held-out clips (~{val_fraction:.0%}, whole source "
                                          "recordings, stratified by class)"),
                     "train_clips": int(train_c.sum()), "validation_clips": int(val_c.sum()),
                     "validation_accuracy": val_acc, "seed": seed,
                     "settings": {k: cfg[k] for k in ("learning_rate", "batch_size", "epochs", "patience")}, **info},
        "weights": {"source": "trained", "path": out_path.name, "sha256": cards.sha256_file(out_path)},
        "sea_tf_version": package_version(),
    }
    cards.write_card(out_path, card)
    return card


def load_classifier(path: Path | str, *, trust_model_code: bool | None = None) -> tuple[keras.Model, dict]:
    """Load a saved classifier and its card, without running code from the file.

    Parameters
    ----------
    path : str or Path
        ``<name>.keras`` (a Keras zip) beside ``<name>.card.json``.
    trust_model_code : bool, optional
        Also accept a Keras HDF5 classifier, whose legacy loader can run code stored in the file
        (None: ``$SEA_TF_TRUST_MODEL_CODE``); see :mod:`sea_tf.models.safe_load`.

    Returns
    -------
    model : keras.Model
        ``float32 [B, D]`` raw embeddings → ``[B, n_classes]`` probabilities.
    card : dict
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such classifier; train one with `sea-tf classify final`")
    card = cards.read_card(path)
    if card.get("kind") != "classifier":
        raise ModelError(f"{path}: its card says kind={card.get('kind')!r}, not a classifier")
    from sea_tf.models.safe_load import load_keras
    return load_keras(path, what="classifier", trust_model_code=trust_model_code), card


def classify_clip(model: keras.Model, frame_embeddings: npt.ArrayLike) -> np.ndarray:
    """Class probabilities ``[n_classes]`` of one clip: the mean of its frames' probabilities.

    Parameters
    ----------
    model : keras.Model
        From :func:`load_classifier`.
    frame_embeddings : np.ndarray [shape=(T, D)]
    """
    probs = mlp.predict_proba(model, frame_embeddings)
    return probs.mean(axis=0)


def _save_keras_atomically(model: keras.Model, path: Path) -> None:
    # Keras picks the format from the file name, so the temporary file must itself end in .keras
    # (sea_tf.atomic's temporary names end in .tmp); rename it into place from a private folder.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            model.save(staged)
            os.replace(staged, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}; choose a writable --out") from exc

