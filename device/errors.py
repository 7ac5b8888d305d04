"""The board side's error types (``device/`` cannot import ``sea_tf.errors``).

``python -m device.bench`` turns any :class:`DeviceError` into one line on stderr and a non-zero
exit code. Messages say what went wrong, which file, and what to do about it.
"""


class DeviceError(Exception):
    """Base class of every error the board-side harness raises on purpose."""


class ArtifactError(DeviceError):
    """A ``.tflite`` artifact or its ``.json`` sidecar is missing, corrupt or inconsistent."""


class InterpreterError(DeviceError):
    """No TFLite interpreter package is importable, or it cannot load the model."""


class AudioFileError(DeviceError):
    """An audio file cannot be read or is unusable."""


class DeviceWarning(UserWarning):
    """Something the harness can work around but the user should know about."""


class SourceError(DeviceError):
    """A live audio source (microphone, file, stdin) cannot be opened, or stops delivering audio."""
