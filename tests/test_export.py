"""sea-tf export: every mode of a tiny student run with LiteRT, sidecars, report, bad input, CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sea_tf import cards
from sea_tf.errors import ExportError, SeaTFError
from sea_tf.presets import preset_names

SR = 8000
ROOT = Path(__file__).resolve().parent.parent


def scene_windows(n, seed, sr=SR):
    """Seeded 1-s windows that look like sound scenes: harmonic tones with envelopes over coloured noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr) / sr
    out = np.empty((n, sr), np.float32)
    for i in range(n):
        noise = np.cumsum(rng.standard_normal(sr)) * 0.02 * rng.uniform(0, 1) + rng.standard_normal(sr) * 0.05
        x = noise - noise.mean()
        for _ in range(rng.integers(1, 4)):
            f0 = rng.uniform(80, 1500)
            env = np.exp(-((t - rng.uniform(0, 1)) ** 2) / rng.uniform(0.005, 0.2))
            x += sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 5)) * env
        x *= 10 ** (rng.uniform(-40, -10) / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-9)
        out[i] = x
    return out


@pytest.fixture(scope="module")
def tiny():
    from sea_tf.models import build_student
    return build_student(filters=[4, 8, 8, 16], n_mels=16, seed=3)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    from export import export_file
    out = tmp_path_factory.mktemp("export")
    cfg = {"latency": {"runs": 3, "warmup": 1, "threads": 1}, "held_out": {"windows": 24, "hop_size": 0.5, "seed": 1,
                                                                            "sources": []}}
    summary = export_file(tiny, out, calibration=scene_windows(48, 0), held_out=scene_windows(24, 1), cfg=cfg,
                          progress=False)
    return out, {a["mode"]: a for a in summary["artifacts"]}, summary


# -- conversion and fidelity, per mode ------------------------------------------------------------

def test_every_mode_written_with_sidecar(exported):
    out, arts, summary = exported
    assert list(arts) == ["fp32", "dynamic", "fp16", "int8", "int16x8"]
    for mode, art in arts.items():
        assert Path(art["path"]).name == f"sea-custom.{mode}.tflite"
        assert Path(art["sidecar"]).is_file()
        assert art["interpreter"]["package"] == "ai-edge-litert"   # run by LiteRT, not TensorFlow
        assert art["n_windows"] == 24
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_bytes_equal_a_fresh_keras_conversion(exported, tiny):
    """Each graph is saved once and converted from its SavedModel in every mode (export.convert.SavedGraphs);
    every file must be byte for byte what ``from_keras_model`` writes for a graph built afresh for that mode."""
    from device.frontends import compute_frontend
    from export import calibration, int8_body
    from export.convert import CALIBRATED_MODES, convert
    from export.defaults import DEFAULTS
    from export.placement import export_graph
    _, arts, _ = exported
    cal = scene_windows(48, 0)
    for mode, art in arts.items():
        inside = art["frontend_in_model"]
        graph = export_graph(tiny, inside, dft=DEFAULTS["dft"])
        cal_x = cal if inside else compute_frontend(cal, tiny.frontend)
        if mode == "int8":
            graph, _ = int8_body.prepare_body(graph, cal_x, DEFAULTS["int8_body"])
        rep = calibration.representative_dataset(cal_x) if mode in CALIBRATED_MODES else None
        fresh = convert(graph, mode, representative=rep, io=DEFAULTS["int8_io"], name="fresh")  # from_keras_model
        assert Path(art["path"]).read_bytes() == fresh, f"{mode}: not the bytes from_keras_model writes"


def test_fidelity_thresholds_per_mode(exported):
    _, arts, _ = exported
    assert arts["fp32"]["rel_max_abs_error"] < 1e-4
    assert arts["fp32"]["cosine_worst"] > 0.999999
    assert arts["fp16"]["cosine_worst"] > 0.9999
    assert arts["fp16"]["rel_max_abs_error"] < 5e-3
    assert arts["dynamic"]["cosine_worst"] > 0.999
    assert arts["int16x8"]["cosine_worst"] > 0.999
    assert arts["int8"]["cosine_mean"] > 0.995
    assert arts["int8"]["cosine_p5"] > 0.99
    # int8 must differ from fp32 (it really is quantized)
    assert arts["int8"]["max_abs_error"] > 10 * arts["fp32"]["max_abs_error"]


