"""``sea-tf teacher-embed``: run the teacher over in-domain audio and write student/teacher pairs in shards.

docs/PROTOCOL.md §3.0. For every 1-s window (teacher framing: hop ``hop_size``, default 0.5 s as the SONYC
upstream pairs, centred) one row holds the teacher embedding, the same window of the source
resampled once to the student's rate (so distillation never decodes audio again), the source file,
timestamp, loudness (dB) and, for UrbanSound8K, label and fold. With a sensor manifest (a CSV naming
each file's ``sensor_id`` and recording time, :mod:`sea_tf.sensors`, docs/PROTOCOL.md §3.1) every
row also holds its sensor and recording time, so ``sea-tf sample --group-by sensor-day`` can draw
per-sensor, per-day streams. Rows go to fixed-size shards (:mod:`sea_tf.shards`).

The entry point is :func:`extract` (``sea-tf teacher-embed``: the resolved ``teacher`` config in,
the job's summary out). Read top to bottom: :mod:`inputs` (the sorted input files; job K of N's share) → :mod:`jobs`
(which job this process is, and ``--status`` of every job) → :mod:`decode` (each file's windows at
both rates, decoded on worker threads ahead of inference; the stage's logger) → :mod:`extract`
(:func:`extract`; :func:`extract_files`, the same from explicit arguments: option checks, the job
plan, the loop, the shard writer). :mod:`standin` is the teacher used when none is named (the
published one when cached, else a calibrated, untrained L3): ``make demo`` and ``sea-tf tune``.

    from sea_tf import config
    from sea_tf.teacher import extract
    summary = extract(config.load("teacher", input="audio/", out="shards/", shard="0/4"))

Scale:

- **shardable**: job K of N takes every N-th file of the sorted list (``--shard K/N``, or the
  ``SLURM_ARRAY_TASK_*`` variables); jobs write disjoint ``shard-<K>of<N>-*`` files that
  :class:`~sea_tf.shards.ShardSet` reads as one table;
- **resumable**: the manifest lists every finished shard with the (file, window) where the next
  one starts; a re-run with the same command continues there. Inference batches never cross a
  shard boundary, so a resumed run computes exactly the batches an uninterrupted one does and
  ends byte-identical;
- **busy CPU**: a thread pool decodes and resamples the next files, and a writer thread writes
  shards, while the main thread runs inference;
- **robust**: unreadable files are logged, skipped and listed in the manifest and summary with
  their error kind: ``transient`` (the operating system failed: I/O, NFS, a timeout) or
  ``permanent`` (the file is not audio, or is malformed). A re-run of a finished job retries its
  transient failures (``retry_failed``: all of them) in a *retry pass* whose rows go to further
  shards, so no file is lost to a fault that has gone by the next run.
"""
from sea_tf.teacher.inputs import InputFile, list_inputs, partition
from sea_tf.teacher.jobs import (STATUS_DONE, STATUS_UNFINISHED, JobStatus, array_status, count_in,
                                 format_status, jobs_in, parse_job, parse_shard, resolve_job)
from sea_tf.teacher.decode import failure_kind, log
from sea_tf.teacher.extract import OUTPUT_KEYS, extract, extract_files, retryable, weights_sha256

__all__ = ["extract",
           "InputFile", "list_inputs", "partition",
           "STATUS_DONE", "STATUS_UNFINISHED", "JobStatus", "array_status", "count_in", "format_status",
           "jobs_in", "parse_job", "parse_shard", "resolve_job",
           "failure_kind", "log",
           "OUTPUT_KEYS", "extract_files", "retryable", "weights_sha256"]
