"""sea_tf.hear: the HEAR 2021 API, checked the way the official validator (hearvalidator 2021.0.6) checks it.

hearvalidator cannot be installed here: its metadata says Python < 3.9 and it imports torch at the
top of ``hearvalidator/validate.py``. When it is importable (e.g. a Python 3.8 environment with torch)
the tests run its own ``ValidateModel`` on the TensorFlow path; otherwise :func:`validator_checks`
repeats every check of its ``validate_model`` (sample rate, embedding sizes, timestamp embeddings,
scene embeddings, same white-noise inputs), with its warnings counted as failures.
"""
import warnings

import numpy as np
import pytest
import soxr

from sea_tf import hear
from sea_tf.audio import prepare_frames
from sea_tf.backend import tf
from sea_tf.errors import AudioError, ModelError, SeaTFWarning

try:  # only where the validator (Python < 3.9 + torch) is installed
    from hearvalidator.validate import ValidateModel
except ImportError:
    ValidateModel = None

#: (n_sounds, seconds) of the validator's three timestamp checks and of its scene check.
VALIDATOR_TIMESTAMP_CASES = ((2, 1.07), (2, 1.98), (2, 4.0))
VALIDATOR_SCENE_CASE = (4, 2.74)
#: The L3 teacher costs ~10 GMAC per window: short clips, 2-3 windows per sound, still two sounds a batch.
TEACHER_TIMESTAMP_CASES = ((2, 0.11),)
TEACHER_SCENE_CASE = (2, 0.06)


def _preset(name):
    # Seeded, untrained presets: the API checks need the architecture, not learnt weights, so the
    # "untrained preset" warning is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeaTFWarning)
        return hear.load_model(name)


@pytest.fixture(scope="module")
def student():
    return _preset("sea-64")


@pytest.fixture(scope="module")
def teacher():
    return _preset("l3-mel256-512")


def _white_noise(model, n_sounds, seconds):
    # The validator's input: uniform noise in [-1, 1) at the declared rate, int(seconds * rate) samples.
    return tf.random.uniform((n_sounds, int(seconds * model.sample_rate)), seed=1) * 2.0 - 1.0


def _check_timestamps(model, n_sounds, seconds):
    emb, ts = hear.get_timestamp_embeddings(_white_noise(model, n_sounds, seconds), model)
    assert emb.dtype == tf.float32
    emb, ts = emb.numpy(), ts.numpy()
    assert emb.ndim == 3 and ts.ndim == 2
    assert emb.shape[0] == n_sounds and emb.shape[:2] == ts.shape
    assert emb.shape[2] == model.timestamp_embedding_size
    assert ts.shape[1] > 1
    diff = np.diff(ts)
    avg = diff.mean()
    assert diff.max() <= 50.0                                   # validator: warning
    assert np.max(np.abs(diff - avg)) <= 1.0                    # validator: error
    assert ts.min() <= avg                                      # validator: warning
    length_ms = 1000.0 * seconds
    assert ts.max() >= length_ms - avg and ts.max() >= length_ms - 50.0, \
        f"timestamps end at {ts.max()} ms of a {length_ms} ms clip"  # validator: warning (the issue)
    assert ts.max() <= length_ms                                # validator: error


def _check_scene(model, n_sounds, seconds):
    emb = hear.get_scene_embeddings(_white_noise(model, n_sounds, seconds), model)
    assert emb.dtype == tf.float32
    assert emb.numpy().shape == (n_sounds, model.scene_embedding_size)


def validator_checks(model, timestamp_cases, scene_case):
    """Every check of hearvalidator 2021.0.6 ``ValidateModel.validate_model`` (TensorFlow path)."""
    assert isinstance(model, tf.Module)
    assert model.sample_rate in (16000, 22050, 32000, 44100, 48000)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    for n_sounds, seconds in timestamp_cases:
        _check_timestamps(model, n_sounds, seconds)
    _check_scene(model, *scene_case)


