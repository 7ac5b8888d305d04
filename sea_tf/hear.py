"""The HEAR 2021 common API, so any sea-tf model can be scored with the HEAR evaluation kit.

Usage with the kit: ``python -m heareval.embeddings.runner sea_tf.hear --model PATH_OR_PRESET``;
the submission validator ``python -m hearvalidator.validate sea_tf.hear --model PATH_OR_PRESET``
accepts every sea-tf model (API: https://hearbenchmark.com/hear-api.html; validator:
https://github.com/hearbenchmark/hear-validator, release 2021.0.6).

- :func:`load_model` → a model object with ``sample_rate``, ``scene_embedding_size`` and
  ``timestamp_embedding_size``;
- :func:`get_timestamp_embeddings` → ``(embeddings [n_sounds, n_timestamps, D], timestamps [n_sounds,
  n_timestamps] in ms)``;
- :func:`get_scene_embeddings` → ``[n_sounds, D]``, the mean of the timestamp embeddings.

Two things differ from ``sea_tf.embed.get_embedding`` and why:

- **Sample rate.** HEAR accepts only :data:`HEAR_SAMPLE_RATES`; an 8-kHz SEA student declares
  16000 Hz and the module resamples each sound to the model's own rate with
  :func:`sea_tf.audio.resample` (soxr HQ), the resampler ``sea-tf embed`` applies to a 16-kHz file,
  so a HEAR window holds exactly the samples the embed stage would give the model. A TensorFlow op
  was the alternative; TF has no band-limited resampler, and plain decimation would fold 4–8 kHz
  into the band the student hears. The 48-kHz teacher declares 48000 Hz and is not resampled.
- **Timestamps cover the whole clip.** Window ``k`` is centred on ``k * hop`` (openl3 centring:
  half a window of zeros before the clip) and windows continue, zero-padded, until the last centre
  that is still inside the clip, so the last timestamp is within one hop (50 ms) of the clip end.
  openl3/edgel3 framing stops half a window earlier (a 4-s clip ended at 3.5 s), which the HEAR
  validator flags because events in the last half second would have no embedding.

Audio arrives at ``model.sample_rate`` (the kit resamples task audio to it). The functions run
eagerly, as the kit and the validator call them; outputs are ``tf.Tensor``.
"""
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sea_tf.audio import check_audio, resample
from sea_tf.backend import tf
from sea_tf.errors import AudioError, ModelError

if TYPE_CHECKING:
    from sea_tf.models import SeaModel

#: Input rates (Hz) the HEAR 2021 API accepts (hearvalidator ``ValidateModel.ACCEPTABLE_SAMPLE_RATE``).
HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)

#: Seconds between timestamp embeddings (HEAR asks for at most 50 ms).
HEAR_HOP_SIZE = 0.05


def hear_sample_rate(model_sample_rate: int) -> int:
    """The rate (Hz) a model declares to HEAR: its own if HEAR accepts it, else the lowest accepted above.

    Going up means the module only ever resamples down to the model's rate, so the model sees
    the band it was trained on and nothing is invented.

    Parameters
    ----------
    model_sample_rate : int
        The model's own rate in Hz (8000 for SEA students, 48000 for the L3 teacher).

    Returns
    -------
    int
        One of :data:`HEAR_SAMPLE_RATES` (16000 for 8000).
    """
    for rate in HEAR_SAMPLE_RATES:
        if rate >= model_sample_rate:
            return rate
    raise ModelError(f"a model at {model_sample_rate} Hz cannot be offered to HEAR, which accepts at most "
                     f"{HEAR_SAMPLE_RATES[-1]} Hz; use a model whose card sample_rate is ≤ {HEAR_SAMPLE_RATES[-1]}")


class HearModel(tf.Module):
    """A :class:`~sea_tf.models.SeaModel` with the attributes the HEAR API asks for.

    A ``tf.Module``, which is how the HEAR validator recognises a TensorFlow model.

    Parameters
    ----------
    seamodel : SeaModel
    batch_size : int
        Windows per forward pass.

    Attributes
    ----------
    seamodel : SeaModel
    sample_rate : int
        Hz of the audio HEAR passes in (:func:`hear_sample_rate` of the model's rate).
    model_sample_rate : int
        Hz of the model's own 1-s windows; audio is resampled to it.
    hop_samples : int
        Samples between window centres at ``model_sample_rate`` (400 at 8 kHz, 2400 at 48 kHz).
    scene_embedding_size, timestamp_embedding_size : int
        Both the model's embedding size D.
    batch_size : int
    """

    def __init__(self, seamodel: "SeaModel", batch_size: int = 64) -> None:
        super().__init__(name="sea_tf_hear_model")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ModelError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.seamodel = seamodel
        self.model_sample_rate = int(seamodel.sample_rate)
        self.sample_rate = hear_sample_rate(self.model_sample_rate)
        # A whole number of samples, so window centres and timestamps never drift apart (at 22.05 kHz
        # 50 ms is 1102.5 samples; the reported timestamps follow the 1102 actually used).
        self.hop_samples = int(HEAR_HOP_SIZE * self.model_sample_rate)
        # Plain ints: the validator checks isinstance(..., int).
        self.scene_embedding_size = int(seamodel.embedding_size)
        self.timestamp_embedding_size = int(seamodel.embedding_size)
        self.batch_size = int(batch_size)


