"""The one place where sea-tf chooses its Keras.

tensorflow-model-optimization (pruning, quantization-aware training) only supports Keras 2,
which TensorFlow >= 2.16 ships separately as ``tf_keras``. ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is first imported so that ``tf.keras`` inside TensorFlow and tfmot resolve to
the same Keras 2 objects as our ``tf_keras`` imports. Every sea-tf module gets Keras from here::

    from sea_tf.backend import tf, keras
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide CUDA-probe chatter on CPU machines

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
