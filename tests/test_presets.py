"""Packaged configs: one defaults file per stage, named presets, typed settings, `sea-tf configs`."""
import pytest
import yaml

from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.errors import ConfigError
from sea_tf.presets import (configs_root, defaults_names, load_defaults, locate_config, preset_names, preset_text,
                            schema_of_preset)


def _command_schemas():
    """Every schema name a registered sea-tf command uses (walks the real parser)."""
    parser = cli_main.build_parser()
    found = set()

    def walk(p):
        defaults = p._defaults.get("_defaults")
        if getattr(defaults, "name", None):
            found.add(defaults.name)
        for action in p._actions:
            if isinstance(getattr(action, "choices", None), dict):
                for sub in action.choices.values():
                    walk(sub)
    walk(parser)
    return found


def test_every_command_reads_packaged_defaults():
    schemas = _command_schemas()
    assert {"teacher", "sampling", "reduce/fit", "distill", "export", "classify/us8k", "classify/final",
            "models/embed", "device/run", "data/make-demo", "demo", "report"} <= schemas
    for name in schemas:
        assert load_defaults(name), name


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_resolves_against_its_command(name):
    schema = schema_of_preset(name)
    cfg = config.resolve(load_defaults(schema), name)
    assert set(cfg) == set(load_defaults(schema))


def test_preset_commands():
    assert schema_of_preset("reduce/fit-pca64") == "reduce/fit"
    assert schema_of_preset("reduce/apply") == "reduce/apply"
    assert schema_of_preset("classify/svm") == "classify/us8k"
    assert schema_of_preset("classify/esc50") == "classify/esc50"
    assert schema_of_preset("models/embed-hear") == "models/embed"
    assert schema_of_preset("distill/sea-64") == "distill"


def test_defaults_are_fresh_copies():
    first = load_defaults("distill")
    first["train"]["epochs"] = -1
    assert load_defaults("distill")["train"]["epochs"] == 300


def test_sections_share_anchored_settings():
    us8k, esc50, final = (load_defaults(f"classify/{c}") for c in ("us8k", "esc50", "final"))
    assert esc50["classifier"] == us8k["classifier"] and esc50["out"] == "classify_esc50"
    assert final["mlp"] == us8k["classifier"]["mlp"] and final["features"] == us8k["features"]


def test_config_accepts_a_path_a_name_and_a_bare_name_within_the_stage(tmp_path):
    defaults = load_defaults("distill")
    by_name = config.resolve(defaults, "distill/sea-64")
    assert by_name == config.resolve(defaults, "distill/sea-64.yaml")
    assert by_name == config.resolve(defaults, "sea-64", stage="distill")
    assert by_name == config.resolve(defaults, "configs/distill/sea-64.yaml")  # the docs' spelling, anywhere
    path = tmp_path / "mine.yaml"
    path.write_text(preset_text("distill/sea-64"))
    assert config.resolve(defaults, str(path)) == by_name


@pytest.mark.parametrize("value, message", [
    ("distill/sea-65", "no packaged preset of that name; check the path, or name a packaged preset: distill/demo"),
    ("distill/defaults", "no packaged preset"),
    ("/nowhere/mine.yaml", "config file not found"),
])
def test_unknown_preset_lists_the_names(value, message):
    with pytest.raises(ConfigError, match=message):
        locate_config(value, stage="distill")


def test_directory_and_unreadable_config_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        config.resolve(load_defaults("sampling"), str(tmp_path))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00not text")
    with pytest.raises(ConfigError, match="cannot read it"):
        config.resolve(load_defaults("sampling"), str(bad))


@pytest.mark.parametrize("item, message", [
    ("m=abc", "'m' = 'abc' is a string; expected an integer"),
    ("m=1.5", "expected an integer"),
    ("ridge=true", "expected a number"),
    ("progress=1", "expected a boolean"),
    ("shards=shards/", "expected a list"),
    ("m=null", "expected an integer"),
])
def test_set_values_are_typed(item, message):
    with pytest.raises(ConfigError, match=message):
        config.resolve(load_defaults("sampling"), set_items=[item])