def load_model(model_file_path: str = "", **kwargs: Any) -> HearModel:
    """Load a sea-tf model for HEAR.

    Parameters
    ----------
    model_file_path : str
        Anything :func:`sea_tf.models.load_model` accepts (a saved ``.keras``, a published ``.h5``,
        a preset or catalogue name). Empty (what the validator passes without ``--model``) means
        sea-tf's default, the published SEA-64 from the weights cache
        (:data:`sea_tf.models.resolve.DEFAULT_MODEL`).
    **kwargs
        Passed to :func:`sea_tf.models.load_model`.

    Returns
    -------
    HearModel

    Raises
    ------
    ModelError
        Empty path and the published SEA-64 not in the weights cache (the message says how to fetch
        or import it), or a path that names no model.
    """
    from sea_tf.models import load_model as load_seamodel
    return HearModel(load_seamodel(model_file_path or None, **kwargs))


def _as_batch(audio: npt.ArrayLike | tf.Tensor) -> list[npt.NDArray[np.float32]]:
    batch = audio.numpy() if isinstance(audio, tf.Tensor) else np.asarray(audio)
    if batch.ndim != 2 or batch.shape[0] == 0 or batch.shape[1] == 0:
        raise AudioError(f"HEAR audio must be a non-empty [n_sounds, n_samples] array; got shape {batch.shape}")
    return [check_audio(sound, name=f"HEAR sound {i}") for i, sound in enumerate(batch)]


def hear_frames(sound: npt.NDArray[np.float32],
                model: HearModel) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """The 1-s windows and timestamps of one sound, HEAR style (see the module docstring).

    Parameters
    ----------
    sound : np.ndarray [shape=(n_samples,), dtype=float32]
        At ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    frames : np.ndarray [shape=(T, model.model_sample_rate), dtype=float32]
        A read-only strided view (no copy of the windows); window ``k`` is centred on timestamp ``k``.
    timestamps : np.ndarray [shape=(T,), dtype=float64]
        Milliseconds, ``k * hop_samples / model_sample_rate * 1000``; ``T = 1 + floor(duration / hop)``,
        so the last one is ≤ the clip's duration and within one hop of it.
    """
    sr_in, sr = model.sample_rate, model.model_sample_rate
    hop, width = model.hop_samples, model.seamodel.frame_samples
    # Integer arithmetic: centre k * hop / sr seconds lies inside the clip of n / sr_in seconds.
    count = 1 + (len(sound) * sr) // (sr_in * hop)
    native = resample(sound, sr_in, sr)
    before = width // 2
    after = max(0, (count - 1) * hop + width - before - len(native))
    padded = np.concatenate([np.zeros(before, np.float32), native, np.zeros(after, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, width)[::hop][:count]
    timestamps = np.arange(count, dtype=np.float64) * (hop * 1000.0 / sr)
    return frames, timestamps


def get_timestamp_embeddings(audio: npt.ArrayLike | tf.Tensor, model: HearModel) -> tuple[tf.Tensor, tf.Tensor]:
    """Embeddings at regular timestamps for each sound.

    Parameters
    ----------
    audio : np.ndarray or tf.Tensor [shape=(n_sounds, n_samples)]
        At ``model.sample_rate``, samples in [-1, 1].
    model : HearModel

    Returns
    -------
    embeddings : tf.Tensor [shape=(n_sounds, n_timestamps, D), dtype=float32]
    timestamps : tf.Tensor [shape=(n_sounds, n_timestamps), dtype=float32]
        Centre of each window in milliseconds (0, 50, 100, ... through the clip end).
    """
    sounds = _as_batch(audio)
    embeddings: list[npt.NDArray[np.float32]] = []
    timestamps = np.empty(0, np.float64)   # every sound's; _as_batch refuses an empty batch
    for sound in sounds:
        # One sound at a time keeps memory at one clip plus one batch (frames is a view).
        frames, timestamps = hear_frames(sound, model)
        embeddings.append(model.seamodel.embed_frames(frames, batch_size=model.batch_size))
    # Every sound has the same length, hence the same timestamps.
    ts = np.tile(timestamps.astype(np.float32), (len(sounds), 1))
    return tf.constant(np.stack(embeddings)), tf.constant(ts)


def get_scene_embeddings(audio: npt.ArrayLike | tf.Tensor, model: HearModel) -> tf.Tensor:
    """One embedding per sound: the mean over its timestamp embeddings.

    Parameters
    ----------
    audio : np.ndarray or tf.Tensor [shape=(n_sounds, n_samples)]
        At ``model.sample_rate``.
    model : HearModel

    Returns
    -------
    tf.Tensor [shape=(n_sounds, D), dtype=float32]
    """
    emb, _ = get_timestamp_embeddings(audio, model)
    return tf.reduce_mean(emb, axis=1)
