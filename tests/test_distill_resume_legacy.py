"""A run directory made before a setting existed resumes when today's config asks for what the old code did.

``student.head`` and ``data.shuffle`` were added after runs were already being made: a saved
``distill.config.yaml`` without them was trained with the published head and block-wise input order.
"""
import json

import pytest
import yaml

from sea_tf.config import set_dotted
from sea_tf.distill.defaults import DEFAULTS, LEGACY_VALUES, RESUMABLE_CHANGES
from sea_tf.distill.runstate import check_resumable
from sea_tf.errors import TrainError


def _old_run(tmp_path, cfg):
    """A run directory whose saved config is ``cfg`` without the keys added since (an older sea-tf's)."""
    saved = json.loads(json.dumps(cfg))
    for key in LEGACY_VALUES:
        section, name = key.split(".")
        del saved[section][name]
    (tmp_path / "distill.config.yaml").write_text(yaml.safe_dump(saved))
    (tmp_path / "state.json").write_text("{}")
    return tmp_path


def _resumable(run_dir, cfg):
    return check_resumable(run_dir, cfg, config_name="distill", resumable_changes=RESUMABLE_CHANGES,
                           legacy_values=LEGACY_VALUES)


def test_an_older_run_resumes_with_the_values_its_code_used(tmp_path):
    cfg = json.loads(json.dumps(dict(DEFAULTS)))
    set_dotted(cfg, "data.shuffle", "blocks")
    run_dir = _old_run(tmp_path, cfg)
    assert _resumable(run_dir, cfg) is True          # head: published is what the old code built


def test_an_older_run_is_not_resumed_with_another_input_order(tmp_path):
    cfg = json.loads(json.dumps(dict(DEFAULTS)))
    assert cfg["data"]["shuffle"] != LEGACY_VALUES["data.shuffle"]   # today's default is iid
    run_dir = _old_run(tmp_path, cfg)
    with pytest.raises(TrainError, match=r"data\.shuffle: '<absent: blocks>' -> 'iid'") as caught:
        _resumable(run_dir, cfg)
    assert "student.head" not in str(caught.value)


def test_every_legacy_key_is_a_setting():
    for key in LEGACY_VALUES:
        section, name = key.split(".")
        assert name in DEFAULTS[section]
