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

One graph, several modes: :class:`SavedGraphs` saves each Keras graph once as a slim SavedModel
and converts it from there in every mode, with the same bytes as ``from_keras_model`` (which saves
and reloads the whole Keras model at every conversion; see the class).
"""
import re
import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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


class SavedGraphs:
    """Each Keras graph saved once as a slim SavedModel, converted from there in every mode.

    ``TFLiteConverter.from_keras_model(m).convert()`` saves ``m`` with every Keras layer's traced
    functions (``tf.saved_model.save``), loads that back, converts it and deletes it, at every
    conversion: on the tiny test student 3.5 s of 3.7 s go to that save and load, 0.2 s to the
    conversion. Here a graph is saved once as its inference function alone (:func:`_save_serving`,
    0.2 s), and each mode converts that with ``from_saved_model``. The flatbuffer is byte for byte
    the one ``from_keras_model`` writes once its conversion metadata names the Keras model as the
    origin again (see :func:`_keras_origin`); ``tests/test_export.py`` compares every mode with a
    fresh ``from_keras_model`` conversion.

    A graph that cannot be saved this way (not one input, or a capture the slim save cannot track)
    is converted with ``from_keras_model``, as before. Use as a context manager: the folder, in the
    system's temporary directory (never beside the outputs), is removed on leaving, on error too.
    Graphs are known by identity, so convert the same Keras object in each mode.

    Attributes
    ----------
    root : Path or None
        The temporary folder while inside the ``with`` block.
    """

    def __init__(self) -> None:
        self.root: Path | None = None
        self._folders: dict[int, tuple[Any, str | None]] = {}   # id -> (the graph, kept alive; its SavedModel)

    def __enter__(self) -> "SavedGraphs":
        self.root = Path(tempfile.mkdtemp(prefix="sea-tf-savedmodel-"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._folders.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def converter(self, keras_model: Any) -> Any:
        """An unconfigured :class:`tf.lite.TFLiteConverter` of ``keras_model`` (saved on its first use)."""
        if self.root is None:
            raise RuntimeError("SavedGraphs.converter called outside its `with` block")
        key = id(keras_model)
        if key not in self._folders:
            folder: str | None = str(self.root / f"graph-{len(self._folders)}")
            try:
                _save_serving(keras_model, str(folder))
            except Exception:  # noqa: BLE001 - any graph the slim save cannot take converts as it always did
                shutil.rmtree(str(folder), ignore_errors=True)
                folder = None
            self._folders[key] = (keras_model, folder)
        saved = self._folders[key][1]
        if saved is None:
            return tf.lite.TFLiteConverter.from_keras_model(keras_model)
        return tf.lite.TFLiteConverter.from_saved_model(saved)


def _save_serving(keras_model: Any, folder: str) -> None:
    """Save ``keras_model``'s inference function alone (its variables, no Keras layer functions) to ``folder``.

    The serving signature is traced as tf-keras traces the one ``from_keras_model`` converts
    (``saving_utils.trace_model_call``: ``training=False``, the input named as the model's, the
    outputs a dict keyed by ``output_names``), so the converter sees the same graph.
    """
    if len(keras_model.inputs) != 1:
        raise ValueError("the slim save takes single-input models")
    spec = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in keras_model.inputs]

    @tf.function(input_signature=spec)
    def serve(inputs: Any) -> dict[str, Any]:
        outputs = tf.nest.flatten(keras_model(inputs, training=False))
        return dict(zip(keras_model.output_names, outputs))

    holder = tf.Module()
    holder.graph_variables = list(keras_model.variables)     # what the function captures, for the checkpoint
    with tf_logs.quiet_stderr():
        tf.saved_model.save(holder, folder, signatures={"serving_default": serve.get_concrete_function()},
                            options=tf.saved_model.SaveOptions(save_debug_info=True))


def _keras_origin(tflite_bytes: bytes) -> bytes:
    """``tflite_bytes`` with its conversion metadata's model type ``KERAS_MODEL``, as ``from_keras_model`` writes it.

    ``from_saved_model`` records ``TF_SAVED_MODEL``; the graph is the Keras model's inference function,
    as ``from_keras_model`` converts it, so the Keras model is the true origin. One int32 of the
    ``CONVERSION_METADATA`` buffer is rewritten in place; a file without that entry, or with another
    type, comes back unchanged (and the byte comparison in the tests would say so).
    """
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as conversion_schema
    from tensorflow.lite.python import schema_py_generated as schema

    buf = bytearray(tflite_bytes)
    model = schema.Model.GetRootAs(buf, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        if entry.Name() != b"CONVERSION_METADATA" or not buffer.DataLength():
            continue
        # The buffer's bytes are a flatbuffer of their own (conversion_metadata.fbs), stored inline: the
        # table's field 0 (vtable slot 4) is the data vector, whose start is that flatbuffer's offset 0.
        start = buffer._tab.Vector(buffer._tab.Offset(4))
        environment = conversion_schema.ConversionMetadata.GetRootAs(buf, start).Environment()
        if environment is None or environment.ModelType() != conversion_schema.ModelType.TF_SAVED_MODEL:
            break
        slot = environment._tab.Offset(8)      # Environment.modelType (int32), where ModelType() reads it
        struct.pack_into("<i", buf, environment._tab.Pos + slot, conversion_schema.ModelType.KERAS_MODEL)
        return bytes(buf)
    return tflite_bytes


def make_converter(keras_model: Any, mode: str, *, representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
                   io: str = "int8", saved: SavedGraphs | None = None) -> Any:
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
    saved : SavedGraphs, optional
        Convert from the graph's SavedModel there (``from_saved_model``); without it,
        ``from_keras_model``.

    Returns
    -------
    tf.lite.TFLiteConverter
    """
    if mode not in MODES:
        raise ExportError(f"unknown export mode {mode!r}; choose from {', '.join(MODES)}")
    if io not in IO_TYPES:
        raise ExportError(f"int8 input/output type must be one of {IO_TYPES}; got {io!r}")
    converter = (tf.lite.TFLiteConverter.from_keras_model(keras_model) if saved is None
                 else saved.converter(keras_model))
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
            io: str = "int8", name: str = "model", saved: SavedGraphs | None = None) -> bytes:
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
    saved : SavedGraphs, optional
        Where ``keras_model`` is saved once for all its modes; the bytes are the same.

    Returns
    -------
    bytes
        The ``.tflite`` flatbuffer.
    """
    converter = make_converter(keras_model, mode, representative=representative, io=io, saved=saved)
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
    if saved is not None:
        data = _keras_origin(data)
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
