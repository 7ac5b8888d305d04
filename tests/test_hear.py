"""The HEAR 2021 API wrapper: attributes, shapes, timestamps in ms, agreement with get_embedding."""
import numpy as np
import pytest

from sea_tf import hear
from sea_tf.backend import tf
from sea_tf.embed import get_embedding
from sea_tf.errors import AudioError


@pytest.fixture(scope="module")
def model():
    return hear.load_model("")          # the sea-64 preset


def test_attributes(model):
    assert model.sample_rate == 8000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 64
    assert isinstance(model, tf.Module)


def test_timestamp_and_scene_embeddings(model):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 9600))).astype(np.float32)        # 1.2 s at 8 kHz
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    # Centred 1-s windows every 50 ms: 1 + ceil((9600 + 4000 - 8000) / 400) = 15.
    assert tuple(emb.shape) == (2, 15, 64) and tuple(ts.shape) == (2, 15)
    np.testing.assert_allclose(ts.numpy()[1], np.arange(15) * 50.0)
    direct, _ = get_embedding(audio[1], 8000, model=model.seamodel, hop_size=hear.HEAR_HOP_SIZE)
    np.testing.assert_allclose(emb.numpy()[1], direct, rtol=1e-5, atol=1e-5)
    scene = hear.get_scene_embeddings(audio, model)
    assert tuple(scene.shape) == (2, 64)
    np.testing.assert_allclose(scene.numpy(), emb.numpy().mean(axis=1), rtol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(8000, np.float32), np.zeros((0, 8000), np.float32),
                                 np.full((1, 8000), np.nan, np.float32)])
def test_bad_audio(model, bad):
    with pytest.raises(AudioError):
        hear.get_timestamp_embeddings(bad, model)
