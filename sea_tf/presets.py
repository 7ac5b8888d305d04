"""The packaged configs: every stage's defaults and named presets, read from ``configs/``.

``configs/`` (top level of the repository) is the one source of every setting's default. The wheel
carries it as package data (``sea_tf/configs`` is a link to it in the checkout), so an installed
sea-tf finds it through :mod:`importlib.resources`, without the source tree.

Layout::

    configs/<stage>/defaults.yaml   the defaults of a stage's command; a stage with several
                                    commands holds one top-level section per command
                                    (``reduce/defaults.yaml``: ``fit:``, ``apply:``, ``compare:``)
    configs/<name>.yaml             a stage without a directory (``demo.yaml``, ``report.yaml``)
    configs/<stage>/<preset>.yaml   named presets: ``--config distill/sea-64`` (or a path)

A defaults file is also the type schema of its settings (:mod:`sea_tf.config`): a value must have
the type of its default. A setting whose default is a value but which also accepts null is tagged
``!nullable`` in the defaults file (``steps_per_epoch: !nullable 4096``).
"""
from __future__ import annotations

import copy
import functools
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from sea_tf.errors import ConfigError

DEFAULTS_FILE = "defaults.yaml"
NULLABLE_TAG = "!nullable"


class Defaults(dict[str, Any]):
    """A stage's defaults (a plain nested dict) plus ``nullable``: dotted keys that also accept null.

    Attributes
    ----------
    name : str
        Schema name, e.g. ``"distill"`` or ``"reduce/fit"``.
    nullable : frozenset of str
        Dotted keys whose default is a value but which accept null too.
    """

    def __init__(self, values: dict[str, Any], name: str, nullable: frozenset[str]) -> None:
        super().__init__(values)
        self.name = name
        self.nullable = nullable


