"""A malformed ``.h5`` (a dataset missing, model_config not JSON or lacking a setting, truncated) is a
one-line error naming the file and what is wrong -- from `sea-tf models import` and `sea-tf embed` --
never "internal error"."""
import json
import shutil

import h5py
import numpy as np
import pytest
import soundfile as sf

from sea_tf.cli.main import main
from weights_support import write_openl3


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("wav") / "noise.wav"
    sf.write(path, (0.1 * np.random.default_rng(0).normal(size=16000)).astype(np.float32), 8000)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return write_openl3(tmp_path_factory.mktemp("teacher") / "openl3_audio_mel256_env-v0_4_0.h5")


def _copy(src, dst):
    shutil.copyfile(src, dst)  # copyfile: the shared original is read-only, the copy must not be
    return dst


def _expect(argv, capsys, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err, err
    for needle in needles:
        assert needle in err, err


def _embed(model, wav, tmp_path):
    return ["embed", "--model", str(model), str(wav), "--output-dir", str(tmp_path / "out")]


def test_openl3_file_missing_a_dataset(teacher, wav, tmp_path, capsys):
    bad = _copy(teacher, tmp_path / "openl3_audio_mel256_env-v0_4_0.h5")
    with h5py.File(bad, "r+") as fh:
        del fh["conv2d_3"]["conv2d_3/kernel:0"]
    missing = "layer 'conv2d_3' lists weight 'conv2d_3/kernel:0' but the file has no such dataset"
    _expect(["models", "import", str(bad), "--name", "openl3/mel256-env"], capsys, f"{bad} does not have", missing)
    _expect(_embed(bad, wav, tmp_path), capsys, f"{bad}: {missing}")


def test_truncated_files(teacher, sea64_h5, wav, tmp_path, capsys):
    for src in (teacher, sea64_h5):
        bad = tmp_path / src.name
        data = src.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        _expect(_embed(bad, wav, tmp_path), capsys, f"{bad}: not a readable HDF5 weight file", "truncated")
    _expect(["models", "import", str(tmp_path / teacher.name), "--name", "openl3/mel256-env"], capsys,
            f"{tmp_path / teacher.name} does not have", "not a readable HDF5 weight file")


def test_edgel3_model_config_not_json(sea64_h5, wav, tmp_path, capsys):
    bad = _copy(sea64_h5, tmp_path / "sea.h5")
    with h5py.File(bad, "r+") as fh:
        fh.attrs["model_config"] = fh.attrs["model_config"][:200]  # cut mid-string: invalid JSON
    _expect(_embed(bad, wav, tmp_path), capsys, f"{bad}: the model_config attribute is not valid JSON")


def test_edgel3_model_config_lacking_a_setting(sea64_h5, wav, tmp_path, capsys):
    bad = _copy(sea64_h5, tmp_path / "sea.h5")
    with h5py.File(bad, "r+") as fh:
        config = json.loads(fh.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Melspectrogram":
                del layer["config"]["sr"]
        fh.attrs["model_config"] = json.dumps(config)
    _expect(_embed(bad, wav, tmp_path), capsys, f"{bad}: model_config lacks the setting 'sr'")


def test_edgel3_file_missing_a_dataset(sea64_h5, wav, tmp_path, capsys):
    bad = _copy(sea64_h5, tmp_path / "sea.h5")
    with h5py.File(bad, "r+") as fh:
        del fh["model_weights"]["conv2d_1"]["conv2d_1/kernel:0"]
    _expect(_embed(bad, wav, tmp_path), capsys,
            f"{bad}: layer 'model_weights/conv2d_1' lists weight 'conv2d_1/kernel:0' but the file has no such dataset")
