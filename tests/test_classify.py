"""Downstream protocol: fold rule, no frame crossing folds, clip aggregation, determinism, cache."""
import json

import numpy as np
import pytest
import soundfile as sf

from sea_tf.classify import protocol
from sea_tf.classify.crossval import cross_validate, run_fold
from sea_tf.classify.evaluate import clip_metrics, clip_probabilities, summarize_folds
from sea_tf.classify.features import ClipSet, FrameFeatures, extract_features, frame_l3e
from sea_tf.errors import ClassifyError, DataError, SeaTFWarning

from classify_support import band_embedder

CLASSES = ["low", "mid", "high"]
FREQS = [300.0, 1000.0, 2500.0]
FAST_MLP = {"mlp": {"hidden": [16], "epochs": 25, "patience": 5, "learning_rate": 1e-2, "batch_size": 32}}


def synthetic_features(n_folds=5, clips_per_class=2, frames=4, dim=6, seed=0, spread=0.6):
    """Frame embeddings with a class-dependent mean; clip i has `frames` frames."""
    rng = np.random.default_rng(seed)
    folds, labels, names = [], [], []
    for f in range(1, n_folds + 1):
        for c in range(len(CLASSES)):
            for j in range(clips_per_class):
                folds.append(f), labels.append(c), names.append(f"{f}-{c}-{j}.wav")
    clips = ClipSet(names=names, paths=names, folds=np.array(folds), labels=np.array(labels), classes=CLASSES,
                    fold_ids=list(range(1, n_folds + 1)), kind="toy")
    centres = 2.0 * rng.normal(size=(len(CLASSES), dim))
    x = np.concatenate([centres[c] + spread * rng.normal(size=(frames, dim)) for c in labels]).astype(np.float32)
    return FrameFeatures(x=x, frame_clip=np.repeat(np.arange(len(names)), frames), clips=clips,
                         model_name="toy", model_key="toy-key")


# ------------------------------------------------------------------------------------------ protocol

def test_validation_fold_is_previous_fold_cyclic():
    split = protocol.fold_split(range(1, 11), 1)
    assert split.validation == 10 and split.train == (2, 3, 4, 5, 6, 7, 8, 9)
    for k in range(2, 11):
        s = protocol.fold_split(range(1, 11), k)
        assert s.validation == k - 1
        assert set(s.train) == set(range(1, 11)) - {k, k - 1} and len(s.train) == 8
    esc = protocol.fold_split(range(1, 6), 1)
    assert (esc.validation, esc.train) == (5, (2, 3, 4))
    with pytest.raises(ClassifyError, match="not one of"):
        protocol.fold_split(range(1, 6), 7)


def test_no_clip_frames_cross_splits():
    feats = synthetic_features(frames=3)
    clips = feats.clips
    for split in protocol.all_splits(clips.fold_ids):
        masks = protocol.split_masks(clips.folds, split)
        assert np.all(np.sum(masks, axis=0) == 1)          # every clip in exactly one split
        frame_masks = [m[feats.frame_clip] for m in masks]
        for m in frame_masks:                                # a clip's frames all go where the clip goes
            for c in np.unique(feats.frame_clip[m]):
                assert m[feats.frame_clip == c].all()
        assert set(feats.frame_fold[frame_masks[2]]) == {split.test}
        assert set(feats.frame_fold[frame_masks[1]]) == {split.validation}
    result = run_fold(feats.x, feats.frame_clip, clips.labels, clips.folds, clips.names, 3,
                      protocol.fold_split(clips.fold_ids, 2), clf_cfg={"type": "mlp", **FAST_MLP}, seed=1,
                      progress=False)
    assert sorted(result["predictions"]) == sorted(n for n in clips.names if n.startswith("2-"))
    assert result["train_frames"] == 3 * 6 * 3 and result["validation_frames"] == 3 * 6
    assert result["validation_fold"] == 1 and result["train_folds"] == [3, 4, 5]


