"""Export names come from the model file; an artifact of another model is never overwritten; the identity contract."""
import json

import numpy as np
import pytest

from export.metadata import sidecar_path
from sea_tf import cards
from sea_tf.errors import ExportError

SR = 8000
CFG = {"latency": {"runs": 1, "warmup": 0, "threads": 1}}


def windows(n, seed):
    return (0.1 * np.random.default_rng(seed).standard_normal((n, SR))).astype(np.float32)


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    """Two students of one preset (other seeds), each saved as ``<dir>/student.keras``."""
    from sea_tf.models import build_student

    root = tmp_path_factory.mktemp("students")
    return [build_student(filters=[4, 4, 8, 8], n_mels=16, seed=seed).save(root / name / "student.keras")
            for seed, name in ((3, "a"), (4, "b"))]


def _export(model, out, **kwargs):
    from export import export_file
    return export_file(str(model), out, modes="fp32", held_out=windows(4, 1), cfg={**CFG, **kwargs.pop("cfg", {})},
                       progress=False, **kwargs)


def test_name_from_file_and_identity_contract(students, tmp_path):
    summary = _export(students[0], tmp_path)
    art = summary["artifacts"][0]
    assert art["model"] == "student" and art["path"] == str(tmp_path / "student.fp32.tflite")
    meta = json.loads(sidecar_path(art["path"]).read_text())
    assert meta["source"] == {"path": str(students[0].resolve()), "name": "sea-custom",
                              "sha256": cards.sha256_file(students[0])}
    assert art["sha256"] == meta["sha256"] == cards.sha256_file(art["path"])
    assert art["source_sha256"] == meta["source"]["sha256"]
    report = json.loads((tmp_path / "student.report.json").read_text())
    assert report["artifacts"][0]["source_sha256"] == cards.sha256_file(students[0])
    assert _export(students[0], tmp_path)["artifacts"][0]["sha256"] == art["sha256"]   # a re-run replaces its own


def test_another_model_is_never_overwritten(students, tmp_path):
    first = _export(students[0], tmp_path)["artifacts"][0]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ExportError, match=r"already exported from .*a/student\.keras.* not from .*b/student\.keras.*"
                                          r"--overwrite") as err:
        _export(students[1], tmp_path)
    assert "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before     # nothing written
    renamed = _export(students[1], tmp_path, cfg={"name": "student-b"})["artifacts"][0]
    assert renamed["path"].endswith("student-b.fp32.tflite") and renamed["source_sha256"] != first["source_sha256"]
    replaced = _export(students[1], tmp_path, cfg={"overwrite": True})["artifacts"][0]
    assert replaced["source_sha256"] == cards.sha256_file(students[1])


def test_cli_overwrite_refusal_is_one_line(students, tmp_path, capsys):
    from sea_tf.cli.main import main

    out = tmp_path / "out"
    _export(students[0], out)
    # No audio under --held-out: the refusal comes before any window is drawn.
    code = main(["export", str(students[1]), "--modes", "fp32", "--held-out", str(students[1].parent),
                 "--out", str(out), "--no-progress"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "untrained" not in line]
    assert code != 0 and len(err) == 1 and "--overwrite" in err[0]


def test_qat_file_without_card(tmp_path):
    """A tfmot QAT .h5 without its card: one line, nothing written."""
    import tensorflow_model_optimization as tfmot
    from export import export_file
    from sea_tf.backend import keras

    x = keras.Input((4,))
    model = tfmot.quantization.keras.quantize_model(keras.Model(x, keras.layers.Dense(2)(x)))
    path = tmp_path / "student-qat.h5"
    model.save(path)
    with pytest.raises(ExportError, match="QAT.*without its card") as err:
        export_file(str(path), tmp_path / "out", modes="int8", held_out=windows(2, 0), progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match="without its card"):
        export_file(str(path), tmp_path / "out", modes="int8", held_out=windows(2, 0), progress=False,
                    qat=str(path))
    assert not (tmp_path / "out").exists()


def test_qat_loading_runs_no_code_from_the_file(tmp_path):
    """A Lambda layer's pickled bytecode in a QAT .h5 is refused, never executed."""
    from sea_tf.backend import keras
    from sea_tf.distill import qat
    from sea_tf.errors import ModelError

    marker = tmp_path / "ran"
    x = keras.Input((4,))
    y = keras.layers.Lambda(lambda t, m=str(marker): (open(m, "w").close(), t)[1])(x)
    path = tmp_path / "student-qat.h5"
    keras.Model(x, y).save(path)
    marker.unlink()                       # building the model ran it once; loading must not
    cards.write_card(path, {"name": "x-qat", "qat": {"epochs": 1}})
    with pytest.raises(ModelError, match="Lambda"):
        qat.load(path)
    assert not marker.exists()


def test_qat_file_as_an_embedding_model_is_one_line(tmp_path):
    """classify/embed load models through sea_tf.models: a QAT file is named as such, not taken for openl3
    weights ("does not match openl3-v0_4_0 ..." before)."""
    import tensorflow_model_optimization as tfmot
    from sea_tf.backend import keras
    from sea_tf.errors import ModelError
    from sea_tf.models import load_model

    x = keras.Input((4,))
    path = tmp_path / "student-qat.h5"
    tfmot.quantization.keras.quantize_model(keras.Model(x, keras.layers.Dense(2)(x))).save(path)
    with pytest.raises(ModelError, match="quantization-aware student.*export it") as err:
        load_model(str(path))
    assert "\n" not in str(err.value)
