"""Embed one job's files with the teacher and write its shards and manifest (resumable).

Read top to bottom: :func:`extract` is the stage's entry point (``sea-tf teacher-embed``: the resolved
config in, the summary out); :func:`extract_files` takes the job's lock and runs four parts in turn:

- the option checks, :class:`_Options`;
- the job plan: :func:`_open_job` (the job's files, the teacher, the manifest: a resume's, checked
  against this run's settings, or a fresh one) and :func:`_plan_pass` (which files this pass
  reads, and where it starts; a finished job's *retry pass* reads only its failed files);
- the loop, :func:`_embed`: decoded blocks (:mod:`sea_tf.teacher.decode`) → rows → the teacher, a
  batch at a time → :class:`_ShardWriter`, which writes each full shard and then the manifest
  that lists it on a writer thread;
- the summary, :func:`_summary`.
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import hashlib
import json
import mmap
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, cast

import numpy as np
import numpy.typing as npt

from sea_tf import atomic, runlock
from sea_tf.audio import RESAMPLERS, resample
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, DataError, OutputError
from sea_tf.shards import canonical_sha256, job_name, new_manifest, read_manifest, shard_name, write_h5
from sea_tf.teacher.decode import _Block, _decode, _Prefetcher, log
from sea_tf.teacher.inputs import InputFile, list_inputs, partition
from sea_tf.teacher.jobs import resolve_job

if TYPE_CHECKING:
    from sea_tf.models import SeaModel

#: Manifest config keys that decide the bytes of the outputs; a resume must match all of them.
OUTPUT_KEYS = ("hop_size", "center", "student_sample_rate", "shard_rows", "batch_size", "compression",
               "limit_files", "shard", "resampler", "sensor_manifest_sha256")
_STRING_COLUMNS = ("source", "sensor_id")

#: Rows by column: a numpy array per column, a list of str for :data:`_STRING_COLUMNS` (``Any``: the
#: value's type depends on the key, which a dict type cannot say).
_Columns = dict[str, Any]
#: A manifest (``manifest-<job>.json``): a JSON document, :func:`sea_tf.shards.new_manifest`.
_Manifest = dict[str, Any]
#: ``[source, sensor_id, recording time (Unix s)]`` of each file of a job (:func:`_file_sensors`).
_FileSensors = list[list[Any]]


def weights_sha256(seamodel: SeaModel) -> str:
    """sha256 over the model's weight arrays (what a resume must match besides the card)."""
    digest = hashlib.sha256()
    for w in seamodel.keras.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def retryable(manifest: _Manifest, *, retry_failed: bool) -> list[int]:
    """Positions (in the job's file list) of the failed files a re-run retries, sorted.

    Transient failures always; permanent ones too with ``retry_failed``. A failure recorded by an
    older sea-tf has no kind and counts as transient: retrying it costs one read.
    """
    return sorted({int(f["pos"]) for f in manifest.get("failed", [])
                   if retry_failed or f.get("kind", "transient") == "transient"})


def extract(cfg: Config) -> dict[str, Any]:
    """``sea-tf teacher-embed``: embed the job's files of ``cfg["input"]`` and write its shards (resumable).

    Parameters
    ----------
    cfg : dict
        The resolved ``teacher`` config (``configs/teacher/defaults.yaml``;
        ``sea_tf.config.load("teacher", input=..., out=...)``). The job is ``cfg["shard"]``, else
        that of a SLURM array task, else 0/1 (:func:`sea_tf.teacher.jobs.resolve_job`).

    Returns
    -------
    dict
        :func:`extract_files`' summary. The resolved config is written beside the shards as
        ``teacher-embed-<job>.config.yaml``, unless the job was already complete
        (``already_complete: True``; then nothing is written).
    """
    out = Path(cfg["out"])
    k, n = resolve_job(cfg["shard"], shard_count=cfg["shard_count"], out_dir=out)
    summary = extract_files(cfg["input"], out, cfg["teacher"], hop_size=cfg["hop_size"], center=cfg["center"],
                            student_sample_rate=cfg["student_sample_rate"], shard_rows=cfg["shard_rows"],
                            batch_size=cfg["batch_size"], shard=f"{k}/{n}", recursive=cfg["recursive"],
                            limit_files=cfg["limit_files"], compression=cfg["compression"],
                            decode_workers=cfg["decode_workers"], prefetch_blocks=cfg["prefetch_blocks"],
                            block_windows=cfg["block_windows"], read_retries=cfg["read_retries"],
                            read_backoff_s=cfg["read_backoff_s"], retry_failed=cfg["retry_failed"],
                            progress=cfg["progress"], resampler=cfg["resampler"],
                            sensor_manifest=cfg["sensor_manifest"])
    if not summary.get("already_complete"):   # a complete job's directory is not rewritten
        write_resolved(cfg, out, f"teacher-embed-{job_name(k, n)}")
    return summary


