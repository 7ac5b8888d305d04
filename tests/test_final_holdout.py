"""`classify final`'s early-stopping hold-out keeps every source recording (fsID) on one side, like the folds."""
import numpy as np
import pytest

from sea_tf.classify.features import ClipSet
from sea_tf.classify.final import final_split
from sea_tf.errors import ClassifyError


def _clips(with_sources=True):
    """300 clips: 60 recordings of 5 slices each, 4 classes, a recording's slices in one fold."""
    rng = np.random.default_rng(2)
    sources = np.repeat(np.arange(1000, 1060), 5)
    labels = np.repeat(rng.integers(0, 4, size=60), 5)
    folds = np.repeat(np.arange(60) % 10 + 1, 5)
    names = [f"{s}-{c}-0-{i % 5}.wav" for i, (s, c) in enumerate(zip(sources, labels))]
    return ClipSet(names=names, paths=names, folds=folds, labels=labels, classes=["a", "b", "c", "d"],
                   fold_ids=list(range(1, 11)), sources=sources if with_sources else None)


def test_holdout_never_splits_a_recording():
    clips = _clips()
    train, val = final_split(clips, val_fraction=0.1, seed=3)
    assert not np.any(train & val) and np.all(train | val)
    assert not set(clips.sources[train]) & set(clips.sources[val])
    assert 0.05 <= val.mean() <= 0.17                                   # ~10 %, in whole recordings of 5
    assert set(clips.labels[train]) == set(clips.labels)
    again = final_split(clips, val_fraction=0.1, seed=3)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(final_split(clips, val_fraction=0.1, seed=4)[1], val)


def test_holdout_without_sources_is_per_clip_and_limits_are_checked():
    clips = _clips(with_sources=False)
    train, val = final_split(clips, val_fraction=0.2, seed=0)
    assert 0.15 <= val.mean() <= 0.25 and set(clips.labels[train]) == set(clips.labels)
    assert not final_split(clips, val_fraction=0.0, seed=0)[1].any()
    with pytest.raises(ClassifyError, match="val_fraction must lie in"):
        final_split(clips, val_fraction=0.9, seed=0)
    train, val = final_split(_clips(), val_fold=3, seed=0, val_fraction=0.1)
    assert np.array_equal(val, _clips().folds == 3) and not np.any(train & val)


def test_holdout_on_classes_smaller_than_the_number_of_splits():
    """The demo's size: 10 classes of 8 clips, one recording each; 1 / 0.1 = 10 splits is more than any
    class has, so the hold-out is one of 8 splits (sklearn would refuse 10) and still keeps every class."""
    labels = np.repeat(np.arange(10), 8)
    sources = np.arange(80) + 500
    folds = np.arange(80) % 10 + 1
    names = [f"{s}-{c}-0-0.wav" for s, c in zip(sources, labels)]
    clips = ClipSet(names=names, paths=names, folds=folds, labels=labels, classes=[str(c) for c in range(10)],
                    fold_ids=list(range(1, 11)), sources=sources)
    train, val = final_split(clips, val_fraction=0.1, seed=0)
    assert not np.any(train & val) and np.all(train | val)
    assert 0.05 <= val.mean() <= 0.2 and set(clips.labels[train]) == set(range(10))
