"""Defaults of ``sea-tf distill``: the packaged ``configs/distill/defaults.yaml`` (docs/PROTOCOL.md).

Every key there may be set from ``configs/distill/*.yaml`` or ``--set``; unknown keys are errors.
"""
from sea_tf.presets import load_defaults

DEFAULTS = load_defaults("distill")

#: Keys that may change between a run and its resumption (they do not change what is learnt).
RESUMABLE_CHANGES = ("progress", "out", "train.epochs", "train.time_budget_s", "evaluate.max_rows",
                     "evaluate.downstream", "data.cycle_length", "data.max_open_files", "qat.enabled", "qat.epochs",
                     "qat.learning_rate")

#: Keys added after runs were already being made, with the value the code used before the key existed.
#: A run directory whose saved config lacks one resumes when the new config asks for exactly that value
#: (a run of an older sea-tf resumes with today's defaults where they agree with what it did), and is
#: refused when it asks for another (``data.shuffle: iid`` would mix two input orders in one training).
LEGACY_VALUES = {"student.head": "published", "data.shuffle": "blocks"}