def extract_files(inputs: Path | str, out_dir: Path | str, teacher: str | Path | SeaModel, *, hop_size: float,
                  center: bool, student_sample_rate: int, shard_rows: int, batch_size: int,
                  shard: str | None = None, recursive: bool, limit_files: int | None = None,
                  compression: str | None = None, decode_workers: int, prefetch_blocks: int,
                  progress: bool, environ: Mapping[str, str] | None = None, resampler: str,
                  sensor_manifest: Path | str | None = None, block_windows: int, read_retries: int,
                  read_backoff_s: float, shard_count: int | None = None,
                  retry_failed: bool) -> dict[str, Any]:
    """Embed every window of the inputs with the teacher and write shards + manifest (resumable).

    Parameters
    ----------
    inputs : str or Path
        Audio directory, ``.txt`` file list or UrbanSound8K root (see :func:`list_inputs`).
    out_dir : str or Path
        Output directory (shared by all jobs of a run).
    teacher : str, Path or SeaModel
        Any model spec :func:`sea_tf.models.load_model` accepts.
    hop_size : float
        Seconds between windows (0.5 = the SONYC upstream pairs).
    center : bool
        Centre window k on ``k * hop_size``.
    student_sample_rate : int
        Hz of the stored student windows (``audio`` is ``[n, student_sample_rate]``).
    shard_rows : int
        Rows per shard file (the last one may be shorter).
    batch_size : int
        Windows per teacher forward pass.
    shard : str, optional
        ``"K/N"``; else K of a SLURM array task (:func:`sea_tf.teacher.jobs.resolve_job`), else 0/1.
    shard_count : int, optional
        N for a SLURM array task (``--shard-count``); else the N of the manifests in ``out_dir``.
    recursive : bool
    limit_files : int, optional
        Use only the first files of the sorted list (before partitioning): quick runs.
    compression : {None, "gzip", "lzf"}
    decode_workers, prefetch_blocks : int
        Decoding threads, and how many blocks of ``block_windows`` windows they may hold ahead of
        inference (all files together: memory does not grow with a file's length).
    progress : bool
    environ : mapping, optional
        For SLURM variables (tests).
    resampler : {"soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast"}
        For both rates (:func:`sea_tf.audio.resample`); resampy's filters match the published
        features exactly (an optional extra), soxr is what the board uses.
    sensor_manifest : str or Path, optional
        CSV with columns ``file, sensor_id, timestamp`` (:func:`sea_tf.sensors.read_sensor_manifest`)
        naming every input file; rows then carry ``sensor_id`` and ``recording_time`` (Unix s, UTC).
    block_windows : int
        Windows per decoded block (:func:`sea_tf.audio.stream_windows`); the outputs do not depend on it.
    read_retries, read_backoff_s : int, float
        A transient read error (an ``OSError``: NFS, a mount not up) is retried this many times per
        file, waiting ``read_backoff_s * 2**i`` s before retry ``i``, before the file is recorded as
        failed; a file that is not audio fails at once.
    retry_failed : bool
        A re-run of a finished job retries its permanent failures too (transient ones always are).

    Returns
    -------
    dict
        The summary (also written to ``summary-<job>.json``): rows, shards, failed files, wall
        time, windows/s and CPU utilisation. For a job already complete, nothing is written: the
        summary of the run that completed it, with ``already_complete: True`` and
        ``windows_this_run: 0``.
    """
    k, n = resolve_job(shard, shard_count=shard_count, out_dir=out_dir, environ=environ)
    name = job_name(k, n)
    # One process per job while it runs: a second one would write the same shards and manifest.
    with runlock.locked(out_dir, command=f"teacher-embed job {name}", name=f".lock-{name}"):
        options = _Options(hop_size=hop_size, center=center, student_sample_rate=student_sample_rate,
                           shard_rows=shard_rows, batch_size=batch_size, recursive=recursive,
                           limit_files=limit_files, compression=compression, decode_workers=decode_workers,
                           prefetch_blocks=prefetch_blocks, progress=progress, resampler=resampler,
                           sensor_manifest=sensor_manifest, block_windows=block_windows,
                           read_retries=read_retries, read_backoff_s=read_backoff_s)
        options.check()
        # Again with the lock held: the manifests in out_dir are now those this job resumes from.
        resolve_job(f"{k}/{n}", shard_count=n, out_dir=out_dir, environ=environ)
        job = _open_job(inputs, Path(out_dir), teacher, k=k, n=n, options=options)
        manifest = job.manifest
        if manifest["complete"]:
            again = retryable(manifest, retry_failed=retry_failed)
            if not again:
                kept = len(manifest["failed"])
                print(f"teacher-embed: job {name} already complete in {job.out_dir} ({manifest['n_rows']} rows); "
                      "nothing to do"
                      + (f" ({kept} file(s) failed permanently; --retry-failed tries them again)" if kept else ""))
                return _finished_summary(job.out_dir, manifest)
            print(f"teacher-embed: job {name} retrying {len(again)} failed file(s)")
            _begin_retry_pass(manifest, again)
        if not job.files:
            raise DataError(f"{inputs}: job {name} has no files (only {n} jobs for fewer files); use fewer jobs")
        plan = _plan_pass(manifest, len(job.files))
        job.out_dir.mkdir(parents=True, exist_ok=True)
        return _embed(job, plan, options)


