"""The board side of sea-tf: numpy, soundfile and a TFLite interpreter, nothing else.

This package is copied as-is onto a Raspberry-Pi-class board and run there with
``python -m device.bench`` (latency, memory, classification of files) or ``python -m device.listen``
(a microphone, file or stdin, live). It must never import TensorFlow, tf_keras or ``sea_tf``; it
shares numbers with the workstation library only through exported artifacts (``X.tflite`` +
``X.json``). Optional on the board: soxr (resampling) and sounddevice (microphones).

Reading order: ``runner`` (an artifact and its interpreter, batched offline inference),
``batching`` (batch 1 or N, whichever measures faster here, cached), ``frontends`` (the numpy
front end: fused per window, and streaming), ``audio`` (files and framing),
``stream`` (live sources, streaming resampling, the window ring), ``bench`` and ``listen`` (the
two commands), ``system`` (what the machine is). Keep this file free of imports so that
``import device.audio`` stays cheap.
"""
