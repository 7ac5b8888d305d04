"""Distillation (docs/PROTOCOL.md §3.4): a student learns φ(teacher embedding) from its own audio window.

Read top to bottom: :mod:`pairs` (check shards ↔ targets ↔ reducer, split by source file) →
:mod:`pipeline` (tf.data batches) → :mod:`student` (build, warm start, training model) →
:mod:`pruning` / :mod:`strategy` (options) → :mod:`train` (the loop; :mod:`runstate` makes it
resumable) → :mod:`evaluate` (held-out MSE / R² / cosine, loss figure) → :mod:`qat` (option).

    from sea_tf import config
    from sea_tf.distill import distill
    report = distill(config.load("distill", "sea-64", shards=["shards/"], targets="targets-64/", out="runs/sea64"))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from sea_tf.distill.defaults import DEFAULTS

if TYPE_CHECKING:  # TensorFlow is imported when a run starts, not with the package
    from sea_tf.backend import keras


def distill(cfg: dict, *, log: Callable[[str], object] = print,
            callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Run or resume a distillation; see :func:`sea_tf.distill.train.distill`."""
    from sea_tf.distill.train import distill as _distill
    return _distill(cfg, log=log, callbacks=callbacks)


__all__ = ["DEFAULTS", "distill"]