def test_augmented_variants_train_but_never_validate_or_test():
    names = ["a.wav", "a_pitch1.wav", "b.wav", "b_ts2.wav", "c.wav", "c_drc.wav"]
    folds = np.array([1, 1, 2, 2, 3, 3])
    train, val, test = protocol.split_masks(folds, protocol.fold_split([1, 2, 3], 1),
                                          augmented=protocol.is_augmented(names))
    assert test.tolist() == [True, False, False, False, False, False]
    assert val.tolist() == [False] * 4 + [True, False]
    assert train.tolist() == [False, False, True, True, False, False]


# ------------------------------------------------------------------------------------------ metrics

def test_clip_prediction_is_mean_of_frame_probabilities():
    # Clip 0: two frames mildly for class 0, one frame certain of class 1. The mean picks class 1
    # (0.4 vs 0.6) where a majority vote of frame argmaxes would pick class 0.
    probs = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.2, 0.8], [0.9, 0.1]])
    owner = np.array([0, 0, 0, 1, 2])
    clip = clip_probabilities(probs, owner)
    np.testing.assert_allclose(clip, [[0.4, 0.6], [0.2, 0.8], [0.9, 0.1]])
    assert clip.argmax(1).tolist() == [1, 1, 0]
    m = clip_metrics(np.array([0, 1, 0]), clip.argmax(1), 2)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["per_class_accuracy"] == [0.5, 1.0] and m["confusion"] == [[1, 1], [0, 1]]
    s = summarize_folds([{**m, "fold": 1}, {**clip_metrics(np.array([1]), np.array([1]), 2), "fold": 2}], ["a", "b"])
    assert s["accuracy_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["accuracy_std"] == pytest.approx(np.std([2 / 3, 1.0]))
    assert s["per_class_accuracy"] == {"a": 0.5, "b": 1.0}


def test_crossval_is_deterministic_and_accurate(tmp_path):
    feats = synthetic_features(n_folds=4)
    a = cross_validate(feats, tmp_path / "a", clf_cfg=FAST_MLP, seed=3, progress=False, workers=1)
    b = cross_validate(feats, tmp_path / "b", clf_cfg=FAST_MLP, seed=3, progress=False, workers=1)
    assert a["accuracy_mean"] > 0.9                          # separable toy classes
    assert a["per_fold"] == b["per_fold"]
    fa = json.loads((tmp_path / "a" / "fold-3.json").read_text())
    fb = json.loads((tmp_path / "b" / "fold-3.json").read_text())
    assert fa["predictions"] == fb["predictions"] and fa["training"] == fb["training"]
    assert (tmp_path / "a" / "confusion.png").stat().st_size > 1000
    assert np.sum(a["confusion"]) == len(feats.clips)        # every clip tested exactly once


def test_mlp_weights_deterministic_given_seed():
    from sea_tf.classify import mlp
    feats = synthetic_features(n_folds=3)
    y = feats.y
    runs = [mlp.train_mlp(feats.x, y, 3, feats.x[:12], y[:12], cfg=FAST_MLP["mlp"], seed=s, progress=False)[0]
            for s in (5, 5, 6)]
    w = [np.concatenate([v.ravel() for v in m.get_weights()]) for m in runs]
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.allclose(w[0], w[2])
    # The scaler is the first layer: raw embeddings in, the training-frame statistics inside.
    np.testing.assert_allclose(runs[0].get_layer("scaler").mean.numpy().ravel(), feats.x.mean(0), rtol=1e-5)


def test_crossval_resumes_finished_folds(tmp_path):
    feats = synthetic_features(n_folds=3)
    cross_validate(feats, tmp_path, clf_cfg=FAST_MLP, seed=1, test_folds=[1], progress=False, workers=1)
    first = (tmp_path / "fold-1.json").stat().st_mtime_ns
    full = cross_validate(feats, tmp_path, clf_cfg=FAST_MLP, seed=1, progress=False, workers=1)
    assert (tmp_path / "fold-1.json").stat().st_mtime_ns == first
    assert sorted(full["per_fold"]) == ["1", "2", "3"]


# ------------------------------------------------------------------------------------------ bad input

def test_empty_fold_is_an_error(tmp_path):
    feats = synthetic_features(n_folds=4)
    feats.clips.fold_ids = [1, 2, 3, 4, 5]
    with pytest.raises(ClassifyError, match=r"fold\(s\) \[5\] have no clips"):
        cross_validate(feats, tmp_path, clf_cfg=FAST_MLP, seed=0, progress=False, workers=1)


def test_class_never_trained_warns_with_clip_names():
    folds = np.array([1, 1, 2, 2, 3, 3])
    labels = np.array([0, 1, 0, 1, 0, 2])
    names = [f"c{i}.wav" for i in range(6)]
    with pytest.warns(SeaTFWarning) as caught:
        protocol.check_folds(folds, labels, names, folds=[1, 2, 3], classes=CLASSES)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "test fold 2: class(es) ['mid'] never appear in its training folds [3]" in messages[0]
    assert messages[0].endswith("c3.wav")
    assert "test fold 3: class(es) ['high']" in messages[1] and messages[1].endswith("c5.wav")


# ------------------------------------------------------------------------------------------ features + cache

@pytest.fixture
def tiny_wavs(tmp_path):
    """24 clips (3 tone classes x 2 x 4 folds), 0.5-2 s, at 16 kHz (resampled to the model's 8 kHz)."""
    rng = np.random.default_rng(7)
    names, paths, folds, labels = [], [], [], []
    for fold in range(1, 5):
        for c, f0 in enumerate(FREQS):
            for j in range(2):
                dur = rng.uniform(0.5, 2.0)
                t = np.arange(int(dur * 16000)) / 16000
                audio = 0.3 * np.sin(2 * np.pi * f0 * rng.uniform(0.95, 1.05) * t) + 0.02 * rng.normal(size=len(t))
                name = f"{fold}-{c}-{j}.wav"
                path = tmp_path / "audio" / f"fold{fold}" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, audio.astype(np.float32), 16000)
                names.append(name), paths.append(path), folds.append(fold), labels.append(c)
    return ClipSet(names=names, paths=paths, folds=np.array(folds), labels=np.array(labels), classes=CLASSES,
                   fold_ids=[1, 2, 3, 4], kind="toy")