def test_placement_and_tensor_types(exported, tiny):
    _, arts, _ = exported
    from export.metadata import read_sidecar
    metas = {m: read_sidecar(a["path"]) for m, a in arts.items()}
    for mode in ("fp32", "fp16"):
        assert metas[mode]["frontend_in_model"] is True
        assert metas[mode]["input"]["kind"] == "raw_audio"
        assert metas[mode]["input"]["shape"] == [1, SR]
        assert metas[mode]["input"]["dtype"] == "float32"
    for mode in ("dynamic", "int8", "int16x8"):
        assert metas[mode]["frontend_in_model"] is False
        assert metas[mode]["input"]["kind"] == "frontend_features"
        assert metas[mode]["input"]["shape"] == [1, 16, 50, 1]
        assert metas[mode]["frontend"] == tiny.frontend
    q = metas["int8"]["input"]["quantization"]
    assert metas["int8"]["input"]["dtype"] == "int8" and metas["int8"]["output"]["dtype"] == "int8"
    # calibrated on the dB images of the calibration windows: their range is representable, to one step
    from device.frontends import compute_frontend
    feats = compute_frontend(scene_windows(48, 0), tiny.frontend)
    low, high = (-128 - q["zero_point"]) * q["scale"], (127 - q["zero_point"]) * q["scale"]
    assert low <= feats.min() + q["scale"] and high >= feats.max() - q["scale"] and q["scale"] < 80 / 255 + 1e-6
    assert metas["fp32"]["input"]["quantization"] == {"scale": None, "zero_point": None}
    assert "RFFT2D" in metas["fp32"]["operators"] and "LOG" in metas["fp32"]["operators"]
    assert metas["int8"]["calibration"]["n_windows"] == 48


