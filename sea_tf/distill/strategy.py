"""Where training runs: one device, several GPUs (MirroredStrategy) or several machines.

- ``kind="auto"`` uses :class:`tf.distribute.MirroredStrategy` when more than one GPU is visible
  (or more than one logical CPU device was configured), else the default (one-device) strategy.
- ``kind="multiworker"`` uses :class:`tf.distribute.MultiWorkerMirroredStrategy`. On a SLURM
  cluster launch one task per node (``srun --ntasks-per-node=1 sea-tf distill ...``); the
  cluster spec comes from :class:`tf.distribute.cluster_resolver.SlurmClusterResolver`, which
  reads ``SLURM_JOB_NODELIST``, ``SLURM_PROCID`` etc. (the same information ``TF_CONFIG`` carries;
  when ``TF_CONFIG`` is set it is used instead). Every worker must see the same shards and the
  same run directory (a shared file system); only worker 0 writes files.
- The global batch is ``train.batch_size`` (64), split across the replicas, and the learning rate
  is left unchanged, as the original ``multi_gpu_model`` did (docs/PROTOCOL.md §3.4);
  ``train.scale_batch_with_replicas: true`` gives each replica ``batch_size`` instead.
- Checkpoints are ``tf.train.Checkpoint`` files of the plain (single-replica) variables, so they
  load on one device without conversion (the original code needed ``04_convert_multiGPU_singleGPU.py``).

Nothing here touches the environment at import time: GPUs are never hidden.
"""
import os

from sea_tf.backend import keras, tf
from sea_tf.errors import TrainError

KINDS = ("auto", "default", "mirrored", "multiworker")


def configure_cpu_devices(n):
    """Split the physical CPU into ``n`` logical devices (to test MirroredStrategy without GPUs).

    Must run before TensorFlow creates its context (before any op runs in this process).
    """
    n = int(n or 0)
    if n <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as exc:
        current = len(tf.config.list_logical_devices("CPU"))
        if current == n:
            return
        raise TrainError(f"strategy.cpu_devices = {n} must be set before TensorFlow starts (this process already "
                         f"has {current} CPU device(s)); run `sea-tf distill --cpu-devices {n}` in a fresh process") from exc


def make_strategy(kind="auto", cpu_devices=0):
    """The distribution strategy for ``kind``; see the module docstring.

    Returns
    -------
    tf.distribute.Strategy
    """
    if kind not in KINDS:
        raise TrainError(f"strategy.kind must be one of {', '.join(KINDS)}; got {kind!r}")
    configure_cpu_devices(cpu_devices)
    if kind == "multiworker":
        resolver = None
        if "TF_CONFIG" not in os.environ and "SLURM_JOB_NODELIST" in os.environ:
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if kind == "default":
        return tf.distribute.get_strategy()
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    if len(cpus) > 1 and not gpus:
        return tf.distribute.MirroredStrategy([c.name for c in cpus])
    if kind == "mirrored":
        device = gpus[0].name if gpus else cpus[0].name
        return tf.distribute.MirroredStrategy([device])
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes files (always, except non-zero workers of a multi-worker run)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (resolver.task_type == "worker" and resolver.task_id == 0)


def set_mixed_precision(enabled):
    """Switch Keras to ``mixed_float16`` (or back to ``float32``) for layers built afterwards."""
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
