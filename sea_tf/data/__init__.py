"""Datasets: the generated demo dataset and the UrbanSound8K / ESC-50 / SONYC-UST loaders.

The entry points are :func:`make_demo_dataset` (``sea-tf data make-demo``) and :func:`check_dataset`
(``sea-tf data check ROOT``), each taking its resolved config (``configs/data/defaults.yaml``).

- :mod:`sea_tf.data.demo_dataset` writes the embedded demo dataset (UrbanSound8K layout +
  ``upstream/`` + the SONYC-UST layout in ``ust/``).
- :mod:`sea_tf.data.us8k` and :mod:`sea_tf.data.esc50` read fold-organised, single-label datasets
  into one interface, :class:`sea_tf.data.base.LabelledDataset`; :mod:`sea_tf.data.ust` reads the
  multi-label, split-organised SONYC-UST. :func:`load_labelled_dataset` picks the right one.
- :mod:`sea_tf.data.check` validates a root: layout, missing or unreadable audio, malformed rows.
"""
from pathlib import Path

from sea_tf.data.base import Clip, LabelledDataset
from sea_tf.data.check import check_dataset
from sea_tf.data.demo_dataset import make_demo_dataset
from sea_tf.data.esc50 import ESC50
from sea_tf.data.us8k import US8K
from sea_tf.data.ust import UST
from sea_tf.errors import DataError

LOADERS: dict[str, type[US8K] | type[ESC50] | type[UST]] = {"us8k": US8K, "esc50": ESC50, "ust": UST}

__all__ = ["make_demo_dataset", "check_dataset",
           "Clip", "LabelledDataset", "US8K", "ESC50", "UST", "LOADERS", "detect_kind", "load_labelled_dataset"]


def detect_kind(root: Path | str) -> str:
    """``"us8k"``, ``"esc50"`` or ``"ust"`` from the layout under ``root``.

    Raises
    ------
    DataError
        None of ``metadata/UrbanSound8K.csv``, ``meta/esc50.csv`` / ``audio/*-*-*-*.wav`` or
        ``annotations.csv`` + ``dcase-ust-taxonomy.yaml`` is there.
    """
    root = Path(root)
    if (root / "metadata" / "UrbanSound8K.csv").is_file() or (root / "audio" / "fold1").is_dir():
        return "us8k"
    if (root / "annotations.csv").is_file() and (root / "dcase-ust-taxonomy.yaml").is_file():
        return "ust"
    if (root / "meta" / "esc50.csv").is_file() or any((root / "audio").glob("*-*-*-*.wav")):
        return "esc50"
    raise DataError(f"{root}: not an UrbanSound8K root (metadata/UrbanSound8K.csv), an ESC-50 root "
                    "(meta/esc50.csv or audio/{fold}-{id}-{take}-{target}.wav) nor a SONYC-UST root "
                    "(annotations.csv + dcase-ust-taxonomy.yaml); pass the folder holding audio/, "
                    "or generate the demo dataset with `sea-tf data make-demo --out DIR`")


def load_labelled_dataset(root: Path | str, *, kind: str) -> LabelledDataset | UST:
    """Load a labelled, fold-organised dataset.

    Parameters
    ----------
    root : str or Path
        Dataset root (the folder holding ``audio/``).
    kind : {"auto", "us8k", "esc50", "ust"}
        Layout; ``"auto"`` detects it with :func:`detect_kind`.

    Returns
    -------
    LabelledDataset or UST
        A :class:`US8K` or :class:`ESC50` (fold-organised, one label per clip), or a :class:`UST`
        (splits, multi-label coarse targets).

    Examples
    --------
    >>> ds = load_labelled_dataset("demo_out/data", kind="auto")   # doctest: +SKIP
    >>> ds.kind, ds.folds, ds.classes[:2]             # doctest: +SKIP
    ('us8k', [1, 2, ..., 10], ['air_conditioner', 'car_horn'])
    """
    root = Path(root)
    if kind == "auto":
        if not root.is_dir():
            raise DataError(f"{root}: dataset root not found (or not a directory); pass the folder holding audio/")
        kind = detect_kind(root)
    if kind not in LOADERS:
        raise DataError(f"unknown dataset kind {kind!r}; use one of auto, {', '.join(LOADERS)}")
    return LOADERS[kind](root)