def test_int8_file_runs_on_plain_litert(exported, tiny):
    """Independent of export.fidelity: quantize, invoke and dequantize by hand."""
    from ai_edge_litert.interpreter import Interpreter
    from device.frontends import compute_frontend
    _, arts, _ = exported
    frames = scene_windows(6, 7)
    feats = compute_frontend(frames, tiny.frontend)
    interp = Interpreter(model_path=arts["int8"]["path"], num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    (si, zi), (so, zo) = inp["quantization"], out["quantization"]
    got = []
    for x in feats:
        interp.set_tensor(inp["index"], np.clip(np.round(x[None] / si + zi), -128, 127).astype(np.int8))
        interp.invoke()
        got.append((interp.get_tensor(out["index"])[0].astype(np.float32) - zo) * so)
    ref = tiny.embed_frames(frames)
    cos = np.sum(got * ref, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.98


def test_sizes(exported, tiny):
    _, arts, _ = exported
    assert arts["int8"]["size_bytes"] < 0.3 * arts["fp32"]["size_bytes"]
    # each float weight saves 2 bytes in fp16 (the front end's int32 frame indices, when folded, do not)
    assert arts["fp32"]["size_bytes"] - arts["fp16"]["size_bytes"] > 2 * tiny.card["params"]
    for art in arts.values():
        assert 0 < art["gzip_bytes"] < art["size_bytes"]
        assert art["end_to_end_ms"] >= art["invoke_ms"] > 0


# -- metadata ----------------------------------------------------------------------------------

def test_sidecar_round_trip_and_device_runner(exported, tiny):
    from device.runner import load_artifact
    from export.metadata import read_sidecar
    _, arts, _ = exported
    for art in arts.values():
        meta = read_sidecar(art["path"])
        again = json.loads(json.dumps(meta))
        assert again == meta
        assert meta["model_card"] == json.loads(json.dumps(tiny.card))
        assert meta["sha256"] == cards.sha256_file(art["path"])
        loaded = load_artifact(art["path"])          # the board's reader of the same files
        assert loaded.mode == art["mode"] and loaded.sample_rate == SR
        assert loaded.frontend_in_model == meta["frontend_in_model"]


def test_sidecar_detects_a_changed_model(exported, tmp_path):
    from export.metadata import read_sidecar, sidecar_path
    _, arts, _ = exported
    src = Path(arts["fp16"]["path"])
    copy = tmp_path / src.name
    copy.write_bytes(src.read_bytes()[:-8] + b"\0" * 8)
    sidecar_path(copy).write_text(sidecar_path(src).read_text())
    with pytest.raises(ExportError, match="sha256"):
        read_sidecar(copy)
    sidecar_path(copy).write_text("{}")
    with pytest.raises(ExportError, match="lacks"):
        read_sidecar(copy)


def test_report_files(exported):
    out, _, summary = exported
    report = json.loads((out / "sea-custom.report.json").read_text())
    assert [a["mode"] for a in report["artifacts"]] == summary["modes"]
    md = (out / "sea-custom.report.md").read_text()
    assert "| sea-custom | int8 | frontend_features |" in md
    assert (out / "sea-custom.report.png").read_bytes()[:4] == b"\x89PNG"


# -- classifier -----------------------------------------------------------------------------

def _tiny_classifier(path, dim=16, classes=("a", "b", "c")):
    from sea_tf.backend import keras
    keras.utils.set_random_seed(0)
    x = keras.Input((dim,))
    norm = keras.layers.Normalization(name="scaler", mean=np.full(dim, 2.0), variance=np.full(dim, 4.0))
    y = keras.layers.Dense(len(classes), activation="softmax")(keras.layers.Dense(8, activation="relu")(norm(x)))
    model = keras.Model(x, y)
    model.save(path)
    cards.write_card(path, {"name": "tiny-clf", "kind": "classifier", "classes": list(classes),
                            "embedding_size": dim})
    return path


def test_classifier_export(tiny, tmp_path):
    from device.runner import load_artifact
    from export import export_file
    clf = _tiny_classifier(tmp_path / "clf.keras")
    summary = export_file(tiny, tmp_path / "out", modes="fp32,int8", calibration=scene_windows(32, 0),
                          held_out=scene_windows(16, 1), classifier=clf, progress=False,
                          cfg={"latency": {"runs": 2, "warmup": 1, "threads": 1}})
    rows = {(a["model"], a["mode"]): a for a in summary["artifacts"]}
    assert set(rows) == {("sea-custom", "fp32"), ("sea-custom", "int8"), ("tiny-clf", "fp32"), ("tiny-clf", "int8")}
    assert rows[("tiny-clf", "fp32")]["top1_agreement"] == 1.0
    assert rows[("tiny-clf", "fp32")]["max_abs_error"] < 1e-4
    assert rows[("tiny-clf", "int8")]["top1_agreement"] >= 0.75
    # The classifier, saved once for both modes, converts to the bytes from_keras_model writes.
    from export import calibration
    from export.convert import convert
    from sea_tf.classify.final import load_classifier
    keras_clf, _ = load_classifier(clf)
    rep = calibration.representative_dataset(tiny.embed_frames(scene_windows(32, 0)))
    for mode in ("fp32", "int8"):
        fresh = convert(keras_clf, mode, representative=rep if mode == "int8" else None, io="int8", name="fresh")
        assert Path(rows[("tiny-clf", mode)]["path"]).read_bytes() == fresh, mode
    art = load_artifact(rows[("tiny-clf", "int8")]["path"])
    assert art.kind == "classifier" and art.classes == ["a", "b", "c"]
    probs = art.classify(np.ones((2, 16), np.float32))
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_classifier_of_another_embedding_size(tiny, tmp_path):
    from export import export_file
    clf = _tiny_classifier(tmp_path / "clf.keras", dim=8)
    with pytest.raises(ExportError, match="8-d"):
        export_file(tiny, tmp_path / "out", modes="fp32", held_out=scene_windows(4, 1), classifier=clf,
                    progress=False)


def test_held_out_labels_from_us8k_metadata(tmp_path):
    from export.pipeline import held_out_labels
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,class\n1-0-0-0.wav,dog\n2-1-0-0.wav,siren\n")
    origin = [str(tmp_path / "audio" / "fold1" / n) for n in ("1-0-0-0.wav", "1-0-0-0.wav", "2-1-0-0.wav", "x.wav")]
    labels, clips = held_out_labels(origin, ["siren", "dog"])
    assert labels.tolist() == [1, 1, 0, -1]
    assert clips.tolist() == [0, 0, 1, 2]


# -- bad input ----------------------------------------------------------------------------------

def test_unknown_mode():
    from export.convert import parse_modes
    assert parse_modes("int8, fp32,int8") == ["int8", "fp32"]
    with pytest.raises(ExportError, match="unknown export mode 'int4'"):
        parse_modes("fp32,int4")
    with pytest.raises(ExportError, match="no export mode"):
        parse_modes("")


def test_model_without_card(tiny, tmp_path):
    from export import export_file
    from sea_tf.models import SeaModel
    path = tiny.save(tmp_path / "m.keras")
    cards.card_path(path).unlink()
    with pytest.raises(SeaTFError, match="card"):
        export_file(str(path), tmp_path / "out", modes="fp32", held_out=scene_windows(2, 0), progress=False)
    with pytest.raises(ExportError, match="no usable card"):
        export_file(SeaModel(tiny.keras, {}), tmp_path / "out", modes="fp32", held_out=scene_windows(2, 0),
                    progress=False)
    assert not (tmp_path / "out").exists()


def test_empty_and_missing_calibration(tiny, tmp_path):
    from export import export_file
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(ExportError, match="empty"):
        export_file(tiny, tmp_path / "out", modes="int8", calibration=[tmp_path / "empty"], progress=False)
    with pytest.raises(ExportError, match="need calibration audio"):
        export_file(tiny, tmp_path / "out", modes="fp32,int8", held_out=scene_windows(2, 0), progress=False)
    with pytest.raises(ExportError, match="non-empty"):
        export_file(tiny, tmp_path / "out", modes="int8", calibration=np.zeros((0, SR), np.float32), progress=False)


def test_wrong_calibration_sample_rate(tiny, tmp_path):
    from export import export_file
    from sea_tf.shards import write_table
    with pytest.raises(ExportError, match="8000 Hz"):
        export_file(tiny, tmp_path / "out", modes="int8", calibration=scene_windows(3, 0, sr=16000), progress=False)
    write_table(tmp_path / "shards", {"embedding": np.zeros((4, 8), np.float32),
                                      "audio": scene_windows(4, 0, sr=16000)}, {"name": "teacher"})
    with pytest.raises(ExportError, match="16000 Hz windows but the model takes 8000 Hz"):
        export_file(tiny, tmp_path / "out", modes="int8", calibration=[tmp_path / "shards"], progress=False)


def test_calibration_from_shards_and_files(tmp_path):
    from export.calibration import draw_windows
    from sea_tf.shards import write_table
    write_table(tmp_path / "shards", {"embedding": np.zeros((30, 8), np.float32), "audio": scene_windows(30, 0)},
                {"name": "teacher"}, shard_rows=10)
    (tmp_path / "wav").mkdir()
    for k in range(3):  # 16 kHz stereo files are resampled to the model's 8 kHz
        sf.write(tmp_path / "wav" / f"f{k}.wav", np.stack([scene_windows(1, k, 16000)[0]] * 2, 1).repeat(3, 0)[:48000],
                 16000)
    windows, origin = draw_windows([tmp_path / "wav", tmp_path / "shards"], SR, 20, seed=0, hop_size=0.5,
                                   allow_partial=False)
    assert windows.shape == (20, SR) and windows.dtype == np.float32
    assert len({o for o in origin if o.endswith(".wav")}) == 3          # drawn across every file
    assert sum(o == "synthetic" for o in origin) == 10                   # half from the shards
    again, _ = draw_windows([tmp_path / "wav", tmp_path / "shards"], SR, 20, seed=0, hop_size=0.5, allow_partial=False)
    assert np.array_equal(windows, again)


def test_non_builtin_ops(tmp_path):
    from export.convert import check_builtin_ops, convert
    from sea_tf.backend import keras, tf
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Lambda(tf.math.erfinv)(x))
    with pytest.raises(ExportError, match="Erfinv"):
        convert(model, "fp32", name="erfinv-model")
    # From a SavedModel saved once: the same one-line error, and the temporary folder removed on the way out.
    from export.convert import SavedGraphs
    dense = keras.Model(x, keras.layers.Dense(3)(x))
    with pytest.raises(ExportError, match=r"^erfinv-model: TFLite conversion in mode fp32 failed \(.*Erfinv") as err:
        with SavedGraphs() as saved:
            root = saved.root
            for mode in ("fp32", "dynamic"):
                convert(dense, mode, name="dense", saved=saved)
            assert root is not None and len(list(root.iterdir())) == 1      # one save for both modes
            convert(model, "fp32", name="erfinv-model", saved=saved)
    assert "\n" not in str(err.value) and not root.exists()
    inv = keras.Model(x, keras.layers.Lambda(lambda t: tf.math.cumprod(t, axis=1))(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(inv)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with pytest.raises(ExportError, match="FlexCumprod.*SELECT_TF_OPS"):
        check_builtin_ops(converter.convert(), where="flex")


def test_failed_mode_leaves_no_partial_file(tiny, tmp_path, monkeypatch):
    from export import pipeline
    real = pipeline.convert

    def convert_then_fail(model, mode, *args, **kwargs):
        if mode == "fp16":
            raise ExportError("simulated converter failure")
        return real(model, mode, *args, **kwargs)

    monkeypatch.setattr(pipeline, "convert", convert_then_fail)
    with pytest.raises(ExportError, match="simulated"):
        pipeline.export_file(tiny, tmp_path, modes="fp32,fp16", held_out=scene_windows(2, 0), progress=False,
                             cfg={"latency": {"runs": 1, "warmup": 0, "threads": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sea-custom.fp32.json", "sea-custom.fp32.tflite"]


def test_atomic_write_on_crash(tmp_path, monkeypatch):
    from export import metadata
    from sea_tf import atomic

    def crash(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(atomic, "write_json", crash)
    with pytest.raises(OSError):
        metadata.write_artifact(tmp_path, "m.fp32", b"x" * 100, {})
    assert [p.name for p in tmp_path.iterdir()] == ["m.fp32.tflite"]   # whole file, no temporary left


# -- CLI and configs -----------------------------------------------------------------------------

def test_cli_export(tiny, tmp_path, capsys):
    from sea_tf.cli.main import main
    path = tiny.save(tmp_path / "tiny.keras")
    (tmp_path / "wav").mkdir()
    for k in range(2):
        sf.write(tmp_path / "wav" / f"c{k}.wav", scene_windows(2, k + 5, 16000).reshape(-1), 16000)
    code = main(["export", str(path), "--modes", "fp32", "--held-out", str(tmp_path / "wav"), "--out",
                 str(tmp_path / "out"), "--latency-windows", "2", "--no-progress"])
    assert code == 0
    assert (tmp_path / "out" / "tiny.fp32.tflite").is_file()     # named after the file, not the card
    cfg = yaml.safe_load((tmp_path / "out" / "export.config.yaml").read_text())
    assert cfg["model"] == str(path) and cfg["modes"] == ["fp32"]
    assert "| tiny | fp32 | raw_audio |" in capsys.readouterr().out
    code = main(["export", str(path), "--modes", "fp32,int3", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown export mode 'int3'" in err[0]


@pytest.mark.parametrize("name", preset_names("export"))
def test_configs_resolve(name):
    from export.defaults import DEFAULTS, MODES
    from sea_tf.config import resolve
    cfg = resolve(DEFAULTS, name)
    assert set(cfg["modes"]) <= set(MODES)
    assert cfg["calibration"]["windows"] >= 1 and cfg["latency"]["threads"] == 1


# -- demo step --------------------------------------------------------------------------------------

def test_demo_step(tiny, tmp_path):
    from sea_tf.demo import DemoContext
    from sea_tf.demo_steps import export as step
    data = tmp_path / "data"
    for sub, n in (("upstream", 3), ("audio/fold1", 2)):
        (data / sub).mkdir(parents=True)
        for k in range(n):
            sf.write(data / sub / f"x{k}.wav", scene_windows(3, 10 * n + k, 16000).reshape(-1), 16000)
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=data)
    ctx.report_dir.mkdir()
    ctx.artifacts["student_model"] = str(tiny.save(tmp_path / "student.keras"))
    report = step.run(ctx)
    export_dir = Path(ctx.artifacts["export_dir"])
    assert sorted(p.name for p in export_dir.glob("*.tflite")) == sorted(
        f"student.{m}.tflite" for m in ("fp32", "dynamic", "fp16", "int8", "int16x8"))
    assert report.figures["artifacts"]["student.int8"]["cosine_mean"] > 0.99
    assert "| student | int16x8 | frontend_features |" in report.markdown
    assert (ctx.report_dir / report.images[0]).is_file()


def test_int8_with_float_io(tiny, tmp_path):
    from export import export_file
    from export.metadata import read_sidecar
    summary = export_file(tiny, tmp_path, modes="int8", calibration=scene_windows(32, 0), held_out=scene_windows(8, 1),
                          cfg={"int8_io": "float", "latency": {"runs": 2, "warmup": 1, "threads": 1}}, progress=False)
    art = summary["artifacts"][0]
    meta = read_sidecar(art["path"])
    assert meta["input"]["dtype"] == "float32" and meta["output"]["dtype"] == "float32"
    assert meta["calibration"]["int8_io"] == "float"
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(meta["operators"])
    assert art["cosine_mean"] > 0.995


def test_demo_step_shows_qat_beside_ptq(qat_distill_run, tmp_path):
    """With QAT on in distill, the demo's export table holds the QAT rows beside PTQ of the same student.

    The distilled run (float ``student.keras`` and ``student-qat.h5``) is conftest's session-wide
    ``qat_distill_run``, read only."""
    from distill_fixtures import tree_files
    from sea_tf.demo import DemoContext
    from sea_tf.demo_steps import export as step

    assert qat_distill_run["code"] == 0, qat_distill_run["stderr"]
    demo = tmp_path / "data"
    for sub, n in (("upstream", 3), ("audio/fold1", 2)):
        (demo / sub).mkdir(parents=True)
        for k in range(n):
            sf.write(demo / sub / f"x{k}.wav", scene_windows(3, 10 * n + k, 16000).reshape(-1), 16000)
    # The two modes this test is about, and small sets: every mode of the demo preset is test_demo_step's.
    quick = ["modes=[dynamic, int8]", "latency.runs=3", "latency.warmup=1", "calibration.windows=50",
             "held_out.windows=20"]
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=demo,
                      step_settings={"export": quick})
    ctx.report_dir.mkdir()
    ctx.artifacts["student_model"] = str(qat_distill_run["run"] / "student.keras")
    report = step.run(ctx)
    assert {"student.int8", "student.dynamic", "student-qat.int8", "student-qat.dynamic"} <= set(
        report.figures["artifacts"])
    qat = report.figures["qat"]
    assert set(qat["qat_int8"]) == {"cosine_mean", "cosine_p5", "cosine_worst"} and "ptq_int8" in qat
    assert "| student-qat | int8 | frontend_features |" in report.markdown and "QAT " in report.markdown
    assert tree_files(qat_distill_run["root"]) == qat_distill_run["files"]   # the shared run is read only