# -- the option checks ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Options:
    """:func:`extract_files`' settings as given (see its parameters); :meth:`check` refuses bad ones."""
    hop_size: float
    center: bool
    student_sample_rate: int
    shard_rows: int
    batch_size: int
    recursive: bool
    limit_files: int | None
    compression: str | None
    decode_workers: int
    prefetch_blocks: int
    progress: bool
    resampler: str
    sensor_manifest: Path | str | None
    block_windows: int
    read_retries: int
    read_backoff_s: float

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first bad setting."""
        for name, value in (("shard_rows", self.shard_rows), ("batch_size", self.batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name, value, least in (("block_windows", self.block_windows, 1),
                                   ("prefetch_blocks", self.prefetch_blocks, 1),
                                   ("read_retries", self.read_retries, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.compression not in (None, "gzip", "lzf"):
            raise ConfigError(f"compression must be null, gzip or lzf; got {self.compression!r}")
        if self.resampler not in RESAMPLERS:
            raise ConfigError(f"resampler must be one of {', '.join(RESAMPLERS)}; got {self.resampler!r}")
        if self.resampler != "soxr-hq":
            # resampy installed? (a clear error if not)
            resample(np.zeros(8, np.float32), 16000, 8000, method=self.resampler)


# -- the job plan --------------------------------------------------------------------------------

@dataclass
class _Job:
    """One job of a run (:func:`_open_job`): its files, the teacher and the job's manifest."""
    inputs: Path | str                 # as given to extract_files (for messages)
    out_dir: Path
    name: str                          # "KofN" (:func:`sea_tf.shards.job_name`)
    files: list[InputFile]             # the job's share of the sorted inputs
    sensors: _FileSensors | None       # one entry per file, with a sensor manifest
    model: SeaModel
    manifest: _Manifest                # updated in place as shards are written
    manifest_path: Path


