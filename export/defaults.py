"""Settings of ``sea-tf export`` (schema for ``configs/export/*.yaml``); no heavy imports here."""

#: Every export mode, in the order the report lists them (see :mod:`export.convert`).
MODES = ("fp32", "dynamic", "fp16", "int8", "int16x8")

DEFAULTS = {
    "model": None,
    "out": "export_out",
    "name": None,
    "modes": list(MODES),
    "placement": "auto",
    "dft": "rfft",
    "int8_io": "int8",
    "classifier": None,
    "classifier_modes": None,   # None: the same modes as the embedding model
    "calibration": {"sources": [], "windows": 300, "hop_size": 0.5, "seed": 0},
    "held_out": {"sources": [], "windows": 200, "hop_size": 0.5, "seed": 1},
    "latency": {"runs": 50, "warmup": 5, "threads": 1},
    # How the network body is prepared for full-int8 conversion (export/int8_body.py): fold the
    # input batch norm into the first conv, adaptive rounding of that conv's int8 kernel, and
    # percentile ranges for the hidden ReLU outputs (None: the converter's min/max).
    "int8_body": {"fold_input_norm": True, "first_conv_rounding": "adaptive", "activation_percentile": 99.999},
    "progress": True,
}