def test_extraction_frames_and_cache_invalidation(tiny_wavs, tmp_path):
    cache = tmp_path / "cache"
    calls = []
    feats = extract_features(tiny_wavs, band_embedder(calls=calls), cache, hop_size=0.25, framing="centered",
                             progress=False, max_failed_fraction=0.05)
    assert feats.stats["computed"] == 24 and feats.x.shape[1] == 8
    # openl3 framing, centred: n = 1 + ceil((len + sr/2 - sr) / hop) windows (1 when shorter)
    for i, path in enumerate(tiny_wavs.paths):
        n = sf.info(path).frames * 8000 // 16000
        expected = 1 if n + 4000 <= 8000 else 1 + int(np.ceil((n + 4000 - 8000) / 2000))
        assert (feats.frame_clip == i).sum() == expected
    assert np.array_equal(feats.frame_fold, tiny_wavs.folds[feats.frame_clip])
    again = extract_features(tiny_wavs, band_embedder(calls=calls), cache, hop_size=0.25, framing="centered",
                             progress=False, max_failed_fraction=0.05)
    assert again.stats == {"computed": 0, "cached": 24, "stale_model": 0, "stale_audio": 0}
    np.testing.assert_array_equal(again.x, feats.x)
    n_calls = len(calls)
    # Same name, different model: every cached file is detected as stale and recomputed.
    with pytest.warns(SeaTFWarning, match="different model"):
        other = extract_features(tiny_wavs, band_embedder(key="model-b", calls=calls), cache, hop_size=0.25,
                                 framing="centered",
                                 progress=False, max_failed_fraction=0.05)
    assert other.stats["stale_model"] == 24 and other.stats["computed"] == 24 and len(calls) == n_calls + 24
    # Changed audio is recomputed too.
    sf.write(tiny_wavs.paths[0], np.zeros(4000, np.float32) + 0.1, 16000)
    with pytest.warns(SeaTFWarning, match="changed on disk"), pytest.warns(SeaTFWarning, match="zero-padded"):
        changed = extract_features(tiny_wavs, band_embedder(key="model-b"), cache, hop_size=0.25, framing="centered",
                                   progress=False, max_failed_fraction=0.05)
    assert changed.stats["stale_audio"] == 1 and changed.stats["cached"] == 23