def _open_job(inputs: Path | str, out_dir: Path, teacher: str | Path | SeaModel, *, k: int, n: int,
              options: _Options) -> _Job:
    """Job ``k`` of ``n``: its files, the teacher, and the manifest a resume continues (else a fresh one).

    Raises :class:`OutputError` when ``out_dir`` was made with another teacher or settings
    (:func:`_resume_or_new`), :class:`DataError` for unreadable inputs or a sensor manifest that
    misses a file.
    """
    from sea_tf.models import load_model

    kind, root, files = list_inputs(inputs, recursive=options.recursive)
    if options.limit_files:
        files = files[:int(options.limit_files)]
    files = partition(files, k, n)
    job = job_name(k, n)
    sensor_manifest = options.sensor_manifest
    sensors = _file_sensors(sensor_manifest, files) if sensor_manifest is not None and sensor_manifest != "" else None
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory; choose another output")

    model = load_model(teacher)
    teacher_card = copy.deepcopy(model.card)
    config = {"resampler": options.resampler,
              "hop_size": float(options.hop_size), "center": bool(options.center),
              "student_sample_rate": int(options.student_sample_rate),
              "shard_rows": int(options.shard_rows), "batch_size": int(options.batch_size),
              "compression": options.compression, "limit_files": options.limit_files, "shard": [k, n],
              "input_kind": kind, "teacher_weights_sha256": weights_sha256(model),
              "files_sha256": canonical_sha256([f.source for f in files]),
              # What the manifest says about this job's files decides the rows, not where the CSV lies.
              "sensor_manifest_sha256": None if sensors is None else canonical_sha256(sensors)}
    # Absolute: the rows' sources are relative to it, and a later stage (export's held-out split) may
    # run from another working directory.
    inputs_info: dict[str, Any] = {"root": str(Path(root).resolve()), "kind": kind, "n_files": len(files)}
    if sensors is not None:
        inputs_info["sensor_manifest"] = str(sensor_manifest)
    manifest_path = out_dir / f"manifest-{job}.json"
    fresh = new_manifest(job, teacher_card, config, model.embedding_size, options.student_sample_rate,
                         options.hop_size, inputs=inputs_info, sensors=sensors is not None, levels=True)
    return _Job(inputs, out_dir, job, files, sensors, model, _resume_or_new(manifest_path, fresh), manifest_path)


def _file_sensors(sensor_manifest: Path | str, files: list[InputFile]) -> _FileSensors:
    """``[[source, sensor_id, recording_time (Unix s)], ...]`` for ``files``, from a sensor manifest CSV.

    Raises :class:`DataError` naming the CSV when a file has no row (every row of a stream needs one).
    """
    from sea_tf.sensors import lookup_sensor, read_sensor_manifest

    table = read_sensor_manifest(sensor_manifest)
    out: _FileSensors = []
    unknown = []
    for item in files:
        entry = lookup_sensor(table, item.source)
        if entry is None:
            unknown.append(item.source)
        else:
            out.append([item.source, entry[0], entry[1].timestamp()])
    if unknown:
        raise DataError(f"{sensor_manifest}: no row for {len(unknown)} input file(s), e.g. {', '.join(unknown[:3])}; "
                        "add a line file,sensor_id,timestamp for every file embedded")
    return out


def _resume_or_new(path: Path, fresh: _Manifest) -> _Manifest:
    """The manifest at ``path`` if it was made with ``fresh``'s teacher and config, else ``fresh`` (none there).

    Raises :class:`OutputError` listing every difference when there is one and it does not match.
    """
    if not path.exists():
        return fresh
    old = read_manifest(path)
    teacher_card, config = fresh["teacher_card"], fresh["config"]
    reasons = []
    if old.get("teacher_card_sha256") != fresh["teacher_card_sha256"]:
        reasons.append(f"teacher {old.get('teacher_card', {}).get('name')!r} (card "
                       f"{str(old.get('teacher_card_sha256'))[:12]}) vs {teacher_card.get('name')!r} "
                       f"(card {fresh['teacher_card_sha256'][:12]})")
    for key in sorted(set(old.get("config", {})) | set(config)):
        if old.get("config", {}).get(key) != config.get(key):
            reasons.append(f"{key}: {old.get('config', {}).get(key)!r} there vs {config.get(key)!r} now")
    if reasons:
        raise OutputError(f"{path}: this directory was made with a different teacher or configuration "
                          f"({'; '.join(reasons)}); refusing to resume into it. Use another output directory, "
                          "or the original settings")
    return old


def _begin_retry_pass(manifest: _Manifest, again: list[int]) -> None:
    """Reopen a finished job for a retry pass: the failed files ``again``, in file order, into further shards."""
    manifest["complete"] = False
    # A file that failed part-way has its first windows in a shard already: retry it after them.
    kept = {int(f["pos"]): int(f.get("windows_kept", 0)) for f in manifest["failed"]}
    manifest["retry"] = {"positions": again, "from_window": [kept.get(p, 0) for p in again],
                         "first_shard": len(manifest["shards"])}


