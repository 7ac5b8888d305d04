"""The board side of sea-tf: numpy, soundfile and a TFLite interpreter, nothing else.

This package is copied as-is onto a Raspberry-Pi-class board and run there with
``python -m device.bench``. It must never import TensorFlow, tf_keras or ``sea_tf``; it shares
numbers with the workstation library only through exported artifacts (``X.tflite`` + ``X.json``).
Keep this file free of imports so that ``import device.audio`` stays cheap.
"""
