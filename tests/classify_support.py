"""Helpers shared by the classify tests: a cheap, deterministic stand-in for an embedding model."""
import numpy as np

from sea_tf.classify.features import Embedder


def band_embedder(key="model-a", name="bands", calls=None):
    """A cheap stand-in for an embedding model: log energy in 8 frequency bands of each window."""
    def embed(frames):
        if calls is not None:
            calls.append(len(frames))
        spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        bands = np.array_split(spec, 8, axis=1)
        return np.log10(np.stack([b.sum(1) for b in bands], axis=1) + 1e-6).astype(np.float32)
    return Embedder(name=name, key=key, card={"name": name}, sample_rate=8000, frame_samples=8000, embed_frames=embed)