@dataclass(frozen=True)
class _Pass:
    """What this pass of a job embeds, and where it starts (:func:`_plan_pass`)."""
    order: list[int]              # positions (in the job's files) this pass reads; shard ``end`` markers index it
    start_file: int               # index into ``order`` of the first file to read
    start_window: int             # that file's first window not yet in a shard
    first_window: dict[int, int]  # retry pass: position -> windows of the file already in shards


def _plan_pass(manifest: _Manifest, n_files: int) -> _Pass:
    """The pass a run of this job makes: the main pass over every file, or the retry pass; resumed
    after the last shard written. The failures the pass will meet again leave ``manifest``."""
    # ``order``: the positions this pass embeds; shard ``end`` markers index into it (the main
    # pass: every file, so ``end`` is a position in the file list as before).
    retry = manifest.get("retry")
    order = list(retry["positions"]) if retry else list(range(n_files))
    own_shards = manifest["shards"][retry["first_shard"]:] if retry else manifest["shards"]
    start_file, start_window = own_shards[-1]["end"] if own_shards else (0, 0)
    first_window = dict(zip(retry["positions"], retry["from_window"])) if retry else {}
    redo = set(order[start_file:])
    manifest["failed"] = [f for f in manifest["failed"] if f["pos"] not in redo]
    return _Pass(order, start_file, start_window, first_window)


# -- the loop ------------------------------------------------------------------------------------

@dataclass
class _Counts:
    """What this run did (the summary's rates)."""
    windows: int = 0          # windows embedded
    inference_s: float = 0.0  # wall time in the teacher


def _embed(job: _Job, plan: _Pass, options: _Options) -> dict[str, Any]:
    """Read the pass's files block by block, embed their windows a batch at a time, fill and write shards.

    Inference batches never cross a shard boundary, so a resumed run computes exactly the batches
    an uninterrupted one does. Returns the summary (:func:`_summary`).
    """
    from tqdm import tqdm

    wall0, cpu0 = time.perf_counter(), time.process_time()
    files, manifest, model, order = job.files, job.manifest, job.model, plan.order
    batch_size, shard_rows = options.batch_size, options.shard_rows
    shards = _ShardWriter(job.out_dir, job.name, manifest, job.manifest_path, shard_rows=shard_rows,
                          compression=options.compression)
    pending = _Rows()
    counts = _Counts()
    decoder = _Prefetcher([files[p] for p in order], plan.start_file, options.decode_workers,
                          options.prefetch_blocks,
                          lambda item: _decode(item, model.sample_rate, options.student_sample_rate,
                                               hop_size=options.hop_size, center=options.center,
                                               resampler=options.resampler, block_windows=options.block_windows,
                                               read_retries=options.read_retries,
                                               read_backoff_s=options.read_backoff_s))
    bar = tqdm(total=len(order), initial=plan.start_file, desc=f"teacher-embed {job.name}", unit="file",
               disable=not options.progress)
    try:
        kept = 0   # windows of the current file taken so far (a file can fail after some blocks)
        for at, kind, payload in decoder:   # ``at``: index into ``order``
            pos = order[at]
            item = files[pos]
            first = plan.start_window if at == plan.start_file else plan.first_window.get(pos, 0)
            if kind != "block":
                if kind == "error":
                    message, error_kind = cast(tuple[str, str], payload)
                    log.warning("skipping unreadable %s (%s): %s", item.path, error_kind, message)
                    failure = {"pos": pos, "source": item.source, "error": message, "kind": error_kind}
                    kept = max(kept, first)
                    if kept:
                        # A long file that fails part-way keeps the windows before the failure.
                        failure["windows_kept"] = kept
                    manifest["failed"].append(failure)
                kept = 0
                bar.update(1)
                continue
            block = cast(_Block, payload)
            count = block["start"] + len(block["timestamp"]) if block.get("last") else None
            extra = {} if job.sensors is None else {"sensor_id": job.sensors[pos][1],
                                                    "recording_time": job.sensors[pos][2]}
            for i in range(len(block["timestamp"])):
                w = block["start"] + i
                kept = w + 1
                if w < first:
                    continue
                pending.append({"teacher": block["teacher"][i], "audio": block["audio"][i],
                                "timestamp": block["timestamp"][i], "loudness_db": block["loudness_db"][i],
                                "dBA": block["dBA"][i],
                                "source": item.source, "label": item.label, "fold": item.fold, **extra})
                if len(pending) == batch_size or len(shards) + len(pending) == shard_rows:
                    _infer(model, pending, shards, counts, batch_size=batch_size)
                if len(shards) == shard_rows:
                    shards.flush((at + 1, 0) if w + 1 == count else (at, w + 1))
        _infer(model, pending, shards, counts, batch_size=batch_size)
        if manifest["n_rows"] + len(shards) == 0:
            raise DataError(f"{job.inputs}: none of the {len(files)} files of job {job.name} could be read "
                            f"({manifest['failed'][0]['error'] if manifest['failed'] else 'no windows'}); "
                            "check the audio")
        shards.finish((len(order), 0))
    finally:
        bar.close()
        decoder.close()
        shards.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return _summary(job.out_dir, manifest, wall, cpu, counts.windows, counts.inference_s)


