"""``sea-tf demo``'s per-step overrides (``steps.<step>``) and the small ``demo/ci`` run .ci/run makes."""
import pytest

from sea_tf import config
from sea_tf.cli.main import main
from sea_tf.demo import STAGES, STEP_SCHEMAS, DemoContext, run_demo
from sea_tf.errors import ConfigError
from sea_tf.presets import load_defaults


def _ctx(tmp_path, **step_settings):
    return DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path / "data",
                       step_settings=step_settings)


def test_step_settings_apply_over_the_steps_preset(tmp_path):
    plain = _ctx(tmp_path).settings("distill", "distill/demo")
    assert plain == config.resolve(load_defaults("distill"), "distill/demo")   # nothing given: the preset
    small = _ctx(tmp_path, distill=["train.time_budget_s=20", "train.epochs=3"]).settings("distill", "distill/demo")
    assert small["train"]["time_budget_s"] == 20 and small["train"]["epochs"] == 3
    assert small["train"]["learning_rate"] == plain["train"]["learning_rate"]   # the rest stays the preset's


def test_every_stage_with_settings_has_a_schema():
    # A step key names one schema; the stages whose steps resolve settings are all covered.
    assert set(STEP_SCHEMAS) - {"classify_ust"} <= set(STAGES)
    for schema in STEP_SCHEMAS.values():
        assert load_defaults(schema)


@pytest.mark.parametrize("steps, words", [
    ({"distil": ["train.epochs=3"]}, ["steps.distil", "no such step", "distill"]),
    ({"distill": ["train.epoch=3"]}, ["unknown setting 'train.epoch'"]),
    ({"export": ["latency.runs=many"]}, ["latency.runs", "integer"]),
    ({"device": [5]}, ["steps.device", "key=value"]),
])
def test_a_bad_step_setting_is_one_line_before_any_step_runs(tmp_path, steps, words):
    with pytest.raises(ConfigError) as err:
        run_demo(tmp_path / "out", stages=["data"], step_settings=steps, log=lambda _: None)
    assert all(word in str(err.value) for word in words) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()   # nothing written, not even the report folder


def test_the_ci_preset_resolves_and_every_override_is_valid(tmp_path, capsys):
    cfg = config.resolve(load_defaults("demo"), "demo/ci", stage="demo")
    assert cfg["stages"] is None                                   # all nine stages
    run_demo_settings = {key: items for key, items in cfg["steps"].items() if items}
    assert {"data", "distill", "export", "device"} <= set(run_demo_settings)
    from sea_tf.demo import check_step_settings
    check_step_settings(run_demo_settings)
    # The command line accepts the same spelling README and .ci/run use, and refuses a bad key.
    assert main(["configs", "show", "demo/ci"]) == 0
    assert "upstream.recordings=12" in capsys.readouterr().out
    code = main(["demo", "--config", "demo/ci", "--out", str(tmp_path / "o"),
                 "--set", "steps.distill=[train.epoch=3]"])
    assert code != 0 and not (tmp_path / "o").exists()
    assert "train.epoch" in capsys.readouterr().err
