"""Validation at every epoch with the packaged defaults, whatever the size of the held-out split.

The paper's ``train.validation_steps: 1024`` (configs/distill/defaults.yaml) once made Keras keep
one validation iterator across epochs: a split smaller than 1024 batches ran dry in epoch 1, so
``history.csv`` had ``val_loss`` for epoch 1 only, and the best checkpoint, ReduceLROnPlateau and
EarlyStopping never moved: ``student.keras`` was the epoch-1 model. Here the command a user types,
with the packaged defaults and only the sizes made tiny (never ``validation_steps``), must
validate every epoch and keep the epoch with the lowest validation loss.
"""
import csv
import json

import pytest

from distill_fixtures import TINY_STUDENT, make_dataset
from sea_tf.distill import DEFAULTS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 20 sources × 8 windows; 20 % of the sources held out: 32 validation windows, 2 batches of 16.
    return make_dataset(tmp_path_factory.mktemp("validation-data"), n_sources=20)


def test_packaged_validation_steps_validate_every_epoch(data, tmp_path, capsys):
    from sea_tf.cli.main import main

    assert DEFAULTS["train"]["validation_steps"] == 1024  # the paper's setting, used as packaged
    out = tmp_path / "run"
    epochs = 8
    tiny = [f"student.overrides.filters={TINY_STUDENT['filters']}", "student.overrides.embedding_bn_relu=false",
            f"student.overrides.embedding_size={data['d']}", "data.valid_fraction=0.2", "data.shuffle_buffer=256",
            "data.block_rows=32", "evaluate.downstream=false"]
    argv = ["distill", "--shards", str(data["shards"]), "--targets", str(data["targets"]), "--out", str(out),
            "--epochs", str(epochs), "--steps-per-epoch", "8", "--batch-size", "16", "--lr", "0.01", "--no-progress"]
    for item in tiny:
        argv += ["--set", item]
    assert main(argv) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "validation_steps" in line]
    # One line naming both numbers: the configured steps and what the split holds.
    assert len(err) == 1 and "1024" in err[0] and "32 windows" in err[0], err

    resolved = (out / "distill.config.yaml").read_text()
    assert "validation_steps: 1024" in resolved
    with open(out / "history.csv", newline="") as fh:
        history = list(csv.DictReader(fh))
    assert [int(row["epoch"]) for row in history] == list(range(1, epochs + 1))
    val = [row["val_loss"] for row in history]
    assert all(v not in ("", None) for v in val), val          # validated at every epoch
    val = [float(v) for v in val]
    assert len(set(val)) == epochs                             # a new figure each epoch, not a stale copy

    report = json.loads((out / "report.json").read_text())
    best = min(range(epochs), key=val.__getitem__) + 1
    assert report["validation"] == {"windows": 32, "batches": 2, "validation_steps": 1024}
    assert (report["kept_epoch"], report["kept_because"]) == (best, "lowest val_loss")
    assert report["kept_val_loss"] == pytest.approx(val[best - 1], rel=1e-6)
    # The loss falls on this data (lr 1e-2, a learnable teacher): the kept student is a later epoch.
    assert min(val[1:]) < val[0] and best > 1, val
    card = json.loads((out / "student.card.json").read_text())
    assert card["distill_run"]["best_epoch"] == best
    # ReduceLROnPlateau saw val_loss at every epoch (its state moved after epoch 1).
    state = json.loads((out / "state.json").read_text())
    assert state["reduce_lr"]["best"] == pytest.approx(min(val), rel=1e-6)
