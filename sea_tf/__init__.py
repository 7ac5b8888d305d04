"""sea-tf: Specialized Embedding Approximation (SEA) from the L3 teacher to a Raspberry-Pi-class board.

The openl3/edgel3-style API is available at the top level (imported lazily, so that commands that
do not need TensorFlow start fast)::

    emb, ts = sea_tf.get_embedding(audio, sr)      # the published SEA-64 (edgel3/sea-64)
    sea_tf.process_file("clip.wav")

Like edgel3, the default model is trained: the published SEA-64 from the weights cache, put there
once with ``sea-tf models fetch edgel3/sea-64`` (or ``sea-tf models import PATH``).
"""
import os
from typing import TYPE_CHECKING

# Keras 2 must be selected before TensorFlow is first imported; see sea_tf/backend.py.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from sea_tf.errors import SeaTFError, SeaTFWarning  # noqa: E402

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from sea_tf.embed import get_embedding, get_output_path, process_file  # noqa: F401
    from sea_tf.models import load_model  # noqa: F401



def package_version() -> str:
    """Installed sea-tf version (``0+unknown`` when running from a plain checkout).

    The one version number is setup.cfg's; an installed sea-tf (wheel or editable) has it in its
    metadata. Cards and sidecars record it (``sea_tf_version``).
    """
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("sea-tf")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = package_version()

_LAZY = {
    "get_embedding": "sea_tf.embed",
    "process_file": "sea_tf.embed",
    "get_output_path": "sea_tf.embed",
    "load_model": "sea_tf.models",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sea_tf' has no attribute {name!r}")


__all__ = ["SeaTFError", "SeaTFWarning", "__version__", "package_version", *_LAZY]
