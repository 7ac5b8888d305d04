"""``sea_tf.config.load``: a stage's resolved config built in Python, the same dict the CLI resolves."""
from pathlib import Path

import pytest
import yaml

from sea_tf import config
from sea_tf.cli.common import resolved_config
from sea_tf.cli.main import build_parser
from sea_tf.errors import ConfigError
from sea_tf.presets import load_defaults


def _cli_config(argv: list[str]) -> config.Config:
    """The config the CLI resolves for command line ``argv`` (without running the command)."""
    return resolved_config(build_parser().parse_args(argv))


@pytest.mark.parametrize("schema", ["teacher", "sampling", "reduce/fit", "reduce/apply", "distill", "export"])
def test_no_preset_is_the_packaged_defaults(schema: str) -> None:
    cfg = config.load(schema)
    assert cfg == dict(load_defaults(schema))
    assert type(cfg) is dict    # a plain dict: safe to dump as YAML, no Defaults attributes


def test_packaged_preset_by_bare_and_full_name() -> None:
    preset = yaml.safe_load((Path(__file__).parents[1] / "configs/distill/sea-64.yaml").read_text())
    bare = config.load("distill", "sea-64")
    assert bare == config.load("distill", "distill/sea-64")
    assert bare["student"]["preset"] == preset["student"]["preset"]
    assert bare != config.load("distill")


def test_preset_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train: {epochs: 3}\nseed: 11\n")
    for given in (path, str(path)):
        cfg = config.load("distill", given)
        assert cfg["train"]["epochs"] == 3 and cfg["seed"] == 11
        # the rest of the section keeps its defaults
        assert cfg["train"]["batch_size"] == load_defaults("distill")["train"]["batch_size"]


def test_nested_and_dotted_overrides_merge_into_a_section() -> None:
    defaults = load_defaults("distill")
    nested = config.load("distill", train={"epochs": 3})
    dotted = config.load("distill", **{"train.epochs": 3})
    assert nested == dotted
    assert nested["train"] == {**defaults["train"], "epochs": 3}
    both = config.load("distill", train={"epochs": 3}, **{"train.batch_size": 7}, seed=5)
    assert (both["train"]["epochs"], both["train"]["batch_size"], both["seed"]) == (3, 7, 5)


def test_overrides_win_over_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train: {epochs: 3}\n")
    assert config.load("distill", path, train={"epochs": 4})["train"]["epochs"] == 4


def test_a_path_value_is_its_string(tmp_path: Path) -> None:
    cfg = config.load("sampling", out=tmp_path / "s", shards=[tmp_path / "a"])
    assert cfg["out"] == str(tmp_path / "s") and cfg["shards"] == [str(tmp_path / "a")]
    yaml.safe_dump(cfg)     # writable as the resolved config


def test_int_for_float_as_the_cli() -> None:
    cfg = config.load("distill", train={"learning_rate": 1})
    assert cfg["train"]["learning_rate"] == 1.0 and isinstance(cfg["train"]["learning_rate"], float)


@pytest.mark.parametrize("overrides, key", [
    ({"nope": 1}, "nope"),
    ({"train": {"nope": 1}}, "train.nope"),
    ({"train.nope": 1}, "train.nope"),
])
def test_unknown_key_is_a_config_error_naming_it(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown setting '{key}'"):
        config.load("distill", **overrides)


@pytest.mark.parametrize("overrides, key", [
    ({"train": {"epochs": "three"}}, "train.epochs"),
    ({"train.epochs": 2.5}, "train.epochs"),
    ({"seed": None}, "seed"),
])
def test_wrong_type_is_a_config_error_naming_it(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"setting '{key}'"):
        config.load("distill", **overrides)


def test_unknown_schema_and_preset_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no packaged defaults"):
        config.load("nope")
    with pytest.raises(ConfigError, match="no-such-preset"):
        config.load("distill", "no-such-preset")


def test_schema_and_preset_are_positional_only() -> None:
    # so that settings named like them stay overrides (and a misspelt keyword is no silent preset)
    with pytest.raises(ConfigError, match="unknown setting 'preset'"):
        config.load("distill", preset="sea-64")


def test_defaults_are_not_changed_by_a_load() -> None:
    before = load_defaults("distill")
    config.load("distill", train={"epochs": 3})
    assert load_defaults("distill") == before


@pytest.mark.parametrize("argv, schema, preset, overrides", [
    (["distill", "--config", "sea-64", "--epochs", "3", "--set", "train.batch_size=7"],
     "distill", "sea-64", {"train": {"epochs": 3}, "train.batch_size": 7}),
    (["sample", "--shards", "t1", "t2", "--out", "s", "--set", "seed=9"],
     "sampling", None, {"shards": ["t1", "t2"], "out": "s", "seed": 9}),
    (["reduce", "fit", "--config", "reduce/fit-pca64", "--out", "r"],
     "reduce/fit", "reduce/fit-pca64", {"out": "r"}),
    (["teacher-embed", "--input", "a", "--set", "decode_workers=3"], "teacher", None, {"input": "a", "decode_workers": 3}),
    (["export", "--config", "export/demo"], "export", "export/demo", {}),
])
def test_equal_to_the_cli_resolution(argv: list[str], schema: str, preset: str | None,
                                     overrides: dict[str, object]) -> None:
    assert config.load(schema, preset, **overrides) == _cli_config(argv)
