"""Loading a model or classifier file never runs code stored in it (issue #21, Why 1).

Each hostile file is a real Keras file whose loading, in the old code, ran a function that writes
a marker file: the test asserts the one-line ModelError and that the marker does not exist.
"""
import json
import os
import shutil
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from sea_tf import cards
from sea_tf.backend import keras
from sea_tf.classify.final import load_classifier
from sea_tf.errors import ModelError
from sea_tf.models import SeaModel, build_preset, load_model
from sea_tf.models.safe_load import TRUST_ENV


def _tiny(layer):
    inputs = keras.Input(shape=(4,))
    return keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))


def _with_cards(path, kind="student"):
    """The cards a user would receive beside the file (a classifier's, or a student's)."""
    cards.write_card(path, {"name": path.stem, "kind": kind, "classes": ["a", "b"], "sample_rate": 16000,
                            "frame_samples": 16000, "embedding_size": 2, "params": 1,
                            "macs": {"total": 1}, "weights": {"source": "trained"}})
    return path


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "code-ran.txt"


@pytest.fixture
def lambda_h5(tmp_path, marker):
    """An HDF5 model whose Lambda layer writes ``marker`` when it is rebuilt."""
    model = _tiny(keras.layers.Lambda(lambda x, m=str(marker): (open(m, "w").write("ran"), x)[1]))
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    path = tmp_path / "made-by-a-colleague.h5"
    model.save(path)
    assert path.read_bytes()[:4] == b"\x89HDF" and not marker.exists()
    return path


@pytest.mark.parametrize("kind", ["student", "classifier"])
def test_an_hdf5_file_named_keras_is_refused_and_runs_nothing(tmp_path, lambda_h5, marker, kind):
    renamed = _with_cards(tmp_path / f"{kind}.keras", kind)
    shutil.copyfile(lambda_h5, renamed)
    for trust in (False, True):  # trusting HDF5 files does not make a renamed one a .keras file
        with pytest.raises(ModelError, match=r"named \.keras but an HDF5 file; a \.keras .* must be a Keras zip"):
            if kind == "classifier":
                load_classifier(renamed, trust_model_code=trust)
            else:
                SeaModel.load(renamed)
    with pytest.raises(ModelError, match="named .keras but an HDF5 file"):
        load_model(str(renamed))
    assert not marker.exists()


def test_a_keras_zip_with_a_lambda_is_refused_before_keras_sees_it(tmp_path, marker):
    model = _tiny(keras.layers.Lambda(lambda x, m=str(marker): (open(m, "w").write("ran"), x)[1]))
    marker.unlink(missing_ok=True)
    path = _with_cards(tmp_path / "clf.keras", "classifier")
    model.save(path)
    with pytest.raises(ModelError, match=r"clf\.keras: holds a Lambda layer, Python code stored in the model file"):
        load_classifier(path, trust_model_code=True)
    with pytest.raises(ModelError, match="holds a Lambda layer"):
        SeaModel.load(path)
    assert not marker.exists()


