"""Find a TFLite interpreter: ``ai_edge_litert``, else ``tflite_runtime``, else ``tensorflow.lite``.

The board normally has only ``ai-edge-litert`` (``requirements-device.txt``); the fallbacks let
the same harness run on older boards (``tflite_runtime``) or a workstation. Which one was used is
reported in every benchmark, because kernels (and so timings) differ between them.
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


def open_interpreter(model_path: Path | str, *, threads: int = 1,
                     prefer: str | None = None) -> tuple[Any, dict[str, str]]:
    """Load ``model_path`` into a ready-to-run interpreter (tensors allocated).

    Parameters
    ----------
    model_path : str or Path
        A ``.tflite`` file.
    threads : int
        CPU threads for the interpreter's kernels (a Pi 4 has 4 cores).
    prefer : str, optional
        See :func:`find_interpreter`.

    Returns
    -------
    interpreter : Interpreter
    info : dict
        As returned by :func:`find_interpreter`.
    """
    cls, info = find_interpreter(prefer=prefer)
    try:
        interpreter = cls(model_path=str(model_path), num_threads=int(threads))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InterpreterError(
            f"{model_path}: {info['package']} {info['version']} cannot load this model ({exc}); "
            "re-export it with `sea-tf export` or check the file was copied completely") from exc
    return interpreter, info


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