def _run_validator(spec, timestamp_cases, scene_case):
    """hearvalidator's own checks, failing on any warning it raises about the model."""
    validator = ValidateModel("sea_tf.hear", spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validator.import_model()
        validator.check_load_model()
        assert validator.model_type == "tf"
        validator.check_sample_rate()
        validator.check_embedding_size()
        if timestamp_cases == VALIDATOR_TIMESTAMP_CASES and scene_case == VALIDATOR_SCENE_CASE:
            validator.validate_model()
        else:                                   # the teacher: the same checks on shorter clips
            for n_sounds, seconds in timestamp_cases:
                validator._check_timestamp_embeddings(num_audio=n_sounds, length=seconds)
            emb = hear.get_scene_embeddings(_white_noise(validator.model, *scene_case), validator.model)
            assert emb.dtype == tf.float32 and emb.shape == (scene_case[0], validator.model.scene_embedding_size)
    # The validator always adds one general note on rounding drift; any other warning of its own is a
    # finding about the model (sea-tf's own SeaTFWarning, e.g. "untrained preset", is not).
    about_model = [str(w.message) for w in caught if not issubclass(w.category, SeaTFWarning)
                   and "A common bug" not in str(w.message)]
    assert not about_model, about_model


@pytest.mark.parametrize("spec, timestamp_cases, scene_case", [
    ("sea-64", VALIDATOR_TIMESTAMP_CASES, VALIDATOR_SCENE_CASE),
    ("l3-mel256-512", TEACHER_TIMESTAMP_CASES, TEACHER_SCENE_CASE),
], ids=["sea-64", "teacher"])
def test_validator_accepts(spec, timestamp_cases, scene_case, request):
    if ValidateModel is not None:
        _run_validator(spec, timestamp_cases, scene_case)
    else:
        model = request.getfixturevalue("student" if spec.startswith("sea") else "teacher")
        validator_checks(model, timestamp_cases, scene_case)


def test_declared_rates(student, teacher):
    assert (student.sample_rate, student.model_sample_rate, student.hop_samples) == (16000, 8000, 400)
    assert (teacher.sample_rate, teacher.model_sample_rate, teacher.hop_samples) == (48000, 48000, 2400)
    assert student.scene_embedding_size == student.timestamp_embedding_size == 64
    assert teacher.scene_embedding_size == teacher.timestamp_embedding_size == 512
    assert [hear.hear_sample_rate(r) for r in (8000, 16000, 22050, 24000, 44100, 48000)] == \
        [16000, 16000, 22050, 32000, 44100, 48000]
    with pytest.raises(ModelError, match="96000 Hz"):
        hear.hear_sample_rate(96000)


def test_published_student_by_path_and_by_default(sea64_h5, sea64_home):
    by_path = hear.load_model(str(sea64_h5))                 # validator --model PATH
    by_default = hear.load_model()                           # validator without --model
    for model in (by_path, by_default):
        assert (model.sample_rate, model.model_sample_rate, model.scene_embedding_size) == (16000, 8000, 64)
        assert model.seamodel.card["weights"]["source"] == "published"


def test_default_is_never_untrained(empty_weights_home):
    with pytest.raises(ModelError):
        hear.load_model()


def test_frames_are_the_embed_stage_windows_through_the_clip_end(student):
    rng = np.random.default_rng(0)
    sound = (0.1 * rng.standard_normal(19680)).astype(np.float32)        # 1.23 s at 16 kHz
    frames, ts = hear.hear_frames(sound, student)
    # Centres k * 50 ms for every k with k * 50 ms <= 1230 ms: 0 … 1200 ms.
    np.testing.assert_array_equal(ts, np.arange(25) * 50.0)
    # Independently: soxr HQ to 8 kHz, half a window of zeros in front, window k starts at k * 400.
    native = soxr.resample(sound, 16000, 8000, quality="HQ").astype(np.float32)
    padded = np.zeros(4000 + 24 * 400 + 8000, np.float32)
    padded[4000:4000 + len(native)] = native
    expected = np.stack([padded[k * 400:k * 400 + 8000] for k in range(25)])
    np.testing.assert_array_equal(frames, expected)
    # The windows sea-tf embed makes of the same 16-kHz clip are the first of them, sample for sample.
    embed_frames, embed_ts = prepare_frames(sound, 16000, 8000, hop_size=hear.HEAR_HOP_SIZE)
    assert len(embed_frames) == 16 and embed_ts[-1] == pytest.approx(0.75)  # openl3 framing stops at 0.75 s
    np.testing.assert_array_equal(frames[:16], embed_frames)

    emb, ts_batch = hear.get_timestamp_embeddings(np.stack([sound, -sound]), student)
    assert tuple(emb.shape) == (2, 25, 64)
    np.testing.assert_array_equal(ts_batch.numpy(), np.tile(ts.astype(np.float32), (2, 1)))
    # Same windows, same batches → the same float32 computation, bit for bit.
    np.testing.assert_array_equal(emb.numpy()[0],
                                  student.seamodel.embed_frames(expected, batch_size=student.batch_size))
    scene = hear.get_scene_embeddings(np.stack([sound, -sound]), student).numpy()
    # A float32 mean of 25 values rounds by at most 25 ulps of the largest magnitude.
    atol = 25 * np.finfo(np.float32).eps * np.abs(emb.numpy()).max()
    np.testing.assert_allclose(scene, emb.numpy().mean(axis=1), rtol=0, atol=atol)


def test_teacher_audio_is_not_resampled(teacher):
    sound = np.linspace(-0.5, 0.5, 5280, dtype=np.float32)              # 0.11 s at 48 kHz
    frames, ts = hear.hear_frames(sound, teacher)
    np.testing.assert_array_equal(ts, [0.0, 50.0, 100.0])
    np.testing.assert_array_equal(frames[2, 24000 - 4800:24000 - 4800 + 5280], sound)


def test_resampling_removes_what_8k_cannot_hold(student):
    t = np.arange(32000) / 16000.0
    above = (0.5 * np.sin(2 * np.pi * 6000.0 * t)).astype(np.float32)   # above the 4-kHz Nyquist of 8 kHz
    inside = (0.5 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    rms = [np.sqrt(np.mean(np.square(hear.hear_frames(x, student)[0][20, 2000:6000]))) for x in (above, inside)]
    # Negative control: plain decimation folds 6 kHz onto 2 kHz at full level.
    folded = np.sqrt(np.mean(np.square(above[::2][8000:10000])))
    assert folded > 0.3
    assert rms[0] < 1e-4                                                 # soxr HQ: > 70 dB below the tone
    assert rms[1] == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


@pytest.mark.parametrize("bad", [np.zeros(16000, np.float32), np.zeros((0, 16000), np.float32),
                                 np.full((1, 16000), np.nan, np.float32)])
def test_bad_audio(student, bad):
    with pytest.raises(AudioError):
        hear.get_timestamp_embeddings(bad, student)
