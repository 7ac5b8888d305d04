"""The sidecar JSON beside every ``.tflite`` (docs/ARCHITECTURE.md, "Exported artifacts").

``OUT/<name>.<mode>.json``::

    {"format": "sea-tf-export/1", "model_card": {...}, "mode": "int8",
     "frontend_in_model": false, "frontend": {...front-end spec...},
     "input":  {"kind": "raw_audio"|"frontend_features"|"embedding", "name", "shape", "dtype",
                "quantization": {"scale", "zero_point"}},
     "output": {"kind": "embedding"|"probabilities", ...same...},
     "sha256": "<of the .tflite>", "size_bytes": int, "operators": [...builtin op names...],
     "source": {"path", "name", "sha256"}  (the model file it was converted from; null path/sha256
                for a preset built in memory: see export/identity.py),
     "classes": [...]  (classifiers only), "calibration": {...} (calibrated modes), "sea_tf_version"}

``frontend`` is always the model card's front-end spec; ``frontend_in_model`` says whether the
``.tflite`` computes it (input = raw audio at ``frontend.sr``) or the device must
(input = the dB image ``[1, F, T, 1]``, computed with ``device.frontends.compute_frontend``).
Quantization parameters are ``null`` for float tensors. The device harness
(``device/runner.py``) reads only this file and the ``.tflite``.
"""
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sea_tf import atomic
from sea_tf.errors import ExportError

FORMAT = "sea-tf-export/1"
INPUT_KINDS = ("raw_audio", "frontend_features", "embedding")
REQUIRED_KEYS = ("model_card", "mode", "frontend_in_model", "frontend", "input", "output", "sha256")


def artifact_stem(name: str, mode: str) -> str:
    """``<name>.<mode>``, with characters that do not belong in a file name replaced by ``_``."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name)).strip("_") or "model"
    return f"{safe}.{mode}"


def sidecar_path(tflite_path: Path | str) -> Path:
    """``X.json`` beside ``X.tflite``."""
    return Path(tflite_path).with_suffix(".json")


def tensor_entry(details: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """One ``input`` / ``output`` entry from a LiteRT tensor-details dict.

    Parameters
    ----------
    details : dict
        ``interpreter.get_input_details()[0]`` (or output).
    kind : str
        What the tensor holds (``raw_audio``, ``frontend_features``, ``embedding``, ``probabilities``).
    """
    scale, zero = details.get("quantization", (0.0, 0))
    quantized = bool(scale) and not np.issubdtype(np.dtype(details["dtype"]), np.floating)
    return {"kind": kind, "name": str(details["name"]), "shape": [int(s) for s in details["shape"]],
            "dtype": np.dtype(details["dtype"]).name,
            "quantization": {"scale": float(scale) if quantized else None,
                             "zero_point": int(zero) if quantized else None}}


def tensor_details(tflite_bytes: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input details, output details) of a flatbuffer, read with the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=bytes(tflite_bytes), num_threads=1)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ExportError(f"the converted model has {len(inputs)} inputs and {len(outputs)} outputs; sea-tf "
                          "artifacts take one tensor and return one")
    return inputs[0], outputs[0]


def build_sidecar(tflite_bytes: bytes, model_card: dict[str, Any], mode: str, frontend_in_model: bool,
                  frontend: dict[str, Any] | None, input_kind: str, output_kind: str, *,
                  operators: Iterable[str] | None = None, classes: Iterable[str] | None = None,
                  calibration: dict[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
                  source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar dict for one converted model.

    Parameters
    ----------
    tflite_bytes : bytes
        The ``.tflite`` flatbuffer (hashed and inspected for its tensors).
    model_card : dict
        Card of the Keras model it was converted from.
    mode : str
    frontend_in_model : bool
    frontend : dict or None
        The card's front-end spec (None for classifiers).
    input_kind : {"raw_audio", "frontend_features", "embedding"}
    output_kind : {"embedding", "probabilities"}
    operators : list of str, optional
    classes : list of str, optional
        Class names (classifiers).
    calibration : dict, optional
        How the calibration set was drawn.
    extra : dict, optional
        More keys (never one of the contract keys).
    source : dict, optional
        ``{"path", "name", "sha256"}`` of the model file converted (:func:`export.identity.source_of`).
    """
    if input_kind not in INPUT_KINDS:
        raise ExportError(f"unknown input kind {input_kind!r}; known: {', '.join(INPUT_KINDS)}")
    inp, out = tensor_details(tflite_bytes)
    meta: dict[str, Any] = {"format": FORMAT, "model_card": model_card, "mode": mode,
            "frontend_in_model": bool(frontend_in_model), "frontend": frontend,
            "input": tensor_entry(inp, input_kind), "output": tensor_entry(out, output_kind),
            "sha256": hashlib.sha256(tflite_bytes).hexdigest(), "size_bytes": len(tflite_bytes),
            "operators": list(operators or [])}
    if classes is not None:
        meta["classes"] = list(classes)
    if calibration is not None:
        meta["calibration"] = calibration
    if source is not None:
        meta["source"] = dict(source)
    for key, value in (extra or {}).items():
        if key in meta:
            raise ExportError(f"sidecar key {key!r} is reserved")
        meta[key] = value
    from sea_tf import package_version
    meta["sea_tf_version"] = package_version()
    return meta


def write_artifact(out_dir: Path | str, stem: str, tflite_bytes: bytes, meta: dict[str, Any]) -> Path:
    """Write ``out_dir/<stem>.tflite`` and its sidecar, each atomically; returns the ``.tflite`` path.

    The ``.tflite`` is renamed into place first and the sidecar second, so a reader that finds a
    sidecar always finds the whole model it describes (the sha256 ties them together).
    """
    out_dir = Path(out_dir)
    path = out_dir / f"{stem}.tflite"
    atomic.write_bytes(path, bytes(tflite_bytes))
    atomic.write_json(sidecar_path(path), meta)
    return path


def read_sidecar(tflite_path: Path | str, *, verify: bool = True) -> dict[str, Any]:
    """Read and check the sidecar of ``tflite_path``.

    Parameters
    ----------
    tflite_path : str or Path
    verify : bool
        Check the ``.tflite``'s sha256 against the sidecar.

    Returns
    -------
    dict
    """
    tflite_path = Path(tflite_path)
    path = sidecar_path(tflite_path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{path}: no sidecar beside {tflite_path.name}; re-run `sea-tf export`") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: unreadable sidecar ({exc}); re-run `sea-tf export`") from exc
    missing = [k for k in REQUIRED_KEYS if k not in meta] if isinstance(meta, dict) else list(REQUIRED_KEYS)
    if missing:
        raise ExportError(f"{path}: sidecar lacks {', '.join(missing)}; it was not written by `sea-tf export`")
    if verify:
        digest = hashlib.sha256(tflite_path.read_bytes()).hexdigest() if tflite_path.is_file() else None
        if digest != meta["sha256"]:
            raise ExportError(f"{tflite_path}: missing or its sha256 does not match {path.name}; the two files come "
                              "from different exports - re-run `sea-tf export`")
    return meta
