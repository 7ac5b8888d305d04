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
    "progress": True,
}
