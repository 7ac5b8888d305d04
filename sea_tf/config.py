"""Stage configuration: defaults ← ``--config`` ← explicit flags ← ``--set key=value``.

Every stage's defaults live in one packaged YAML file (:mod:`sea_tf.presets`): they are both the
values and the schema. A YAML file or ``--set`` may only name keys that exist in those defaults
(dotted paths for nested keys), so a typo is an error, not a silently ignored setting; a value must
have the type of its default (int, float, bool, str, list, mapping; null only where the default is
null or the key is ``!nullable``). The fully resolved config is written next to the stage's outputs.
"""
import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sea_tf import atomic
from sea_tf.errors import ConfigError

#: A nested mapping of settings, as YAML reads it (values of any YAML type).
Config = dict[str, Any]

_TYPE_NAMES: dict[type, str] = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
               list: "a list, e.g. [a, b]", dict: "a mapping, e.g. {key: value}"}


def _kind(value: object) -> type:
    for kind in (bool, int, float, str, list, dict):  # bool before int: True is an int in Python
        if isinstance(value, kind):
            return kind
    return type(value)


def check_type(key: str, value: Any, default: Any, *, nullable: bool = False, source: str = "config") -> Any:
    """``value`` for setting ``key`` if it has the type of ``default``, else a ConfigError.

    An int is accepted (as a float) where the default is a float; null is accepted where the default
    is null or ``nullable``; anything is accepted where the default is null. Lists are checked item by
    item against the type of the default's items when the default has items of one type.
    """
    if default is None or (value is None and nullable):
        return value
    expected = _kind(default)
    got = _kind(value)
    if expected is float and got is int:
        return float(value)
    if got is not expected:
        shown = "null" if value is None else repr(value)
        hint = " (or null)" if nullable else ""
        if expected is list and got is not list:
            hint += f"; write it as a list, e.g. {key}: [{shown}]"
        raise ConfigError(f"{source}: setting '{key}' = {shown} is {_describe(value)}; expected "
                          f"{_TYPE_NAMES.get(expected, expected.__name__)}{hint}")
    if expected is list and default and value:
        item_kinds = {_kind(item) for item in default}
        if len(item_kinds) == 1:
            sample = default[0]
            return [check_type(f"{key}[{i}]", item, sample, source=source) for i, item in enumerate(value)]
    return value


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(_kind(value), type(value).__name__).split(",")[0]