def _infer(model: SeaModel, pending: _Rows, shards: _ShardWriter, counts: _Counts, *, batch_size: int) -> None:
    """Embed the pending rows, if any, into the shard being filled."""
    if len(pending):
        rows = pending.take()
        start = time.perf_counter()
        rows["embedding"] = model.embed_frames(rows.pop("teacher"), batch_size=batch_size)
        counts.inference_s += time.perf_counter() - start
        shards.add(rows)
        counts.windows += len(rows["embedding"])


class _ShardWriter:
    """Fills the job's next shard and writes each full one, then the manifest that lists it, on a writer thread.

    ``manifest`` is updated in place (shards, ``n_rows``, and at :meth:`finish` ``complete``); each
    write gets a copy as it is at that shard. Memory is bounded: one shard waits for the disk while
    the next fills, so a long file holds two shards' rows whatever its length (writing one takes far
    less than embedding the next). A write that failed raises at the next :meth:`flush` or
    :meth:`finish`, before anything else is written, so a manifest never lists a shard after one
    that is missing.
    """

    def __init__(self, out_dir: Path, job: str, manifest: _Manifest, manifest_path: Path, *, shard_rows: int,
                 compression: str | None) -> None:
        self.out_dir, self.job, self.manifest, self.manifest_path = out_dir, job, manifest, manifest_path
        self.compression = compression
        self.rows = _Blocks(shard_rows)
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
        self._writing: cf.Future[None] | None = None

    def __len__(self) -> int:
        """Rows of the shard being filled."""
        return len(self.rows)

    def add(self, rows: _Columns) -> None:
        """Append embedded rows (columns) to the shard being filled."""
        self.rows.extend(rows)

    def flush(self, end: tuple[int, int]) -> None:
        """Write the shard being filled; ``end``: (file, window) where the next shard starts (a resume's start)."""
        rows = self.rows.take()
        name = shard_name(self.job, len(self.manifest["shards"]))
        self.manifest["shards"].append({"name": name, "rows": len(rows["embedding"]), "end": list(end)})
        self.manifest["n_rows"] += len(rows["embedding"])
        snapshot = copy.deepcopy(self.manifest)
        self._wait()
        self._writing = self._pool.submit(_write_shard, self.out_dir / name, rows, self.compression,
                                          self.manifest_path, snapshot)

    def finish(self, end: tuple[int, int]) -> None:
        """Mark the job complete and write what is left: the last shard with the manifest, or the manifest."""
        self.manifest["complete"] = True
        self.manifest.pop("retry", None)
        if len(self.rows):
            self.flush(end)
        else:
            self._wait()
            atomic.write_json(self.manifest_path, self.manifest)
        self._wait()

    def close(self) -> None:
        """Let a write in progress end (a failure, already raised or not, leaves the shards before it)."""
        self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()


def _write_shard(path: Path, rows: _Columns, compression: str | None, manifest_path: Path,
                 manifest: _Manifest) -> None:
    """Writer thread: the shard first, then the manifest that lists it (both atomically)."""
    write_h5(path, rows, compression=compression)
    atomic.write_json(manifest_path, manifest)


