"""The packaged defaults as keyword arguments of a stage's explicit functions, for tests that call them.

Below its entry point (``sea_tf.teacher.extract(cfg)``, ...), a stage's functions take their settings
as required keyword arguments (issue #22: the defaults live only in ``configs/<stage>/defaults.yaml``).
A test that calls one directly takes those settings from :func:`settings` and changes only what it is
about: ``sample_shards(dirs, out, 8, **settings("sampling", strategy="random", progress=False))``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sea_tf import config

# Command (a schema of sea_tf.config.load) -> "module:function", the function its entry point calls.
EXPLICIT = {
    "teacher": "sea_tf.teacher:extract_files",
    "sampling": "sea_tf.sampling:sample_shards",
    "reduce/fit": "sea_tf.reduce:fit_sample",
    "reduce/apply": "sea_tf.reduce:apply_reducer",
    "reduce/compare": "sea_tf.reduce:compare_strategies",
}


def _function(command: str) -> Callable[..., Any]:
    module, name = EXPLICIT[command].split(":")
    return getattr(__import__(module, fromlist=[name]), name)


def _settings_by_name(section: Mapping[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Every key of the resolved section, nested ones too (``quality.k`` as ``k``); the outer name wins."""
    for key, value in section.items():
        if isinstance(value, Mapping):
            _settings_by_name(value, found)
    for key, value in section.items():
        found[key] = value
    return found


def settings(command: str, *, of: Callable[..., Any] | None = None, **changes: Any) -> dict[str, Any]:
    """The required keyword settings of ``of`` (default: the command's explicit function) from the defaults.

    Parameters
    ----------
    command : str
        ``"teacher"``, ``"sampling"``, ``"reduce/fit"``, ``"reduce/apply"`` or ``"reduce/compare"``:
        whose packaged defaults (``sea_tf.config.load(command)``) give the values.
    of : callable, optional
        A function below that command's entry point (``select``, ``sample_streams``, ``evaluate``, ...).
    **changes
        Keyword arguments of the function over the defaults; a mapping merges into a mapping setting
        (``sampling={"group_rows": 500}``).

    Returns
    -------
    dict
        Each keyword-only parameter of the function that has no default and whose name is a key of
        the command's defaults (at any depth), with the defaults' value, then ``changes``.
    """
    values = _settings_by_name(config.load(command), {})
    required = [name for name, p in inspect.signature(of or _function(command)).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty]
    kwargs = {name: values[name] for name in required if name in values}
    for name, value in changes.items():
        if isinstance(value, Mapping) and isinstance(kwargs.get(name), Mapping):
            value = {**kwargs[name], **value}
        kwargs[name] = value
    return kwargs