def get_dotted(cfg: Mapping[str, Any], key: str) -> Any:
    """Value at dotted ``key`` (``"a.b.c"``) of nested dict ``cfg``; KeyError when absent."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_dotted(cfg: Config, key: str, value: Any, *, known: Mapping[str, Any] | None = None,
               source: str = "config") -> None:
    """Set dotted ``key`` of ``cfg`` to ``value``.

    With ``known`` (the defaults) given, the key must exist there and ``value`` must have the type of
    its default (:func:`check_type`).
    """
    if known is not None:
        try:
            default = get_dotted(known, key)
        except KeyError:
            raise ConfigError(f"{source}: unknown setting '{key}'; known settings: "
                              f"{', '.join(flatten_keys(known))}") from None
        value = check_type(key, value, default, nullable=key in getattr(known, "nullable", ()), source=source)
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def flatten_keys(cfg: Mapping[str, Any], *, prefix: str = "") -> list[str]:
    """All dotted leaf keys of ``cfg`` in order."""
    keys: list[str] = []
    for name, value in cfg.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            keys.extend(flatten_keys(value, prefix=full + "."))
        else:
            keys.append(full)
    return keys


def load_yaml(path: Path | str, *, stage: str | None = None) -> Config:
    """Read the YAML mapping a ``--config`` value names: a file, or a packaged preset name.

    Parameters
    ----------
    path : str or Path
        A YAML file, or a preset name such as ``"distill/sea-64"`` (:func:`sea_tf.presets.locate_config`).
    stage : str, optional
        The command's ``configs/`` directory, so that a bare preset name (``"sea-64"``) is found.

    Returns
    -------
    dict
    """
    from sea_tf.presets import locate_config

    label, text = locate_config(str(path), stage=stage)
    return parse_yaml(text, label)


def parse_yaml(text: str, label: str) -> Config:
    """Parse YAML ``text`` (from ``label``, for messages) into a mapping of settings."""
    from sea_tf.presets import yaml_loader

    try:
        # The defaults files' loader: a copy of a defaults file (with its !nullable tags) is a valid config.
        data = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML ({exc}); fix the file or pass another --config") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: a config must be a YAML mapping of settings, got {type(data).__name__}")
    return data


def _plain(defaults: Mapping[str, Any]) -> Config:
    """A deep copy of ``defaults`` as plain dicts (safe to dump as YAML)."""
    return copy.deepcopy(dict(defaults))


def merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, *, source: str = "config") -> Config:
    """Deep-merge ``overrides`` into a copy of ``defaults``; unknown keys or wrong types raise ConfigError."""
    out = _plain(defaults)
    for key in flatten_keys(overrides or {}):
        set_dotted(out, key, get_dotted(overrides or {}, key), known=defaults, source=source)
    return out


def parse_set(items: Iterable[str] | None, defaults: Mapping[str, Any]) -> Config:
    """Turn ``["a.b=3", "c=[1,2]"]`` into a nested override dict (values parsed as YAML)."""
    overrides: Config = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        set_dotted(overrides, key.strip(), value, known=defaults, source=f"--set {item}")
    return overrides


def resolve(defaults: Mapping[str, Any], config_file: Path | str | None = None, *,
            flags: Mapping[str, Any] | None = None, set_items: Iterable[str] | None = None,
            stage: str | None = None) -> Config:
    """Resolve a stage config.

    Parameters
    ----------
    defaults : dict
        The stage's nested defaults (the schema).
    config_file : str or Path, optional
        YAML file, or packaged preset name (``"distill/sea-64"``), with settings to override.
    flags : dict, optional
        Dotted keys given explicitly on the command line.
    set_items : list of str, optional
        ``key=value`` overrides, applied last.
    stage : str, optional
        The command's ``configs/`` directory, for bare preset names.

    Returns
    -------
    dict
        The fully resolved config.
    """
    cfg = _plain(defaults)
    if config_file:
        cfg = _merge_into(cfg, load_yaml(config_file, stage=stage), defaults, f"--config {config_file}")
    for key, value in (flags or {}).items():
        set_dotted(cfg, key, value, known=defaults, source="command line")
    if set_items:
        cfg = _merge_into(cfg, parse_set(set_items, defaults), defaults, "--set")
    return cfg


def load(schema: str, preset: Path | str | None = None, /, **overrides: Any) -> Config:
    """A stage's resolved config, built in Python as the CLI builds it: defaults ← preset ← overrides.

    Parameters
    ----------
    schema : str
        The command's defaults, as :func:`sea_tf.presets.load_defaults` names them: ``"teacher"``,
        ``"sampling"``, ``"reduce/fit"``, ``"distill"``, ``"classify/us8k"``, ``"export"``, ...
    preset : str or Path, optional
        A YAML file, or a packaged preset name (``"sea-64"`` or ``"distill/sea-64"``), merged as
        ``--config`` merges it.
    **overrides
        Settings merged last, as ``--set`` merges them. A mapping merges into a section
        (``train={"epochs": 3}`` changes ``train.epochs`` only); a dotted key names a nested setting
        (``**{"train.epochs": 3}``). A path (``os.PathLike``, also in a list) is taken as its string,
        the type a path setting holds; a tuple as a list.

    Returns
    -------
    dict
        The resolved config: the dict the CLI command resolves from the same settings.

    Raises
    ------
    ConfigError
        An unknown schema, preset or setting, or a value of the wrong type (the CLI's messages).
    """
    from sea_tf.presets import load_defaults

    defaults = load_defaults(schema)
    cfg = resolve(defaults, preset, stage=schema.split("/")[0])
    for key, value in overrides.items():
        leaves = ({f"{key}.{leaf}": get_dotted(value, leaf) for leaf in flatten_keys(value)}
                  if isinstance(value, dict) and value else {key: value})
        for leaf, item in leaves.items():
            set_dotted(cfg, leaf, _path_strings(item), known=defaults, source=f"config.load({schema!r}) override {key}")
    return cfg


def _path_strings(value: Any) -> Any:
    """``value`` with every path (``os.PathLike``, also in a list) as its string, as YAML holds a path."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_path_strings(item) for item in value]
    return value


def _merge_into(cfg: Config, overrides: Mapping[str, Any], defaults: Mapping[str, Any], source: str) -> Config:
    for key in flatten_keys(overrides):
        set_dotted(cfg, key, get_dotted(overrides, key), known=defaults, source=source)
    return cfg


def write_resolved(cfg: Mapping[str, Any], out_dir: Path | str, name: str) -> Path:
    """Write the resolved config as ``out_dir/<name>.config.yaml`` (atomically); returns the path."""
    path = Path(out_dir) / f"{name}.config.yaml"
    atomic.write_text(path, yaml.safe_dump(cfg, sort_keys=False))
    return path