def test_missing_audio_is_skipped_with_its_name_or_fails(tiny_wavs, tmp_path):
    tiny_wavs.paths[3].unlink()
    with pytest.warns(SeaTFWarning, match=r"skipped 1 of 24 clips.*1-1-1.wav"):
        feats = extract_features(tiny_wavs, band_embedder(), tmp_path / "c", hop_size=0.5, framing="centered",
                                 max_failed_fraction=0.1, progress=False)
    assert 3 not in feats.frame_clip and "1-1-1.wav" in feats.failed
    with pytest.raises(DataError, match="1-1-1.wav.*metadata and the audio on disk disagree"):
        extract_features(tiny_wavs, band_embedder(), tmp_path / "c", hop_size=0.5, framing="centered",
                         max_failed_fraction=0.0,
                         progress=False)


def test_tone_dataset_end_to_end(tiny_wavs, tmp_path):
    feats = extract_features(tiny_wavs, band_embedder(), tmp_path / "cache", hop_size=0.25, framing="centered",
                             progress=False, max_failed_fraction=0.05)
    summary = cross_validate(feats, tmp_path / "bands", clf_cfg=FAST_MLP, seed=0, progress=False, workers=1)
    assert summary["accuracy_mean"] >= 0.9 and len(summary["folds"]) == 4
    assert summary["folds"][0]["validation_fold"] == 4


def test_l3e_framing_drops_the_tail():
    sr, hop = 8000, 0.1
    frames, ts = frame_l3e(np.arange(10 * sr, dtype=np.float32), sr, hop_size=hop)
    assert frames.shape == (91, sr)                       # docs/PROTOCOL.md §3.5: a 10-s clip gives 91 frames
    assert frames[1, 0] == 800 and ts[-1] == pytest.approx(9.0)
    frames, _ = frame_l3e(np.arange(int(2.55 * sr), dtype=np.float32), sr, hop_size=hop)
    assert len(frames) == 16 and frames[-1, -1] == 1.5 * sr + sr - 1   # the last 0.05 s are dropped
    short, _ = frame_l3e(np.ones(6000, np.float32), sr, hop_size=hop)
    assert short.shape == (1, sr) and short[0, :1000].sum() == 0 and short[0, 1000:7000].all()


def test_svm_alternative_chooses_C_on_validation(tmp_path):
    feats = synthetic_features(n_folds=3, spread=1.5)
    summary = cross_validate(feats, tmp_path, clf_cfg={"type": "svm", "svm": {"C_grid": [0.01, 1.0]}}, seed=0,
                             progress=False, workers=1)
    assert summary["classifier"] == "svm" and summary["accuracy_mean"] >= 0.8
    for fold in summary["folds"]:
        assert fold["training"]["C"] in (0.01, 1.0) and set(fold["training"]["val_accuracy"]) == {"0.01", "1.0"}


