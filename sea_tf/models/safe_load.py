"""Loading Keras files that users are sent: nothing in the file may run code.

A Keras model file can carry Python: a ``Lambda`` layer stores its function's bytecode, and a
config may name any importable module's function or class (tf_keras imports ``module`` and takes
``name`` from it). So every user-supplied Keras file is loaded like this:

- a ``.keras`` path must be a Keras zip. tf_keras sends any other file named ``.keras`` (an HDF5
  model renamed, say) to its legacy loader, which rebuilds a ``Lambda`` from its bytecode and runs
  it, so such a file is refused, whatever the trust setting;
- the zip's ``config.json`` is read as JSON first (nothing runs) and refused when it holds a
  ``Lambda`` layer or names anything but Keras built-ins and sea-tf's own layers
  (:func:`custom_objects`); only then is it loaded, with ``safe_mode=True``;
- a Keras HDF5 *model* file (``model.save("x.h5")``) goes through the legacy loader, which has no
  safe mode worth the name, so it is refused unless the user trusts its author:
  ``SEA_TF_TRUST_MODEL_CODE=1`` in the environment (what a ``--trust-model-code`` flag sets), or
  ``trust_model_code=True`` in Python. (Published openl3/edgel3 ``.h5`` files are not affected:
  sea-tf reads their weights itself with h5py, :mod:`sea_tf.models.h5_weights`, and runs nothing
  from them.)
"""
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sea_tf.errors import ModelError

#: Environment variable that allows Keras HDF5 model files (``1``).
TRUST_ENV = "SEA_TF_TRUST_MODEL_CODE"
#: The hint a refused HDF5 model ends with: every subcommand has ``--trust-model-code``
#: (sea_tf.cli.common), which sets the environment variable for the process.
TRUST_HINT = (f"only for a file from a source you trust, allow it with --trust-model-code "
              f"(or {TRUST_ENV}=1 in the environment)")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_MODULES = ("keras", "tf_keras")


def custom_objects() -> dict[str, type]:
    """sea-tf's own Keras classes: the only non-Keras names a model file may use."""
    from sea_tf.classify.autopool import AutoPool1D
    from sea_tf.models.frontends import AudioFrontend
    return {"AudioFrontend": AudioFrontend, "AutoPool1D": AutoPool1D}


def trusted(trust_model_code: bool | None = None) -> bool:
    """Whether Keras HDF5 model files may be loaded: the argument, else ``$SEA_TF_TRUST_MODEL_CODE``."""
    if trust_model_code is not None:
        return bool(trust_model_code)
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def file_kind(path: str | Path) -> str:
    """``"zip"``, ``"hdf5"`` or ``"other"``, from the file's first bytes (never from its name)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == _HDF5_MAGIC:
        return "hdf5"
    return "zip" if zipfile.is_zipfile(path) else "other"


def check_config(config: Any, path: str | Path) -> None:
    """Refuse a Keras config that holds a ``Lambda`` or names a class/function outside Keras and sea-tf.

    Parameters
    ----------
    config : dict
        A model's JSON config (``config.json`` of a ``.keras`` zip, or an HDF5 ``model_config``).
    path : str or Path
        Named in the message.

    Raises
    ------
    ModelError
    """
    ours = set(custom_objects())
    for node in _nodes(config):
        name = node.get("class_name")
        module = node.get("module")
        if name in ("TFOpLambda", "SlicingOpLambda") and not _plain_tf_op(node.get("config", {}).get("function")):
            raise ModelError(f"{path}: names the TensorFlow function {node['config'].get('function')!r}, outside the "
                             "math and array ops a model needs; it could read or write files when run, so it is "
                             "refused (nothing was loaded)")
        if name == "Lambda":
            raise ModelError(f"{path}: holds a Lambda layer, Python code stored in the model file that loading would "
                             "run; sea-tf loads only Keras built-in layers and its own, so rebuild the model without "
                             "it (nothing was loaded)")
        if module is None or not isinstance(module, str):
            continue  # resolved among Keras built-ins and the custom objects only
        top = module.split(".")[0]
        if top in _KERAS_MODULES or (top == "sea_tf" and name in ours):
            continue
        if top == "tensorflow_model_optimization" and name in _quantize_classes():
            continue  # the QAT student's fake-quantization layers (sea-tf's own file, tfmot's quantize scope)
        if module == "builtins" and name == "function" and _is_keras_builtin(node.get("config")):
            continue
        raise ModelError(f"{path}: its config names {module}.{node.get('config') if name == 'function' else name}, "
                         "which is neither a Keras built-in nor a sea-tf layer; loading it would import and run "
                         "code the file chooses, so it is refused (nothing was loaded)")


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a JSON tree that names a class (``class_name``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _quantize_classes() -> set[str]:
    """Names of the classes tfmot's ``quantize_scope`` knows (imported only when a config names tfmot)."""
    import tensorflow_model_optimization as tfmot
    return {name for objects in tfmot.quantization.keras.quantize_scope().custom_objects for name in objects}


