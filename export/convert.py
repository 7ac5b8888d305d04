"""Keras → ``.tflite`` bytes with the TFLite converter, one quantization mode at a time.

Modes
-----
``fp32``
    No quantization.
``dynamic``
    Dynamic-range quantization: int8 weights, float activations (quantized on the fly by the
    hybrid kernels).
``fp16``
    float16 weights, float32 compute.
``int8``
    Full-integer: int8 weights and activations, calibrated on a representative dataset; the
    input/output tensors are int8 (``io="int8"``) or float32 (``io="float"``, a QUANTIZE /
    DEQUANTIZE pair at each end).
``int16x8``
    16-bit activations, 8-bit weights (``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``),
    float32 input/output.

Only builtin operators are allowed (no ``SELECT_TF_OPS``, no custom ops), so every file runs on a
plain LiteRT interpreter; :func:`check_builtin_ops` verifies the flatbuffer after conversion.
"""
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from sea_tf import tf_logs
from sea_tf.backend import tf
from sea_tf.errors import ExportError

from export.defaults import MODES
#: Modes that need a representative dataset.
CALIBRATED_MODES = ("int8", "int16x8")
IO_TYPES = ("int8", "float")


def parse_modes(modes: str | Iterable[str] | None) -> list[str]:
    """Validate a mode list.

    Parameters
    ----------
    modes : str or list of str
        ``"fp32,int8"`` or ``["fp32", "int8"]``.

    Returns
    -------
    list of str
        Unique modes in the order given.
    """
    if isinstance(modes, str):
        modes = [m for m in modes.split(",") if m.strip()]
    out: list[str] = []
    for given in modes or []:
        mode = str(given).strip()
        if mode not in MODES:
            raise ExportError(f"unknown export mode {mode!r}; choose from {', '.join(MODES)} "
                              "(e.g. --modes fp32,int8)")
        if mode not in out:
            out.append(mode)
    if not out:
        raise ExportError(f"no export mode given; pass --modes with some of {', '.join(MODES)}")
    return out


def make_converter(keras_model: Any, mode: str, *, representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
                   io: str = "int8") -> Any:
    """A configured :class:`tf.lite.TFLiteConverter` for ``mode``.

    Parameters
    ----------
    keras_model : keras.Model
        Single input, single output.
    mode : str
        One of :data:`MODES`.
    representative : callable, optional
        Required for :data:`CALIBRATED_MODES`: a zero-argument callable yielding
        ``[np.ndarray [shape=(1, *input_shape)]]`` lists (the TFLite representative dataset).
    io : {"int8", "float"}
        Input/output dtype of ``int8`` models.

    Returns
    -------
    tf.lite.TFLiteConverter
    """
    if mode not in MODES:
        raise ExportError(f"unknown export mode {mode!r}; choose from {', '.join(MODES)}")
    if io not in IO_TYPES:
        raise ExportError(f"int8 input/output type must be one of {IO_TYPES}; got {io!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "fp32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in CALIBRATED_MODES:
        if representative is None:
            raise ExportError(f"mode {mode} needs calibration audio; pass --calibration AUDIO_OR_SHARDS")
        converter.representative_dataset = representative
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io == "int8":
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return converter


def convert(keras_model: Any, mode: str, *, representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
            io: str = "int8", name: str = "model") -> bytes:
    """Convert ``keras_model`` in ``mode`` and check the result uses builtin operators only.

    Parameters
    ----------
    keras_model : keras.Model
    mode : str
        One of :data:`MODES`.
    representative : callable, optional
        See :func:`make_converter`.
    io : {"int8", "float"}
        Input/output dtype of ``int8`` models.
    name : str
        How to name the model in errors.

    Returns
    -------
    bytes
        The ``.tflite`` flatbuffer.
    """
    converter = make_converter(keras_model, mode, representative=representative, io=io)
    try:
        with warnings.catch_warnings():
            # "Statistics for quantized inputs were expected": the converter's own calibration supplies them.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with tf_logs.quiet_stderr():  # the calibrator prints its settings from C++ ("fully_quantize: 0, ...")
                data = converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises many unrelated types
        raise ExportError(f"{name}: TFLite conversion in mode {mode} failed ({_first_error(exc)}); the model must "
                          "convert with builtin operators only - export another mode or replace the layers "
                          "named") from exc
    check_builtin_ops(data, where=f"{name} ({mode})")
    return data


def _first_error(exc: BaseException) -> str:
    # MLIR messages carry pages of call-site locations; keep the "error: 'tf.X' op ..." part.
    text = str(exc)
    match = re.search(r"error: ([^\n]*)", text)
    line = match.group(1) if match else (text.strip().splitlines() or [type(exc).__name__])[0]
    return line[:300]


def operator_names(tflite_bytes: bytes) -> list[str]:
    """Names of the operator codes a ``.tflite`` flatbuffer uses (custom ops as ``custom:<code>``)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    by_code = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names: list[str] = []
    for code in model.operatorCodes:
        # Codes above 127 live in builtinCode only; older files use deprecatedBuiltinCode.
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
            names.append(f"custom:{custom}")
        else:
            names.append(by_code.get(builtin, f"builtin:{builtin}"))
    return names


def check_builtin_ops(tflite_bytes: bytes, *, where: str = "model") -> list[str]:
    """Raise :class:`ExportError` when the flatbuffer holds custom or ``SELECT_TF_OPS`` (Flex) operators.

    Returns
    -------
    list of str
        The builtin operator names, sorted.
    """
    try:
        names = operator_names(tflite_bytes)
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise ExportError(f"{where}: the converter produced an unreadable flatbuffer ({exc}); "
                          "report this with the model") from exc
    bad = sorted({n for n in names if n.startswith("custom:")})
    if bad:
        flex = any(n.startswith("custom:Flex") for n in bad)
        raise ExportError(f"{where}: the converted model needs non-builtin operators {', '.join(bad)}"
                          f"{' (SELECT_TF_OPS)' if flex else ''}; a plain LiteRT interpreter cannot run it. "
                          "Replace the layers that need them or export another mode")
    return sorted(set(names))
