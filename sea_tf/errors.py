"""sea-tf's error types. The CLI turns any :class:`SeaTFError` into one line.

Messages say what went wrong, which file, and what to do about it.
"""


class SeaTFError(Exception):
    """Base class of every error sea-tf raises on purpose."""


class ConfigError(SeaTFError):
    """A config file, a ``--set`` override or a command-line value is invalid."""


class OutputError(SeaTFError):
    """An output location exists, is not writable, or holds something else."""


class AudioError(SeaTFError):
    """Audio that cannot be read or is unusable (empty, NaN, wrong shape, bad rate)."""


class DataError(SeaTFError):
    """A dataset (metadata, folds, shards, manifests) is missing or malformed."""


class ModelError(SeaTFError):
    """A model spec, weight file or model card is missing or does not match."""


class ReduceError(SeaTFError):
    """Sampling or reduction inputs are inconsistent."""


class TrainError(SeaTFError):
    """Distillation inputs or run directories are inconsistent."""


class ExportError(SeaTFError):
    """TFLite conversion failed or produced something a plain interpreter cannot run."""


class ClassifyError(SeaTFError):
    """Downstream classification inputs are inconsistent."""


class RemoteError(SeaTFError):
    """A remote (SSH) device run failed."""


class WeightsError(SeaTFError):
    """Fetching, verifying or importing published weights failed."""


class SlurmError(SeaTFError):
    """``sbatch`` is not installed, refused an array, or the array can never start."""


class SeaTFWarning(UserWarning):
    """Something sea-tf could work around but the user should know about."""
