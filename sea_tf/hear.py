"""The HEAR 2021 common API, so any sea-tf model can be scored with the HEAR evaluation kit.

Usage with the kit: ``python -m heareval.embeddings.runner sea_tf.hear --model PATH_OR_PRESET``.

- :func:`load_model` → a model object with ``sample_rate``, ``scene_embedding_size`` and
  ``timestamp_embedding_size``;
- :func:`get_timestamp_embeddings` → ``(embeddings [n_sounds, n_timestamps, D], timestamps [n_sounds,
  n_timestamps] in ms)``, windows centred on the timestamps, 50 ms apart (HEAR's upper bound);
- :func:`get_scene_embeddings` → ``[n_sounds, D]``, the mean of the timestamp embeddings.

Audio arrives at the model's ``sample_rate`` (the kit resamples). Outputs are ``tf.Tensor``.
"""
import numpy as np

from sea_tf.audio import frame_audio
from sea_tf.backend import tf
from sea_tf.errors import AudioError

#: Seconds between timestamp embeddings (HEAR asks for at most 50 ms).
HEAR_HOP_SIZE = 0.05


class HearModel(tf.Module):
    """A :class:`~sea_tf.models.SeaModel` with the attributes the HEAR API asks for.

    A ``tf.Module``, which is what the HEAR validator expects of a TensorFlow model.

    Attributes
    ----------
    seamodel : SeaModel
    sample_rate : int
        Hz of the audio the model takes.
    scene_embedding_size, timestamp_embedding_size : int
        Both the model's embedding size D.
    """

    def __init__(self, seamodel, batch_size=64):
        super().__init__(name="sea_tf_hear_model")
        self.seamodel = seamodel
        self.sample_rate = seamodel.sample_rate
        self.scene_embedding_size = seamodel.embedding_size
        self.timestamp_embedding_size = seamodel.embedding_size
        self.batch_size = batch_size


def load_model(model_file_path="", **kwargs):
    """Load a sea-tf model for HEAR.

    Parameters
    ----------
    model_file_path : str
        Anything :func:`sea_tf.models.load_model` accepts (a saved ``.keras``, a published ``.h5``,
        a preset or catalogue name). Empty means the ``sea-64`` preset.
    **kwargs
        Passed to :func:`sea_tf.models.load_model`.

    Returns
    -------
    HearModel
    """
    from sea_tf.models import load_model as load_seamodel
    return HearModel(load_seamodel(model_file_path or "sea-64", **kwargs))


def _as_batch(audio):
    audio = audio.numpy() if isinstance(audio, tf.Tensor) else np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"HEAR audio must be a non-empty [n_sounds, n_samples] array; got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)


def get_timestamp_embeddings(audio, model):
    """Embeddings at regular timestamps for each sound.

    Parameters
    ----------
    audio : np.ndarray or tf.Tensor [shape=(n_sounds, n_samples)]
        At ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    embeddings : tf.Tensor [shape=(n_sounds, n_timestamps, D), dtype=float32]
    timestamps : tf.Tensor [shape=(n_sounds, n_timestamps), dtype=float32]
        Centre of each window in milliseconds (0, 50, 100, ...).
    """
    audio = _as_batch(audio)
    framed = [frame_audio(sound, model.sample_rate, hop_size=HEAR_HOP_SIZE, center=True, name=f"sound {i}")
              for i, sound in enumerate(audio)]
    frames = np.concatenate([f for f, _ in framed])
    emb = model.seamodel.embed_frames(frames, batch_size=model.batch_size)
    n_sounds, n_ts = len(framed), len(framed[0][1])
    emb = emb.reshape(n_sounds, n_ts, -1)
    ts = np.tile(framed[0][1] * 1000.0, (n_sounds, 1)).astype(np.float32)
    return tf.constant(emb), tf.constant(ts)


def get_scene_embeddings(audio, model):
    """One embedding per sound: the mean over its timestamp embeddings.

    Parameters
    ----------
    audio : np.ndarray or tf.Tensor [shape=(n_sounds, n_samples)]
    model : HearModel

    Returns
    -------
    tf.Tensor [shape=(n_sounds, D), dtype=float32]
    """
    emb, _ = get_timestamp_embeddings(audio, model)
    return tf.reduce_mean(emb, axis=1)
