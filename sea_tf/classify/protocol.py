"""Cross-validation splits of the UrbanSound8K / ESC-50 protocols (docs/PROTOCOL.md §4.1–4.2).

For test fold ``k`` the validation fold is the preceding one, cyclically (fold 10 validates when
fold 1 is tested in UrbanSound8K, fold 5 in ESC-50), and every other fold trains. Splits are made
over clips, so a clip's frames can never land in two splits.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from sea_tf.errors import ClassifyError, SeaTFWarning


@dataclasses.dataclass(frozen=True)
class FoldSplit:
    """Which folds train, validate and test in one run of the protocol.

    Attributes
    ----------
    test : int
        The held-out fold.
    validation : int or None
        The fold used for early stopping (``None``: no validation fold).
    train : tuple of int
        The remaining folds.
    """
    test: int
    validation: int | None
    train: tuple[int, ...]


def fold_split(folds: Iterable[int], test_fold: int) -> FoldSplit:
    """The split for ``test_fold``: validation = the previous fold (cyclic), train = the rest.

    Parameters
    ----------
    folds : sequence of int
        All fold ids of the dataset (e.g. ``1..10``), in protocol order.
    test_fold : int
        The fold to test on.

    Returns
    -------
    FoldSplit

    Examples
    --------
    >>> fold_split(range(1, 11), 1)
    FoldSplit(test=1, validation=10, train=(2, 3, 4, 5, 6, 7, 8, 9))
    """
    ordered = sorted(int(f) for f in folds)
    if len(ordered) < 3:
        raise ClassifyError(f"the fold protocol needs at least 3 folds (test, validation, train); got {ordered}")
    if test_fold not in ordered:
        raise ClassifyError(f"test fold {test_fold} is not one of the dataset's folds {ordered}")
    i = ordered.index(test_fold)
    validation = ordered[(i - 1) % len(ordered)]
    train = tuple(f for f in ordered if f not in (test_fold, validation))
    return FoldSplit(test=test_fold, validation=validation, train=train)


def all_splits(folds: Iterable[int], *, test_folds: Sequence[int] | None = None) -> list[FoldSplit]:
    """One :class:`FoldSplit` per test fold (all folds by default)."""
    ordered = sorted(int(f) for f in folds)
    return [fold_split(ordered, k) for k in (test_folds or ordered)]


def split_masks(clip_folds: npt.ArrayLike, split: FoldSplit, *,
                augmented: npt.NDArray[np.bool_] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean clip masks ``(train, validation, test)`` for ``split``.

    Parameters
    ----------
    clip_folds : np.ndarray [shape=(n_clips,)], int
        Fold of every clip.
    split : FoldSplit
    augmented : np.ndarray [shape=(n_clips,)], bool, optional
        Augmented variants of clips (see :func:`is_augmented`): they may train but never
        validate or test (docs/PROTOCOL.md §4.1).

    Returns
    -------
    tuple of np.ndarray [shape=(n_clips,)], bool
        Disjoint masks; the validation mask is all False when ``split.validation`` is None.
    """
    folds = np.asarray(clip_folds)
    train = np.isin(folds, split.train)
    val = folds == split.validation if split.validation is not None else np.zeros_like(train)
    test = folds == split.test
    if augmented is not None:
        val, test = val & ~augmented, test & ~augmented
    return train, val, test


def is_augmented(names: Iterable[str]) -> npt.NDArray[np.bool_]:
    """``bool [n_clips]``: clips whose file stem holds ``_``, the L3E convention for augmented
    variants (the original UrbanSound8K / ESC-50 names never do)."""
    return np.array(["_" in Path(name).stem for name in names], dtype=bool)


def check_folds(clip_folds: npt.ArrayLike, clip_labels: npt.ArrayLike, clip_names: Sequence[str], *,
                folds: Sequence[int], classes: Sequence[str]) -> None:
    """Fail on an empty fold; warn about classes a split tests but never trains.

    Parameters
    ----------
    clip_folds, clip_labels : np.ndarray [shape=(n_clips,)], int
    clip_names : sequence of str
        Clip names for the messages.
    folds : sequence of int
        The folds the protocol expects.
    classes : sequence of str
        Class names indexed by label.

    Raises
    ------
    ClassifyError
        When a fold has no clips.
    """
    fold_of = np.asarray(clip_folds)
    label_of = np.asarray(clip_labels)
    counts = {int(f): int((fold_of == f).sum()) for f in folds}
    empty = [f for f, n in counts.items() if n == 0]
    if empty:
        raise ClassifyError(
            f"fold(s) {empty} have no clips (clips per fold: {counts}); check the dataset's metadata "
            f"fold column, or that the audio of those folds was found")
    stray = sorted(set(np.unique(fold_of).tolist()) - set(int(f) for f in folds))
    if stray:
        raise ClassifyError(f"clips carry fold ids {stray} outside the protocol's folds {list(folds)}; "
                            "fix the metadata")
    for split in all_splits(folds):
        train, _, test = split_masks(fold_of, split)
        unseen = sorted(set(label_of[test].tolist()) - set(label_of[train].tolist()))
        if unseen:
            names = [clip_names[int(i)] for i in np.flatnonzero(test & np.isin(label_of, unseen))]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            warnings.warn(
                f"test fold {split.test}: class(es) {[classes[c] for c in unseen]} never appear in its training "
                f"folds {list(split.train)}; these clips cannot be classified correctly: {shown}",
                SeaTFWarning, stacklevel=2)
