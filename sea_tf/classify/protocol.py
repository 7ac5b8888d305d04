"""Cross-validation splits of the UrbanSound8K / ESC-50 protocols (docs/PROTOCOL.md §4.1–4.2).

For test fold ``k`` the validation fold is the preceding one, cyclically (fold 10 validates when
fold 1 is tested in UrbanSound8K, fold 5 in ESC-50), and every other fold trains. Splits are made
over clips, so a clip's frames can never land in two splits.
"""
import dataclasses
import warnings
from pathlib import Path

import numpy as np

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
    train: tuple


def fold_split(folds, test_fold):
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
    folds = sorted(int(f) for f in folds)
    if len(folds) < 3:
        raise ClassifyError(f"the fold protocol needs at least 3 folds (test, validation, train); got {folds}")
    if test_fold not in folds:
        raise ClassifyError(f"test fold {test_fold} is not one of the dataset's folds {folds}")
    i = folds.index(test_fold)
    validation = folds[(i - 1) % len(folds)]
    train = tuple(f for f in folds if f not in (test_fold, validation))
    return FoldSplit(test=test_fold, validation=validation, train=train)


def all_splits(folds, test_folds=None):
    """One :class:`FoldSplit` per test fold (all folds by default)."""
    folds = sorted(int(f) for f in folds)
    return [fold_split(folds, k) for k in (test_folds or folds)]


def split_masks(clip_folds, split, augmented=None):
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
    clip_folds = np.asarray(clip_folds)
    train = np.isin(clip_folds, split.train)
    val = clip_folds == split.validation if split.validation is not None else np.zeros_like(train)
    test = clip_folds == split.test
    if augmented is not None:
        val, test = val & ~augmented, test & ~augmented
    return train, val, test


def is_augmented(names):
    """``bool [n_clips]``: clips whose file stem holds ``_``, the L3E convention for augmented
    variants (the original UrbanSound8K / ESC-50 names never do)."""
    return np.array(["_" in Path(name).stem for name in names], dtype=bool)


def check_folds(clip_folds, clip_labels, clip_names, folds, classes):
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
    clip_folds = np.asarray(clip_folds)
    clip_labels = np.asarray(clip_labels)
    counts = {int(f): int((clip_folds == f).sum()) for f in folds}
    empty = [f for f, n in counts.items() if n == 0]
    if empty:
        raise ClassifyError(
            f"fold(s) {empty} have no clips (clips per fold: {counts}); check the dataset's metadata "
            f"fold column, or that the audio of those folds was found")
    stray = sorted(set(np.unique(clip_folds).tolist()) - set(int(f) for f in folds))
    if stray:
        raise ClassifyError(f"clips carry fold ids {stray} outside the protocol's folds {list(folds)}; "
                            "fix the metadata")
    for split in all_splits(folds):
        train, _, test = split_masks(clip_folds, split)
        unseen = sorted(set(clip_labels[test].tolist()) - set(clip_labels[train].tolist()))
        if unseen:
            names = [clip_names[i] for i in np.flatnonzero(test & np.isin(clip_labels, unseen))]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            warnings.warn(
                f"test fold {split.test}: class(es) {[classes[c] for c in unseen]} never appear in its training "
                f"folds {list(split.train)}; these clips cannot be classified correctly: {shown}",
                SeaTFWarning, stacklevel=2)