def _plain_tf_op(function: object) -> bool:
    """True for a TF op a functional model may record (``tf.reshape``, ``tf.math.add``, ``tf.nn.relu``):
    no namespace that touches files, the Python interpreter or raw kernels."""
    if not isinstance(function, str):
        return False
    parts = function.split(".")
    if len(parts) == 1:
        return function not in ("print", "py_function", "numpy_function", "py_func", "load_op_library",
                                "load_library")
    return len(parts) == 2 and parts[0] in _TF_OP_NAMESPACES


_TF_OP_NAMESPACES = ("math", "nn", "linalg", "signal", "image", "bitwise", "__operators__")


def _is_keras_builtin(name: object) -> bool:
    """True when ``name`` is a Keras built-in function (activation, loss, metric), as tf_keras resolves them."""
    if not isinstance(name, str):
        return False
    from tf_keras.src.saving.serialization_lib import BUILTIN_MODULES
    from tensorflow.python.util import tf_export
    return any(tf_export.get_symbol_from_name(f"keras.{mod}.{name}") is not None for mod in BUILTIN_MODULES)


def load_keras(path: str | Path, *, what: str = "model", trust_model_code: bool | None = None) -> Any:
    """Load a user-supplied Keras model file without running code from it.

    Parameters
    ----------
    path : str or Path
        A ``.keras`` zip; or a Keras HDF5 model (``.h5``/``.hdf5``), only when trusted.
    what : str
        What the file should be (named in messages, e.g. ``"classifier"``).
    trust_model_code : bool, optional
        Allow a Keras HDF5 model file (its legacy loader can run code stored in it); None: read
        ``$SEA_TF_TRUST_MODEL_CODE``. Never loosens the checks on a ``.keras`` zip.

    Returns
    -------
    keras.Model

    Raises
    ------
    ModelError
        A ``.keras`` path that is not a zip, a Lambda or a foreign class in the config, an untrusted
        HDF5 model, or a file Keras cannot read.
    """
    path = Path(path)
    try:
        kind = file_kind(path)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the {what} ({exc.strerror or exc}); check the path") from exc
    if path.suffix == ".keras":
        if kind != "zip":
            found = "an HDF5 file" if kind == "hdf5" else "not a zip archive"
            raise ModelError(f"{path}: named .keras but {found}; a .keras {what} must be a Keras zip (model.save to "
                             "a .keras name), since tf_keras loads any other file through its legacy loader, which "
                             "can run code stored in it (nothing was loaded)")
        return _load_zip(path, what)
    if kind == "hdf5":
        return _load_hdf5(path, what, trusted(trust_model_code))
    raise ModelError(f"{path}: not a Keras {what} file (expected a .keras zip); check the path")


def _load_zip(path: Path, what: str) -> Any:
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    from sea_tf.backend import keras
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{path}: not a readable Keras zip ({_first_line(exc)}); was it written by Keras "
                         f"model.save? (nothing was loaded)") from exc
    check_config(config, path)
    try:
        with SafeModeScope(True):
            return keras.models.load_model(path, compile=False, safe_mode=True, custom_objects=custom_objects())
    except (OSError, ValueError, TypeError, KeyError, AttributeError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: cannot load the Keras {what} ({_first_line(exc)}); was it written by "
                         "sea-tf?") from exc


def _load_hdf5(path: Path, what: str, trust: bool) -> Any:
    if not trust:
        raise ModelError(f"{path}: a Keras HDF5 {what} file, which tf_keras can only load through its legacy "
                         "loader, able to run Python code stored in the file (a Lambda layer's bytecode); sea-tf "
                         f"refuses it: re-save it as .keras, or, {TRUST_HINT}")
    from sea_tf.backend import keras
    try:
        return keras.models.load_model(path, compile=False, custom_objects=custom_objects())
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelError(f"{path}: cannot load the Keras {what} ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
