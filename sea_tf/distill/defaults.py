"""Defaults of ``sea-tf distill``: the packaged ``configs/distill/defaults.yaml`` (docs/PROTOCOL.md).

Every key there may be set from ``configs/distill/*.yaml`` or ``--set``; unknown keys are errors.
"""
from sea_tf.presets import load_defaults

DEFAULTS = load_defaults("distill")

#: Keys that may change between a run and its resumption (they do not change what is learnt).
RESUMABLE_CHANGES = ("progress", "out", "train.epochs", "train.time_budget_s", "evaluate.max_rows",
                     "evaluate.downstream", "data.cycle_length", "data.max_open_files", "qat.enabled", "qat.epochs",
                     "qat.learning_rate")
