"""sea-tf: Specialized Embedding Approximation (SEA) from the L3 teacher to a Raspberry-Pi-class board.

The openl3/edgel3-style API is available at the top level (imported lazily, so that commands that
do not need TensorFlow start fast)::

    emb, ts = sea_tf.get_embedding(audio, sr, model="sea-64")
    sea_tf.process_file("clip.wav", model="sea-64")
"""
import os

# Keras 2 must be selected before TensorFlow is first imported; see sea_tf/backend.py.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from sea_tf.errors import SeaTFError, SeaTFWarning  # noqa: E402

__version__ = "0.1.0"

_LAZY = {
    "get_embedding": "sea_tf.embed",
    "process_file": "sea_tf.embed",
    "get_output_path": "sea_tf.embed",
    "load_model": "sea_tf.models",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sea_tf' has no attribute {name!r}")


__all__ = ["SeaTFError", "SeaTFWarning", "__version__", *_LAZY]
