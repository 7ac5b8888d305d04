"""The config resolution order and the CLI's one-line errors."""
import subprocess
import sys

import pytest
import yaml

from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.errors import ConfigError

DEFAULTS = {"a": 1, "train": {"epochs": 10, "lr": 1e-4}, "name": "x"}


def test_resolve_order(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"train": {"epochs": 3}, "name": "file"}))
    cfg = config.resolve(DEFAULTS, cfg_file, flags={"name": "flag"}, set_items=["train.lr=0.5", "a=7"])
    assert cfg == {"a": 7, "train": {"epochs": 3, "lr": 0.5}, "name": "flag"}
    assert DEFAULTS["train"]["epochs"] == 10  # defaults untouched


@pytest.mark.parametrize("bad", [["nope=1"], ["train.nope=1"], ["train.epochs"]])
def test_bad_set_is_config_error(bad):
    with pytest.raises(ConfigError):
        config.resolve(DEFAULTS, set_items=bad)


def test_bad_yaml_files(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="not found"):
        config.resolve(DEFAULTS, missing)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.resolve(DEFAULTS, scalar)
    typo = tmp_path / "typo.yaml"
    typo.write_text("trian: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="trian"):
        config.resolve(DEFAULTS, typo)


def test_write_resolved_roundtrip(tmp_path):
    path = config.write_resolved(DEFAULTS, tmp_path / "out", "stage")
    assert yaml.safe_load(path.read_text()) == DEFAULTS


def test_cli_error_is_one_line(capsys, tmp_path):
    code = cli_main.main(["demo", "--set", "nope=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("sea-tf demo: error: --set nope=1: unknown setting 'nope'")


def test_python_m_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "sea_tf", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_atomic_write_has_normal_permissions(tmp_path):
    import os
    import stat

    from sea_tf import atomic
    path = tmp_path / "card.json"
    atomic.write_json(path, {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert not list(tmp_path.glob(".*tmp"))


def test_demo_defaults_run_every_stage():
    from sea_tf.demo import STAGES
    from sea_tf.presets import load_defaults
    cfg = load_defaults("demo")
    assert cfg["stages"] is None and cfg["out"] == "demo_out" and len(STAGES) == 10
