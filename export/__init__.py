"""TFLite export: every quantization mode of a sea-tf model, with sidecars and a fidelity/cost report.

The entry point is :func:`export_model` (``sea-tf export``: the resolved ``export`` config in, the
report summary out). Modules, in the order the pipeline uses them:

``calibration``  real audio windows (files, directories, teacher shards) for int8 calibration and held-out checks
``placement``    whether a mode carries the front end inside the ``.tflite`` or the device computes it
``int8_body``    the network body made ready for full int8 (input-norm fold, adaptive rounding, ReLU ranges)
``convert``      TFLiteConverter per mode (fp32, dynamic, fp16, int8, int16x8), builtin ops only, each graph saved once
``qat``          the QAT student (``student-qat.h5``): its float student, its body converted with learnt ranges
``identity``     names from the model file, the sidecar's ``source``, no overwrite of another model's file
``metadata``     the ``<name>.<mode>.json`` sidecar (model card, tensors, quantization, front end, sha256)
``fidelity``     size, cosine / max error vs Keras and latency, run through ``device.runner`` (LiteRT)
``report``       ``<name>.report.json`` + ``.md`` + ``.png`` (one per exported model)
``pipeline``     :func:`export_model`, the whole flow from the resolved config (what ``sea-tf export`` calls),
                 and :func:`export_file` from explicit arguments

Example
-------
>>> from export import export_model                                          # doctest: +SKIP
>>> from sea_tf import config                                               # doctest: +SKIP
>>> summary = export_model(config.load("export", model="sea-64", out="out/", modes=["fp32", "int8"],
...                                    calibration={"sources": ["audio/"]}))  # doctest: +SKIP
>>> from export import export_file                                           # doctest: +SKIP
>>> summary = export_file("sea-64", "out/", modes="fp32,int8", calibration="audio/", progress=False)  # doctest: +SKIP
"""
import importlib
from typing import Any

from export.defaults import DEFAULTS, MODES

__all__ = ["export_model", "MODES", "DEFAULTS", "export_file", "convert", "parse_modes", "read_sidecar"]
_LAZY = {"export_model": "export.pipeline", "export_file": "export.pipeline", "convert": "export.convert", "parse_modes": "export.convert",
         "read_sidecar": "export.metadata"}


def __getattr__(name: str) -> Any:
    # TensorFlow is imported only when a converter function is used, so `sea-tf --help` stays fast.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