def test_a_keras_zip_naming_a_function_of_another_module_is_refused(tmp_path, marker, monkeypatch):
    # safe_mode=True stops a lambda's bytecode, not a Lambda whose config names a function of any
    # importable module: tf_keras imports the module and calls the function while it rebuilds the
    # model. A real .keras zip, its config.json edited as an attacker would.
    (tmp_path / "helpers_h8.py").write_text(textwrap.dedent(f"""
        def activation(x):
            open({str(marker)!r}, "w").write("ran")
            return x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = tmp_path / "saved.keras"
    _tiny(keras.layers.Lambda(lambda x: x)).save(saved)
    with zipfile.ZipFile(saved) as src:
        entries = {name: src.read(name) for name in src.namelist()}
    config = json.loads(entries["config.json"])
    (layer,) = [item for item in config["config"]["layers"] if item["class_name"] == "Lambda"]
    layer["config"].update(function_type="function", function={
        "module": "helpers_h8", "class_name": "function", "config": "activation", "registered_name": "function"})
    entries["config.json"] = json.dumps(config).encode()
    path = _with_cards(tmp_path / "student.keras")
    with zipfile.ZipFile(path, "w") as out:
        for name, data in entries.items():
            out.writestr(name, data)
    with pytest.raises(ModelError, match=r"student\.keras: holds a Lambda layer"):
        SeaModel.load(path)
    with pytest.raises(ModelError, match="holds a Lambda layer"):
        load_classifier(_with_cards(path, "classifier"))
    assert not marker.exists()
    sys.modules.pop("helpers_h8", None)


def test_a_config_naming_a_foreign_class_or_tf_io_op_is_refused(tmp_path):
    from sea_tf.models.safe_load import check_config
    check_config({"class_name": "Dense", "module": "keras.layers", "config": {
        "activation": {"module": "builtins", "class_name": "function", "config": "relu"}}}, "ok.keras")
    check_config({"class_name": "TFOpLambda", "module": "keras.layers", "config": {"function": "math.add"}}, "ok")
    with pytest.raises(ModelError, match=r"m\.keras: its config names os\.system, which is neither"):
        check_config({"class_name": "Dense", "module": "keras.layers", "config": {
            "activation": {"module": "os", "class_name": "function", "config": "system"}}}, "m.keras")
    with pytest.raises(ModelError, match="names builtins.exec"):
        check_config({"class_name": "function", "module": "builtins", "config": "exec"}, "m.keras")
    with pytest.raises(ModelError, match="TensorFlow function 'io.write_file'"):
        check_config({"class_name": "TFOpLambda", "module": "keras.layers", "config": {"function": "io.write_file"}},
                     "m.keras")


def test_the_qat_students_quantize_layers_pass_the_check(tmp_path):
    # The QAT student (an HDF5 file sea-tf writes, loaded in tfmot's quantize scope) names tfmot's
    # classes by module; they are sea-tf's own objects, other tfmot names are not.
    import h5py
    import tensorflow_model_optimization as tfmot
    from sea_tf.models.safe_load import check_config

    inputs = keras.Input((4,))
    path = tmp_path / "student-qat.h5"
    tfmot.quantization.keras.quantize_model(keras.Model(inputs, keras.layers.Dense(2, activation="relu")(inputs))).save(path)
    with h5py.File(path) as fh:
        config = json.loads(fh.attrs["model_config"])
    assert "tensorflow_model_optimization" in json.dumps(config)
    check_config(config, path)
    with pytest.raises(ModelError, match="names tensorflow_model_optimization.sparsity.keras.prune_low_magnitude"):
        check_config({"class_name": "function", "module": "tensorflow_model_optimization.sparsity.keras",
                      "config": "prune_low_magnitude"}, path)


def test_an_hdf5_classifier_needs_trust(tmp_path, lambda_h5, marker, monkeypatch):
    path = _with_cards(lambda_h5, "classifier")
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(ModelError) as info:
        load_classifier(path)
    message = str(info.value)
    assert "\n" not in message and "a Keras HDF5 classifier file" in message
    assert "only for a file from a source you trust, allow it with --trust-model-code" in message and TRUST_ENV in message
    assert not marker.exists()
    # Trusted (the flag's environment variable): the legacy loader runs, code included, as asked.
    monkeypatch.setenv(TRUST_ENV, "1")
    model, card = load_classifier(path)
    assert card["kind"] == "classifier" and model.output_shape == (None, 2) and marker.exists()


def test_a_sea_tf_model_still_round_trips(tmp_path):
    model = build_preset("sea-64")
    path = model.save(tmp_path / "student.keras")
    loaded = SeaModel.load(path)
    frames = np.random.default_rng(0).standard_normal((2, model.frame_samples)).astype(np.float32) * 0.1
    np.testing.assert_array_equal(loaded.embed_frames(frames), model.embed_frames(frames))
    assert os.path.getsize(path) > 0


def test_every_subcommand_takes_trust_model_code(monkeypatch, tmp_path):
    """The flag the refusal names exists on every stage command and reaches the loader (as its variable)."""
    from sea_tf.cli.main import build_parser, main

    def leaves(parser, name):
        sub = parser._subparsers
        if sub is None:
            yield name, parser
            return
        for action in sub._group_actions:
            for child_name, child in action.choices.items():
                yield from leaves(child, f"{name} {child_name}".strip())

    stage_commands = [(n, p) for n, p in leaves(build_parser(), "") if "--set" in p._option_string_actions]
    assert len(stage_commands) > 15
    assert [n for n, p in stage_commands if "--trust-model-code" not in p._option_string_actions] == []
    import os
    from sea_tf.cli import main as main_mod

    seen = []
    real_run = main_mod._run
    monkeypatch.setattr(main_mod, "_run", lambda args: seen.append(os.environ.get(TRUST_ENV)) or real_run(args))
    monkeypatch.setenv(TRUST_ENV, "0")   # so that monkeypatch restores whatever the test leaves
    monkeypatch.delenv(TRUST_ENV)
    assert main(["data", "check", str(tmp_path / "absent"), "--trust-model-code"]) == 2
    assert main(["data", "check", str(tmp_path / "absent")]) == 2
    # trusted while that command ran, and only then: a later in-process command is not
    assert seen == ["1", None] and TRUST_ENV not in os.environ
