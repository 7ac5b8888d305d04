"""Stage configuration: defaults ← ``--config FILE.yaml`` ← explicit flags ← ``--set key=value``.

Every stage declares a nested dict of defaults. A YAML file or ``--set`` may only name keys that
exist in those defaults (dotted paths for nested keys), so a typo is an error, not a silently
ignored setting. The fully resolved config is written next to the stage's outputs.
"""
import copy
from pathlib import Path

import yaml

from sea_tf import atomic
from sea_tf.errors import ConfigError


def get_dotted(cfg, key):
    """Value at dotted ``key`` (``"a.b.c"``) of nested dict ``cfg``; KeyError when absent."""
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_dotted(cfg, key, value, known=None):
    """Set dotted ``key`` of ``cfg`` to ``value``; with ``known`` given, the key must exist there."""
    if known is not None:
        try:
            get_dotted(known, key)
        except KeyError:
            raise ConfigError(f"unknown setting '{key}'; known settings: {', '.join(flatten_keys(known))}") from None
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def flatten_keys(cfg, prefix=""):
    """All dotted leaf keys of ``cfg`` in order."""
    keys = []
    for name, value in cfg.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            keys.extend(flatten_keys(value, full + "."))
        else:
            keys.append(full)
    return keys


def load_yaml(path):
    """Read a YAML mapping from ``path`` with a clear error for missing or malformed files."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; check the --config path") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file or pass another --config") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping of settings, got {type(data).__name__}")
    return data


def merge(defaults, overrides, source="config"):
    """Deep-merge ``overrides`` into a copy of ``defaults``; unknown keys raise ConfigError."""
    out = copy.deepcopy(defaults)
    for key in flatten_keys(overrides) if overrides else []:
        set_dotted(out, key, get_dotted(overrides, key), known=defaults)
    return out


def parse_set(items, defaults):
    """Turn ``["a.b=3", "c=[1,2]"]`` into a nested override dict (values parsed as YAML)."""
    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        set_dotted(overrides, key.strip(), value, known=defaults)
    return overrides


def resolve(defaults, config_file=None, flags=None, set_items=None):
    """Resolve a stage config.

    Parameters
    ----------
    defaults : dict
        The stage's nested defaults (the schema).
    config_file : str or Path, optional
        YAML file with settings to override.
    flags : dict, optional
        Dotted keys given explicitly on the command line.
    set_items : list of str, optional
        ``key=value`` overrides, applied last.

    Returns
    -------
    dict
        The fully resolved config.
    """
    cfg = copy.deepcopy(defaults)
    if config_file:
        cfg = merge(cfg, load_yaml(config_file))
    for key, value in (flags or {}).items():
        set_dotted(cfg, key, value, known=defaults)
    if set_items:
        cfg = merge(cfg, parse_set(set_items, defaults))
    return cfg


def write_resolved(cfg, out_dir, name):
    """Write the resolved config as ``out_dir/<name>.config.yaml`` (atomically); returns the path."""
    path = Path(out_dir) / f"{name}.config.yaml"
    atomic.write_text(path, yaml.safe_dump(cfg, sort_keys=False))
    return path