def test_a_copy_of_a_defaults_file_is_a_valid_config(tmp_path):
    copied = tmp_path / "my-distill.yaml"
    copied.write_text(preset_text("distill/defaults"))   # carries the !nullable tags
    assert config.resolve(load_defaults("distill"), str(copied)) == config.resolve(load_defaults("distill"))


def test_typed_values_that_are_accepted():
    cfg = config.resolve(load_defaults("sampling"), set_items=["ridge=1", "shards=[a, b]", "m=7"])
    assert cfg["ridge"] == 1.0 and isinstance(cfg["ridge"], float) and cfg["shards"] == ["a", "b"] and cfg["m"] == 7
    distill = load_defaults("distill")
    # !nullable in the defaults file: null is a meaningful value of steps_per_epoch.
    assert config.resolve(distill, set_items=["train.steps_per_epoch=null"])["train"]["steps_per_epoch"] is None
    with pytest.raises(ConfigError, match="'train.epochs' = null"):
        config.resolve(distill, set_items=["train.epochs=null"])
    # Anything goes where the default is null (no type to check against).
    assert config.resolve(distill, set_items=["targets=t/"])["targets"] == "t/"


def test_yaml_values_are_typed_and_name_the_file(tmp_path):
    path = tmp_path / "wrong.yaml"
    path.write_text("train:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"--config .*wrong.yaml: setting 'train.epochs' = 'ten'"):
        config.resolve(load_defaults("distill"), str(path))
    path.write_text("pruning:\n  exclude: conv2d_1\n")
    with pytest.raises(ConfigError, match="expected a list"):
        config.resolve(load_defaults("distill"), str(path))
    path.write_text("train:\n  early_stopping: {patience: 2.5}\n")
    with pytest.raises(ConfigError, match="early_stopping.patience"):
        config.resolve(load_defaults("distill"), str(path))


def test_list_items_are_checked():
    with pytest.raises(ConfigError, match=r"hidden\[1\]"):
        config.resolve(load_defaults("classify/us8k"), set_items=["classifier.mlp.hidden=[512, big]"])


@pytest.mark.parametrize("argv, message", [
    (["device", "run", "--set", "bench=5"], "'bench' = 5 is an integer; expected a mapping"),
    (["device", "run", "--set", "hosts=pi@x"], "'hosts' = 'pi@x' is a string; expected a list"),
    (["sample", "--config", "sampling/nope"], "packaged preset: sampling/demo"),
])
def test_cli_reports_config_mistakes_in_one_line(argv, message, capsys):
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_configs_list_and_show(capsys):
    assert cli_main.main(["configs", "list"]) == 0
    out = capsys.readouterr().out
    assert "distill/sea-64" in out and "reduce/fit-pca64" in out and "for reduce fit" in out
    assert "distill/defaults" in out and "slurm/teacher-embed-array.sbatch" in out
    assert cli_main.main(["configs", "list", "distill"]) == 0
    out = capsys.readouterr().out
    assert "distill/sea-64" in out and "reduce/" not in out
    assert cli_main.main(["configs", "show", "distill/defaults"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out.replace("!nullable", ""))
    assert shown["train"]["batch_size"] == 64
    assert cli_main.main(["configs", "show", "distill/nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "distill/sea-64" in err[0]
    assert cli_main.main(["configs", "list", "nope"]) == 2


def test_every_packaged_file_is_listed():
    listed = set(preset_names()) | set(defaults_names())
    root = configs_root()
    on_disk = {f"{d.name}/{f.name[:-5]}" if d.is_dir() else d.name[:-5]
               for d in root.iterdir() for f in (d.iterdir() if d.is_dir() else [d]) if f.name.endswith(".yaml")}
    assert on_disk == listed
