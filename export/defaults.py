"""Settings of ``sea-tf export``: the packaged ``configs/export/defaults.yaml``; no heavy imports here."""
from sea_tf.presets import load_defaults

#: Every export mode, in the order the report lists them (see :mod:`export.convert`).
MODES = ("fp32", "dynamic", "fp16", "int8", "int16x8")

DEFAULTS = load_defaults("export")