class _Rows:
    """Per-window rows (dicts) waiting for inference; :meth:`take` stacks them into columns."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def take(self) -> _Columns:
        rows, self.rows = self.rows, []
        return {key: [r[key] for r in rows] if key in _STRING_COLUMNS else np.stack([r[key] for r in rows])
                for key in rows[0]}


class _Blocks:
    """Embedded rows of the shard being filled, copied into columns of ``capacity`` rows as they come.

    One array per column, allocated at the shard's first block: no list of blocks plus their
    concatenation (twice a shard) at :meth:`take`, which hands the columns over and starts anew.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity, self.n = int(capacity), 0
        self.columns: _Columns | None = None

    def __len__(self) -> int:
        return self.n

    def extend(self, block: _Columns) -> None:
        rows = len(block["embedding"])
        if self.columns is None:
            self.columns = {key: [] if key in _STRING_COLUMNS
                            else _mapped_empty((self.capacity,) + np.shape(value)[1:], np.asarray(value).dtype)
                            for key, value in block.items()}
        for key, value in block.items():
            if key in _STRING_COLUMNS:
                self.columns[key].extend(value)
            else:
                self.columns[key][self.n:self.n + rows] = value
        self.n += rows

    def take(self) -> _Columns:
        columns, n = self.columns, self.n
        self.columns, self.n = None, 0
        assert columns is not None, "take() of an empty shard"   # callers flush only after rows came
        return {key: value if key in _STRING_COLUMNS else value[:n] for key, value in columns.items()}


def _mapped_empty(shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """An uninitialised array in its own anonymous memory map, unmapped when its last view is gone.

    A shard's columns are allocated and freed once per shard. From malloc they are not reliably
    given back: glibc raises its mmap threshold to the size of a freed mapped block (up to 32 MiB),
    so the next shard's 31-MiB audio column (the defaults: 1024 rows at 8 kHz) comes from the heap,
    which kept a third shard resident: +109 MB instead of +79 MB for an hour at 48 kHz over 10 s
    (``benchmarks/bench_audio_memory.py``), depending on nothing more than import order.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy dtype

    Returns
    -------
    np.ndarray [shape=shape]
        Writable; pages count towards the RSS only once written.
    """
    count = int(np.prod(shape))
    buffer = mmap.mmap(-1, max(1, count * np.dtype(dtype).itemsize))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


# -- the summary ---------------------------------------------------------------------------------

def _finished_summary(out_dir: Path | str, manifest: _Manifest) -> dict[str, Any]:
    """A re-run of a complete job: the summary its run wrote, left as it is on disk.

    Rewriting it would replace the run's figures (rate, CPU use) with those of a run that did
    nothing. The returned dict adds ``already_complete: True`` and ``windows_this_run: 0``. Only
    a job without a readable summary (deleted, or from an older sea-tf) gets one written, whose
    rates are null: nothing was measured.
    """
    path = Path(out_dir) / f"summary-{manifest['job']}.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        summary = _summary(out_dir, manifest, 0.0, 0.0, 0, 0.0)
    return {**summary, "windows_this_run": 0, "already_complete": True}


def _summary(out_dir: Path | str, manifest: _Manifest, wall: float, cpu: float, windows: int,
             inference_s: float) -> dict[str, Any]:
    """``inference_share`` = time in the teacher / wall time: near 1 when decoding and writing are hidden."""
    cores = os.cpu_count() or 1
    summary = {"job": manifest["job"], "out_dir": str(out_dir), "n_rows": manifest["n_rows"],
               "n_shards": len(manifest["shards"]), "complete": manifest["complete"],
               "failed": [{"source": f["source"], "error": f["error"], "kind": f.get("kind", "transient")}
                          for f in manifest["failed"]],
               "windows_this_run": int(windows), "wall_s": round(wall, 3),
               "windows_per_s": round(windows / wall, 3) if wall > 0 else None,
               "cpu_utilisation": round(cpu / wall / cores, 3) if wall > 0 else None, "cores": cores,
               "inference_share": round(inference_s / wall, 3) if wall > 0 else None,
               "teacher": manifest["teacher_card"].get("name")}
    atomic.write_json(Path(out_dir) / f"summary-{manifest['job']}.json", summary)
    return summary