def test_tflite_model_spec_goes_through_the_device_harness(tiny_wavs, tmp_path):
    """`--model x.tflite`: windows embedded by the LiteRT interpreter via device.runner.load_artifact."""
    pytest.importorskip("device.runner")
    from sea_tf.backend import keras, tf
    from sea_tf.classify.features import open_embedder

    keras.utils.set_random_seed(0)
    inp = keras.Input((8000,))
    x = keras.layers.Reshape((80, 100))(inp)
    x = keras.layers.Lambda(lambda t: tf.reduce_mean(tf.abs(t), axis=2))(x)
    model = keras.Model(inp, keras.layers.Dense(8)(x))
    path = tmp_path / "tiny.fp32.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    card = {"name": "tiny", "kind": "student", "sample_rate": 8000, "frame_samples": 8000, "embedding_size": 8}
    path.with_suffix(".json").write_text(json.dumps({
        "model_card": card, "mode": "fp32", "frontend_in_model": True, "frontend": None,
        "input": {"kind": "raw_audio", "shape": [1, 8000], "dtype": "float32"},
        "sha256": __import__("hashlib").sha256(path.read_bytes()).hexdigest()}))
    embedder = open_embedder(str(path))
    assert (embedder.name, embedder.sample_rate, embedder.card["name"]) == ("tiny.fp32", 8000, "tiny")
    feats = extract_features(tiny_wavs.subset(tiny_wavs.folds == 1), embedder, tmp_path / "cache", hop_size=0.5,
                             framing="centered",
                             progress=False, max_failed_fraction=0.05)
    from sea_tf.classify.features import clip_frames
    frames, _ = clip_frames(tiny_wavs.paths[0], 8000, 0.5, "centered")
    np.testing.assert_allclose(feats.x[feats.frame_clip == 0], model(frames).numpy(), rtol=1e-4, atol=1e-5)


def test_results_name_the_file_they_evaluated(tiny_wavs, tmp_path):
    """results.json and comparison.json carry model_sha256 (+ source_sha256 for a .tflite): sea-tf report joins on them."""
    pytest.importorskip("device.runner")
    import hashlib

    from sea_tf.backend import keras, tf
    from sea_tf.classify.benchmark import run_benchmark

    keras.utils.set_random_seed(0)
    inp = keras.Input((8000,))
    x = keras.layers.Reshape((80, 100))(inp)
    x = keras.layers.Lambda(lambda t: tf.reduce_mean(tf.abs(t), axis=2))(x)
    path = tmp_path / "tiny.fp32.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, keras.layers.Dense(8)(x))).convert())
    card = {"name": "tiny", "kind": "student", "sample_rate": 8000, "frame_samples": 8000, "embedding_size": 8}
    source = "ab" * 32
    path.with_suffix(".json").write_text(json.dumps({
        "model_card": card, "mode": "fp32", "frontend_in_model": True, "frontend": None,
        "input": {"kind": "raw_audio", "shape": [1, 8000], "dtype": "float32"},
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "source": {"path": "runs/a/student.keras", "name": "student.keras", "sha256": source}}))
    out = tmp_path / "out"
    with pytest.warns(SeaTFWarning, match="untrained preset"):
        table = run_benchmark(tiny_wavs, [str(path), "sea-64"], out, features_cfg={"hop_size": 0.5},
                              clf_cfg={"mlp": {"hidden": [8], "epochs": 2, "patience": 1}}, seed=0, test_folds=[1],
                              progress=False, workers=1)
    tflite_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    results = json.loads((out / "tiny.fp32" / "results.json").read_text())
    assert results["model_sha256"] == tflite_sha and results["source_sha256"] == source
    assert table["models"]["tiny.fp32"]["model_sha256"] == tflite_sha
    assert table["models"]["tiny.fp32"]["source_sha256"] == source
    preset = json.loads((out / "sea-64" / "results.json").read_text())
    assert preset["model_sha256"] is None and "source_sha256" not in preset   # a preset: no file
    assert preset["spec"] == "sea-64" and preset["weights"] == "untrained"
