"""``SeaModel``: a Keras model taking raw 1-s audio windows plus the card that describes it.

The Keras model is ``Input [B, frame_samples] → AudioFrontend → network``, where ``network`` is
a nested Keras model taking the front-end image ``[B, F, T, 1]`` (what ``.network()`` returns,
and what export and pruning work on). ``save("m.keras")`` writes ``m.keras`` and ``m.card.json``.
"""
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sea_tf import atomic, cards, package_version
from sea_tf.backend import keras, tf
from sea_tf.errors import ModelError
from sea_tf.models.frontends import AudioFrontend, frontend_macs
from sea_tf.models import safe_load
from sea_tf.models.architectures import network_macs

FRONTEND_LAYER = "frontend"
NETWORK_LAYER = "network"


def assemble(frontend_spec: dict[str, Any], network: keras.Model, name: str, *, dft: str = "rfft") -> keras.Model:
    """Wrap ``network`` behind an :class:`AudioFrontend`: a Keras model on raw audio windows.

    Parameters
    ----------
    frontend_spec : dict
        From :func:`sea_tf.models.frontends.frontend_spec`.
    network : keras.Model
        Takes ``[B, *frontend_spec["output_shape"]]``.
    name : str
        Keras model name.
    dft : {"rfft", "matmul"}

    Returns
    -------
    keras.Model
        ``[B, frame_samples]`` float32 → ``[B, D]``.
    """
    frame_samples = int(frontend_spec["sr"])
    audio = keras.Input(shape=(frame_samples,), name="audio")
    image = AudioFrontend(frontend_spec, dft=dft, name=FRONTEND_LAYER)(audio)
    return keras.Model(audio, network(image), name=name.replace("-", "_"))


def make_card(name: str, kind: str, architecture: dict[str, Any], frontend_spec: dict[str, Any], model: keras.Model,
              weights: dict[str, Any]) -> dict[str, Any]:
    """The model card (contract in docs/ARCHITECTURE.md) for an assembled Keras model."""
    network = model.get_layer(NETWORK_LAYER)
    dft = model.get_layer(FRONTEND_LAYER).dft
    macs_front = frontend_macs(frontend_spec, dft=dft)
    macs_net = network_macs(network)
    return {
        "name": name, "kind": kind, "architecture": dict(architecture),
        "sample_rate": int(frontend_spec["sr"]), "frame_length_s": 1.0,
        "frame_samples": int(model.input_shape[-1]), "embedding_size": int(model.output_shape[-1]),
        "frontend": dict(frontend_spec),
        "params": int(network.count_params()),
        "macs": {"frontend": macs_front, "network": macs_net, "total": macs_front + macs_net},
        "weights": dict(weights),
        "sea_tf_version": package_version(),
    }


class SeaModel:
    """A model on raw audio windows with its card.

    Parameters
    ----------
    keras_model : keras.Model
        ``[B, frame_samples]`` → ``[B, D]``, with layers named ``frontend`` and ``network``.
    card : dict
        See docs/ARCHITECTURE.md ("Card").

    Attributes
    ----------
    keras : keras.Model
    card : dict
    sample_rate : int
        Hz; windows are ``frame_samples`` samples (1 s).
    frame_samples : int
    embedding_size : int
    frontend : dict
        ``card["frontend"]``: which front end the model expects.
    """

    def __init__(self, keras_model: keras.Model, card: dict[str, Any]) -> None:
        self.keras = keras_model
        self.card = card
        self._forward: Callable[[tf.Tensor], tf.Tensor] | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.card["sample_rate"])

    @property
    def frame_samples(self) -> int:
        return int(self.card["frame_samples"])

    @property
    def embedding_size(self) -> int:
        return int(self.card["embedding_size"])

    @property
    def frontend(self) -> dict[str, Any]:
        return self.card["frontend"]

    @property
    def name(self) -> str:
        return self.card["name"]

    def network(self) -> keras.Model:
        """The body: a Keras model taking the front-end image ``[B, F, T, 1]`` (shares weights)."""
        return self.keras.get_layer(NETWORK_LAYER)

    def frontend_layer(self) -> AudioFrontend:
        """The :class:`~sea_tf.models.frontends.AudioFrontend` layer."""
        return self.keras.get_layer(FRONTEND_LAYER)

    def embed_frames(self, frames: npt.ArrayLike, *, batch_size: int = 32,
                     progress: Callable[[int], object] | None = None) -> npt.NDArray[np.float32]:
        """Embed raw audio windows.

        Parameters
        ----------
        frames : np.ndarray [shape=(N, frame_samples)]
            1-s windows at ``sample_rate``.
        batch_size : int
            Windows per forward pass.
        progress : callable, optional
            Called with the number of windows done after each batch (e.g. ``tqdm.update``).

        Returns
        -------
        np.ndarray [shape=(N, embedding_size), dtype=float32]
        """
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.frame_samples:
            raise ModelError(f"model {self.name!r} takes windows [N, {self.frame_samples}] at {self.sample_rate} Hz; "
                             f"got shape {frames.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ModelError(f"batch_size must be a positive integer, got {batch_size!r}")
        if self._forward is None:
            # One trace for every batch size; training=False keeps BN in inference mode.
            self._forward = tf.function(lambda x: self.keras(x, training=False), reduce_retracing=True,
                                        input_signature=[tf.TensorSpec([None, self.frame_samples], tf.float32)])
        out = np.empty((frames.shape[0], self.embedding_size), np.float32)
        for start in range(0, frames.shape[0], batch_size):
            batch = frames[start:start + batch_size]
            out[start:start + len(batch)] = self._forward(tf.constant(batch)).numpy()
            if progress is not None:
                progress(len(batch))
        return out

    def save(self, path: Path | str) -> Path:
        """Write ``path`` (a ``.keras`` file) and its card ``<stem>.card.json``; returns the path.

        The model file is written to a temporary directory beside ``path`` and renamed into place,
        so a crash never leaves a half-written model.
        """
        path = Path(path)
        if path.suffix != ".keras":
            raise ModelError(f"{path}: sea-tf models are saved as '.keras' files; use a name ending in .keras")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            tmp = tmp_dir / "model.keras"
            self.keras.save(tmp)
            atomic.replace(tmp, path)  # flushed before and after the rename: durable across a node crash
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        cards.write_card(path, self.card)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "SeaModel":
        """Read a model written by :meth:`save` (``.keras`` + ``.card.json``) without running code from it.

        Raises
        ------
        ModelError
            No file or card; a ``.keras`` name on anything but a Keras zip; a config holding a
            ``Lambda`` or naming a class outside Keras and sea-tf (:mod:`sea_tf.models.safe_load`).
        """
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file; check the path")
        card = cards.read_card(path, required=False)
        if card is None:
            raise ModelError(f"{path}: no card at {cards.card_path(path)}; sea-tf models are saved with "
                             "SeaModel.save, which writes both files")
        # A user-supplied file: a Keras zip only, safe mode, Keras built-ins and sea-tf's layers only
        # (sea_tf.models.safe_load says why a renamed HDF5 file is refused outright).
        return cls(safe_load.load_keras(path, what="model"), card)

    def __repr__(self) -> str:
        return (f"SeaModel({self.name!r}, {self.sample_rate} Hz, D={self.embedding_size}, "
                f"params={self.card['params']:,}, MACs={self.card['macs']['total']:,})")
