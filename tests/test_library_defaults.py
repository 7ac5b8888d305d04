"""Every default lives in ``configs/<stage>/defaults.yaml``: a library function of a stage module may
not carry another value under a name that file defines.

A keyword default of a stage function whose parameter name is a leaf key of that stage's
``defaults.yaml`` (any section) must equal one of the values the file gives that key; otherwise a
library caller and a CLI user get different results from "the defaults" (issue #22: classify's
``seed=0`` against 20180302, the fidelity figures' ``runs=30, warmup=3`` against 50 and 5). And
below a stage's entry point such a parameter has no default at all (keyword-only, required): the
second test fails on any default that repeats a key, even an agreeing one. ``None`` is not a value
("not given"), and a key whose only value in the file is null says nothing. The openl3-style user
API (``sea_tf.embed``, ``sea_tf.hear``) keeps its documented defaults and is not scanned.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from sea_tf.presets import yaml_loader

ROOT = Path(__file__).resolve().parents[1]

# Stage -> the modules (files or packages, relative to the repository root) that implement it.
STAGE_MODULES = {
    "classify": ["sea_tf/classify"],
    "export": ["export"],
    "distill": ["sea_tf/distill"],
    "reduce": ["sea_tf/reduce"],
    "sampling": ["sea_tf/sampling"],
    "teacher": ["sea_tf/teacher"],
    "device": ["sea_tf/remote"],
    "data": ["sea_tf/data"],
    "models": ["sea_tf/models"],
    "report": ["sea_tf/report.py", "sea_tf/report_html.py"],
    "tune": ["sea_tf/tune"],
}

# Parameters that share a name with a key of the stage's defaults.yaml but are another setting.
OTHER_SETTING = {
    ("sea_tf/classify/mlp.py", "predict_proba", "batch_size"): "frames per inference call, not the training batch",
    ("sea_tf/classify/mil.py", "predict_files", "batch_size"): "files per inference call, not the training batch",
    ("sea_tf/models/calibrate.py", "calibrate_batchnorm", "batch_size"):
        "the batch-norm calibration batch (its statistics depend on it), not the embedding forward pass",
    ("sea_tf/models/seamodel.py", "embed_frames", "batch_size"):
        "the model object's forward-pass chunk for every caller, not `sea-tf embed`'s setting (sea_tf.embed passes it)",
    ("sea_tf/reduce/reducer.py", "fit_reducer", "chunk_rows"): "rows per incremental fit, not `reduce apply`'s transform chunk",
}


def _leaf_values(node, out):
    """Collect ``{leaf key: [values]}`` over every section of a defaults tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict):
                _leaf_values(value, out)
            else:
                out.setdefault(str(key), []).append(value)
    return out


def _stage_keys(stage):
    path = ROOT / "configs" / stage / "defaults.yaml"
    if not path.is_file():      # a one-command stage keeps its defaults in configs/<stage>.yaml (report)
        path = ROOT / "configs" / f"{stage}.yaml"
    text = path.read_text()
    return _leaf_values(yaml.load(text, Loader=yaml_loader()), {})


def _same(default, value):
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return len(default) == len(value) and all(_same(d, v) for d, v in zip(default, value))
    if isinstance(default, bool) or isinstance(value, bool):
        return default is value
    return type(default) in (int, float) and type(value) in (int, float) and default == value \
        or default == value


def _module_files(stage):
    for entry in STAGE_MODULES[stage]:
        path = ROOT / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _keyword_defaults(path):
    """``(function name, line, parameter, default value)`` for every literal keyword default."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = node.args
        positional = args.posonlyargs + args.args
        pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
        pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
        for arg, default in pairs:
            try:
                value = ast.literal_eval(default)
            except ValueError:
                continue            # not a literal (a name, a call): nothing to compare
            yield node.name, node.lineno, arg.arg, value


def mismatches(stage):
    """Every keyword default of the stage's modules that disagrees with its defaults.yaml."""
    keys = _stage_keys(stage)
    found = []
    for path in _module_files(stage):
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        for function, line, name, value in _keyword_defaults(path):
            values = [v for v in keys.get(name, []) if v is not None]
            if (where, function, name) in OTHER_SETTING:
                continue
            if value is None or not values or any(_same(value, v) for v in values):
                continue
            found.append(f"{where}:{line} {function}({name}={value!r}); "
                         f"configs/{stage}/defaults.yaml: {sorted(set(map(repr, values)))}")
    return found


def copies(stage):
    """Every keyword default of the stage's modules that repeats a key of its defaults.yaml, agreeing or not.

    Below a stage's entry point (which takes the resolved config), functions take such settings as
    required keyword-only arguments: the value comes from the YAML through the caller, never from a
    second copy in a signature that could drift from it.
    """
    keys = _stage_keys(stage)
    found = []
    for path in _module_files(stage):
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        for function, line, name, value in _keyword_defaults(path):
            if (where, function, name) in OTHER_SETTING or value is None:
                continue
            if [v for v in keys.get(name, []) if v is not None]:
                found.append(f"{where}:{line} {function}({name}={value!r})")
    return found


@pytest.mark.parametrize("stage", sorted(STAGE_MODULES))
def test_stage_function_defaults_agree_with_the_stage_defaults_file(stage):
    assert mismatches(stage) == []


@pytest.mark.parametrize("stage", sorted(STAGE_MODULES))
def test_stage_functions_take_yaml_settings_without_a_default(stage):
    assert copies(stage) == []


def test_the_scan_sees_an_agreeing_copy(tmp_path, monkeypatch):
    # A default equal to the YAML's is a second source of it all the same.
    module = tmp_path / "stage.py"
    module.write_text("def fit(x, *, seed=20180302, verbose=None):\n    return x\n")
    monkeypatch.setitem(STAGE_MODULES, "classify", [str(module)])
    assert mismatches("classify") == [] and [m.split(" ")[1] for m in copies("classify")] == ["fit(seed=20180302)"]


def test_the_scan_sees_a_disagreeing_default(tmp_path, monkeypatch):
    # The check itself can fail: a stage module defaulting `seed=0` against the YAML's seed.
    module = tmp_path / "stage.py"
    module.write_text("def fit(x, *, seed=0, epochs=150):\n    return x\n")
    monkeypatch.setitem(STAGE_MODULES, "classify", [str(module)])
    assert [m.split(" ")[1] for m in mismatches("classify")] == ["fit(seed=0);"]


def test_every_other_setting_entry_names_a_live_parameter():
    # A renamed or removed parameter must leave the exemption list too, or the list hides nothing.
    live = {(path, function, name) for path, function, name in OTHER_SETTING
            if any((f, n) == (function, name) for f, _, n, _ in _keyword_defaults(ROOT / path))}
    assert live == set(OTHER_SETTING)