def configs_root() -> Traversable:
    """The packaged ``configs`` directory (a :class:`importlib.resources.abc.Traversable`)."""
    return resources.files("sea_tf") / "configs"


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``!nullable VALUE`` as VALUE."""


def _construct_nullable(loader: _Loader, node: yaml.ScalarNode | yaml.SequenceNode | yaml.MappingNode) -> Any:
    if isinstance(node, yaml.ScalarNode):
        # Resolve the scalar as if it carried no tag (int, float, bool, str).
        node = yaml.ScalarNode(loader.resolve(yaml.ScalarNode, node.value, (True, False)), node.value)
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(NULLABLE_TAG, _construct_nullable)


def yaml_loader() -> type[yaml.SafeLoader]:
    """The safe YAML loader class for configs (reads ``!nullable VALUE`` as VALUE)."""
    return _Loader


def _nullable_keys(node: yaml.Node | None, prefix: str = "") -> set[str]:
    """Dotted keys of mapping node ``node`` whose value node carries the ``!nullable`` tag."""
    keys: set[str] = set()
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            full = f"{prefix}{key_node.value}"
            if value_node.tag == NULLABLE_TAG:
                keys.add(full)
            keys |= _nullable_keys(value_node, full + ".")
    return keys


def _read_text(relative: str) -> str:
    node = configs_root()
    for part in relative.split("/"):
        node = node / part
    if not node.is_file():
        raise FileNotFoundError(relative)
    return node.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _load_defaults_file(relative: str) -> tuple[dict[str, Any], frozenset[str]]:
    text = _read_text(relative)
    data = yaml.load(text, Loader=_Loader) or {}
    return data, frozenset(_nullable_keys(yaml.compose(text, Loader=_Loader)))


def _defaults_location(name: str) -> tuple[str, str | None]:
    """``(file relative to configs/, section or None)`` of schema ``name``."""
    stage, _, section = name.partition("/")
    for relative in (f"{stage}/{DEFAULTS_FILE}", f"{stage}.yaml"):
        try:
            _read_text(relative)
        except FileNotFoundError:
            continue
        return relative, section or None
    raise ConfigError(f"no packaged defaults for '{name}' (looked for configs/{stage}/{DEFAULTS_FILE} and "
                      f"configs/{stage}.yaml); is the sea-tf installation complete?")


def load_defaults(name: str) -> Defaults:
    """The defaults of one command, as a fresh copy.

    Parameters
    ----------
    name : str
        ``"<stage>"`` (``configs/<stage>/defaults.yaml`` or ``configs/<stage>.yaml``) or
        ``"<stage>/<command>"`` (that file's ``<command>`` section), e.g. ``"reduce/fit"``.

    Returns
    -------
    Defaults
        Nested dict of settings, with the ``!nullable`` keys in ``.nullable``.
    """
    relative, section = _defaults_location(name)
    data, nullable = _load_defaults_file(relative)
    if section is not None:
        if section not in data or not isinstance(data[section], dict):
            raise ConfigError(f"configs/{relative} has no '{section}' section (schema '{name}')")
        data = data[section]
        nullable = frozenset(key[len(section) + 1:] for key in nullable if key.startswith(section + "."))
    return Defaults(copy.deepcopy(data), name, nullable)


def preset_names(stage: str | None = None) -> list[str]:
    """Names of the packaged presets (``"distill/sea-64"``), optionally of one stage, sorted."""
    names = []
    for entry in configs_root().iterdir():
        if entry.is_dir() and (stage is None or entry.name == stage):
            names += [f"{entry.name}/{item.name[:-5]}" for item in entry.iterdir()
                      if item.name.endswith(".yaml") and item.name != DEFAULTS_FILE]
    return sorted(names)


def defaults_names() -> list[str]:
    """Names of the packaged defaults files (``"distill/defaults"``, ``"demo"``), sorted."""
    names = []
    for entry in configs_root().iterdir():
        if entry.is_dir() and (entry / DEFAULTS_FILE).is_file():
            names.append(f"{entry.name}/defaults")
        elif entry.is_file() and entry.name.endswith(".yaml"):
            names.append(entry.name[:-5])
    return sorted(names)


def schema_of_preset(name: str) -> str:
    """The command schema packaged preset ``name`` is written for (``"reduce/fit-pca64"`` → ``"reduce/fit"``).

    In a stage with one section per command, a preset belongs to the command whose name starts its
    own (``fit-pca64`` → ``fit``, ``embed-hear`` → ``embed``), else to the file's first section
    (``classify/svm`` → ``classify/us8k``).
    """
    stage, _, base = name.partition("/")
    relative, _ = _defaults_location(stage)
    data, _ = _load_defaults_file(relative)
    # A defaults file holds one section per command when every top-level value is a mapping.
    if not data or not all(isinstance(value, dict) for value in data.values()):
        return stage
    sections = list(data)
    for section in sorted(sections, key=len, reverse=True):
        if base == section or base.startswith(section + "-"):
            return f"{stage}/{section}"
    return f"{stage}/{sections[0]}"


def other_files() -> list[str]:
    """Packaged files that are not YAML configs (e.g. ``slurm/teacher-embed-array.sbatch``), sorted."""
    root = configs_root()
    return sorted(f"{entry.name}/{item.name}" for entry in root.iterdir() if entry.is_dir()
                  for item in entry.iterdir() if item.is_file() and not item.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The text of packaged config ``name`` (``"distill/sea-64"``, ``"distill/defaults"``, with or
    without ``.yaml``, or a non-YAML file such as ``"slurm/teacher-embed-array.sbatch"``)."""
    for relative in (name, f"{name}.yaml"):
        try:
            return _read_text(relative)
        except (FileNotFoundError, OSError):
            continue
    raise ConfigError(f"no packaged config named '{name}'; known: "
                      f"{', '.join(preset_names() + defaults_names() + other_files())} "
                      f"(`sea-tf configs list`)")


def locate_config(value: str, *, stage: str | None = None) -> tuple[str, str]:
    """What ``--config VALUE`` names: a YAML file on disk, or a packaged preset.

    Parameters
    ----------
    value : str
        A path, or a preset name (``"distill/sea-64"``; ``"sea-64"`` when ``stage`` is ``"distill"``).
    stage : str, optional
        The command's stage directory under ``configs/``, for bare names.

    Returns
    -------
    tuple of (str, str)
        ``(label, YAML text)``; the label is the path or ``configs/<name>.yaml``.
    """
    path = Path(value).expanduser()
    if path.is_dir():
        raise ConfigError(f"--config {value}: is a directory; pass a YAML file or a preset name "
                          f"(`sea-tf configs list`)")
    if path.is_file():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config {value}: cannot read it ({exc}); check its permissions") from None
    name = value[:-5] if value.endswith(".yaml") else value
    # "configs/distill/sea-64.yaml", as written in the repository's docs, names the packaged copy too.
    name = name[len("configs/"):] if name.startswith("configs/") else name
    candidates = [name] if "/" in name or stage is None else [f"{stage}/{name}", name]
    for candidate in candidates:
        if candidate.split("/")[-1] == "defaults":
            continue
        try:
            return f"configs/{candidate}.yaml", _read_text(f"{candidate}.yaml")
        except (FileNotFoundError, OSError):
            continue
    known = preset_names(stage) if stage and preset_names(stage) else preset_names()
    looks_like_path = path.is_absolute() or value.startswith((".", "~")) or path.suffix in (".yaml", ".yml")
    what = "config file not found" if looks_like_path else "no such file, and no packaged preset of that name"
    raise ConfigError(f"--config {value}: {what}; check the path, or name a packaged preset: "
                      f"{', '.join(known)} (`sea-tf configs list`)")
