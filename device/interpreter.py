"""Find a TFLite interpreter: ``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``.

The board normally has only ``ai-edge-litert`` (``requirements-device.txt``); the fallbacks let
the same harness run on older boards (``tflite_runtime``) or a workstation. Which one was used is
reported in every benchmark, because kernels (and so timings) differ between them.

XNNPACK is a setting too: each interpreter applies it by default (``OpResolverType.AUTO``), and
``xnnpack=False`` asks for ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` instead (the builtin optimized
kernels without the default delegate): on some boards and models one is faster, on others the other.
"""
import importlib
from importlib import metadata
from pathlib import Path
from typing import Any

from device.errors import InterpreterError

#: (module holding ``Interpreter``, distribution name reported) in order of preference.
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def find_interpreter(*, prefer: str | None = None) -> tuple[Any, dict[str, str]]:
    """The first importable interpreter class.

    Parameters
    ----------
    prefer : str, optional
        Distribution name from :data:`CANDIDATES` to try first (e.g. ``"tflite-runtime"``).

    Returns
    -------
    cls : type
        The ``Interpreter`` class.
    info : dict
        ``{"package": distribution name, "module": module path, "version": str}``.
    """
    order = sorted(CANDIDATES, key=lambda c: c[1] != prefer) if prefer else CANDIDATES
    failures: list[str] = []
    for module_name, dist in order:
        try:
            module = importlib.import_module(module_name)
            cls = module.Interpreter
        except Exception as exc:  # noqa: BLE001 - any import failure means "try the next one"
            failures.append(f"{module_name}: {type(exc).__name__}: {exc}")
            continue
        return cls, {"package": dist, "module": module_name, "version": _version(dist)}
    raise InterpreterError(
        "no TFLite interpreter could be imported (" + "; ".join(failures) + "); install one with "
        "`pip install -r requirements-device.txt` (ai-edge-litert) on this machine")


def open_interpreter(model_path: Path | str, *, threads: int = 1, xnnpack: bool = True,
                     prefer: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Load ``model_path`` into a ready-to-run interpreter (tensors allocated).

    Parameters
    ----------
    model_path : str or Path
        A ``.tflite`` file.
    threads : int
        CPU threads for the interpreter's kernels (a Pi 4 has 4 cores).
    xnnpack : bool
        Apply the interpreter's default XNNPACK delegate (its own default); False: builtin kernels only.
    prefer : str, optional
        See :func:`find_interpreter`.

    Returns
    -------
    interpreter : Interpreter
    info : dict
        As returned by :func:`find_interpreter`, plus ``xnnpack`` (bool) and ``op_resolver`` (the
        ``OpResolverType`` name asked for).
    """
    cls, found = find_interpreter(prefer=prefer)
    interpreter = construct(cls, model_path, threads=threads, xnnpack=xnnpack, info=found)
    try:
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise _cannot_load(model_path, found, exc) from exc
    return interpreter, {**found, "xnnpack": bool(xnnpack),
                         "op_resolver": "AUTO" if xnnpack else "BUILTIN_WITHOUT_DEFAULT_DELEGATES"}


def construct(cls: Any, model_path: Path | str, *, threads: int, xnnpack: bool, info: dict[str, str]) -> Any:
    """``cls(model_path, num_threads=threads)`` with or without XNNPACK, tensors not yet allocated.

    Parameters
    ----------
    cls : type
        An ``Interpreter`` class from :func:`find_interpreter`.
    model_path : str or Path
    threads : int
    xnnpack : bool
        See :func:`open_interpreter`.
    info : dict
        :func:`find_interpreter`'s info for ``cls`` (named in errors).

    Raises
    ------
    InterpreterError
        The file cannot be read as a model, or this interpreter cannot turn XNNPACK off.
    """
    # With XNNPACK the interpreter's own default is kept, so an old tflite_runtime without the enum still runs.
    options = {} if xnnpack else {"experimental_op_resolver_type": _without_delegates(cls, info)}
    try:
        return cls(model_path=str(model_path), num_threads=int(threads), **options)
    except (ValueError, RuntimeError) as exc:
        raise _cannot_load(model_path, info, exc) from exc


def _without_delegates(cls: Any, info: dict[str, str]) -> Any:
    """``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`` from the module defining ``cls`` (ai_edge_litert.interpreter,
    tflite_runtime.interpreter and tensorflow.lite.python.interpreter each define the enum beside the class)."""
    enum = getattr(importlib.import_module(cls.__module__), "OpResolverType", None)
    if enum is None:
        raise InterpreterError(f"{info['package']} {info['version']} has no OpResolverType, so XNNPACK cannot be "
                               "turned off; install ai-edge-litert (requirements-device.txt) or keep XNNPACK on")
    return enum.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def _cannot_load(model_path: Path | str, info: dict[str, str], exc: Exception) -> InterpreterError:
    return InterpreterError(f"{model_path}: {info['package']} {info['version']} cannot load this model ({exc}); "
                            "re-export it with `sea-tf export` or check the file was copied completely")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
