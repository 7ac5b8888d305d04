"""The one place where sea-tf chooses its Keras and imports TensorFlow.

tensorflow-model-optimization (pruning, quantization-aware training) only supports Keras 2,
which TensorFlow >= 2.16 ships separately as ``tf_keras``. ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is first imported so that ``tf.keras`` inside TensorFlow and tfmot resolve to
the same Keras 2 objects as our ``tf_keras`` imports. Every sea-tf module gets Keras from here::

    from sea_tf.backend import tf, keras

The import is quiet: ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) hides TensorFlow's C++
INFO and WARNING lines, and the start-up lines no log level reaches are dropped as described in
:mod:`sea_tf.tf_logs`. ``SEA_TF_DEBUG=1`` (``--debug`` on the command line) keeps everything.
"""
import contextlib
import os
import sys

from sea_tf import tf_logs

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if not tf_logs.debug_requested():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Already imported by the caller (a notebook, a test): its lines are printed, nothing to filter.
_quiet = tf_logs.quiet_stderr() if "tensorflow" not in sys.modules else contextlib.nullcontext()
with _quiet:
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    # Listing devices runs the CUDA probe now, inside the filter, instead of at the first op; it
    # does not create the runtime, so logical-device and memory settings can still be made later.
    tf.config.list_physical_devices()

__all__ = ["tf", "keras"]
