"""Where training runs: one device, several GPUs (MirroredStrategy) or several machines.

- ``kind="auto"`` uses :class:`tf.distribute.MirroredStrategy` when more than one GPU is visible
  (or more than one logical CPU device was configured), else the default (one-device) strategy.
- ``kind="multiworker"`` uses :class:`tf.distribute.MultiWorkerMirroredStrategy`. The cluster
  comes from ``TF_CONFIG`` when it is set, else from the SLURM step (``srun``) through
  :class:`tf.distribute.cluster_resolver.SlurmClusterResolver` (:func:`slurm_resolver`), else the
  process is a cluster of one. Every worker must see the same shards and the same run directory
  (a shared file system); only worker 0 keeps files (:func:`is_chief`, :func:`worker_dir`).
  How to launch: docs/CLUSTER.md and ``configs/slurm/distill-multiworker.sbatch``.
- The global batch is ``train.batch_size`` (64), split across the replicas, and the learning rate
  is left unchanged, as the original ``multi_gpu_model`` did (docs/PROTOCOL.md §3.4);
  ``train.scale_batch_with_replicas: true`` gives each replica ``batch_size`` instead.
  Every worker runs the same seeded input pipeline and keeps its own slice of each global batch
  (``AutoShardPolicy.DATA`` in :mod:`pipeline`), so a step sees the same rows on one worker with
  two replicas as on two workers with one each. Batch normalisation uses each replica's rows, as
  ``multi_gpu_model`` did, so the loss equals that of one worker with as many replicas, not that of
  one device (tests/test_multiworker.py).
- Checkpoints are ``tf.train.Checkpoint`` files of the plain (single-replica) variables, so they
  load on one device without conversion (the original code needed ``04_convert_multiGPU_singleGPU.py``).

Nothing here touches the environment at import time: GPUs are never hidden.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from sea_tf.backend import keras, tf
from sea_tf.errors import TrainError

KINDS = ("auto", "default", "mirrored", "multiworker")
#: What ``srun`` sets in each task of a job step; SlurmClusterResolver reads these.
SLURM_STEP_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")
#: Ports per node reserved for one job's tasks (port_base = FIRST_PORT + (job id mod JOB_SLOTS) × this).
PORTS_PER_JOB = 32
FIRST_PORT, JOB_SLOTS = 20000, 1000


def configure_cpu_devices(n: int | None) -> None:
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


def make_strategy(kind: str, *, cpu_devices: int | None) -> tf.distribute.Strategy:
    """The distribution strategy for ``kind``; see the module docstring.

    Returns
    -------
    tf.distribute.Strategy
    """
    if kind not in KINDS:
        raise TrainError(f"strategy.kind must be one of {', '.join(KINDS)}; got {kind!r}")
    configure_cpu_devices(cpu_devices)
    if kind == "multiworker":
        # None: TensorFlow reads TF_CONFIG (or, without it, runs a cluster of one).
        resolver = None if os.environ.get("TF_CONFIG") else slurm_resolver()
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


def slurm_resolver() -> tf.distribute.cluster_resolver.SlurmClusterResolver | None:
    """The cluster of the current ``srun`` step (from its ``SLURM_*`` variables), or None outside one.

    :class:`tf.distribute.cluster_resolver.SlurmClusterResolver` gives task ``k`` of a node the
    port ``port_base + k``, with ``port_base`` 8888 for every job, so two jobs sharing a node
    would collide; here ``port_base`` comes from the job id (``SEA_TF_PORT_BASE`` overrides it),
    so each job has :data:`PORTS_PER_JOB` ports of its own. The resolver only describes the
    cluster: GPUs are bound by SLURM (``--gres``/``--gpus-per-task``), not by rewriting
    ``CUDA_VISIBLE_DEVICES`` afterwards, and it is told of one nominal GPU per task because it
    cannot count the tasks of a node that has none (``gpus_per_task`` 0 is a range step of 0).

    Returns
    -------
    tf.distribute.cluster_resolver.SlurmClusterResolver or None
    """
    if not all(os.environ.get(name) for name in SLURM_STEP_VARIABLES):
        return None
    per_node = max(tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"]))
    return tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port_base(os.environ, per_node), gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False)


def tasks_per_node(value: str) -> list[int]:
    """Expand SLURM's ``SLURM_STEP_TASKS_PER_NODE`` (``"2(x3),1"`` → ``[2, 2, 2, 1]``)."""
    counts: list[int] = []
    for part in str(value).split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not match:
            raise TrainError(f"SLURM_STEP_TASKS_PER_NODE={value!r} is not in SLURM's format (e.g. 2(x3),1)")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def port_base(environ: Mapping[str, str], tasks_on_node: int) -> int:
    """First port of this job's tasks on a node (see :func:`slurm_resolver`); checked to fit."""
    if environ.get("SEA_TF_PORT_BASE"):
        source = "SEA_TF_PORT_BASE"
        try:
            base = int(environ["SEA_TF_PORT_BASE"])
        except ValueError:
            raise TrainError(f"SEA_TF_PORT_BASE={environ['SEA_TF_PORT_BASE']!r} is not a port number") from None
    else:
        if tasks_on_node > PORTS_PER_JOB:
            raise TrainError(f"{tasks_on_node} tasks on one node: at most {PORTS_PER_JOB} get ports of their own "
                             "per job; set SEA_TF_PORT_BASE to a free range of that many ports")
        job = int(environ.get("SLURM_JOB_ID") or 0)
        base, source = FIRST_PORT + (job % JOB_SLOTS) * PORTS_PER_JOB, f"job {job}"
    if not 1024 <= base or base + tasks_on_node - 1 > 65535:
        raise TrainError(f"ports {base}..{base + tasks_on_node - 1} ({source}) are outside 1024..65535; "
                         "set SEA_TF_PORT_BASE to a free range")
    return base


@contextlib.contextmanager
def worker_dir(run_dir: Path | str, *, chief: bool) -> Iterator[Path]:
    """Where a worker writes what every worker must write but only the chief keeps.

    Saving a multi-worker model reads its batch-norm statistics with a collective op, so every
    worker has to save; the chief writes into ``run_dir``, the others into a temporary directory
    that is removed on leaving the block (also on error).

    Yields
    ------
    Path
    """
    if chief:
        yield Path(run_dir)
        return
    scratch = Path(tempfile.mkdtemp(prefix="sea-tf-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes files (always, except non-zero workers of a multi-worker run)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (resolver.task_type == "worker" and resolver.task_id == 0)


def set_mixed_precision(enabled: bool) -> None:
    """Switch Keras to ``mixed_float16`` (or back to ``float32``) for layers built afterwards."""
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
