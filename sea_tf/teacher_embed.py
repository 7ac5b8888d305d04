"""``sea-tf teacher-embed``: run the teacher over in-domain audio and write student/teacher pairs in shards.

docs/PROTOCOL.md §3.0. For every 1-s window (teacher framing: hop ``hop_size``, default 0.5 s as the SONYC
upstream pairs, centred) one row holds the teacher embedding, the same window of the source
resampled once to the student's rate (so distillation never decodes audio again), the source file,
timestamp, loudness (dB) and, for UrbanSound8K, label and fold. With a sensor manifest (a CSV naming
each file's ``sensor_id`` and recording time, docs/PROTOCOL.md §3.1) every row also holds its sensor
and recording time, so ``sea-tf sample --group-by sensor-day`` can draw per-sensor, per-day streams.
Rows go to fixed-size shards (:mod:`sea_tf.shards`).

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
import collections
import concurrent.futures as cf
import copy
import json
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sea_tf import atomic, runlock
from sea_tf.array_jobs import parse_shard, resolve_job  # noqa: F401 - parse_shard: part of this module's API
from sea_tf.audio import RESAMPLERS, resample
from sea_tf.errors import ConfigError, DataError, OutputError
from sea_tf.shards import canonical_sha256, job_name, new_manifest, read_manifest, shard_name, write_h5

log = logging.getLogger(__name__)

#: Manifest config keys that decide the bytes of the outputs; a resume must match all of them.
OUTPUT_KEYS = ("hop_size", "center", "student_sample_rate", "shard_rows", "batch_size", "compression",
               "limit_files", "shard", "resampler", "sensor_manifest_sha256")
_STRING_COLUMNS = ("source", "sensor_id")


@dataclass(frozen=True)
class InputFile:
    """One audio file to embed: where it is, how it is named in the shards, its label and fold (−1)."""
    path: Path
    source: str
    label: int = -1
    fold: int = -1


def list_inputs(inputs, recursive=True):
    """Resolve the input to a sorted list of :class:`InputFile`.

    Parameters
    ----------
    inputs : str or Path
        An audio directory, a ``.txt`` file list (one path per line, relative to the list's
        directory or absolute; ``#`` comments), or an UrbanSound8K root (``metadata/UrbanSound8K.csv``
        present: labels and folds are recorded).
    recursive : bool
        Descend into sub-directories of an audio directory.

    Returns
    -------
    kind : {"dir", "list", "us8k"}
    root : Path
        What ``source`` names are relative to.
    files : list of InputFile
        Sorted by ``source``.
    """
    from sea_tf.audio import find_audio_files

    if inputs is None or str(inputs) == "":
        raise ConfigError("no input given; pass an audio directory, a .txt file list or an UrbanSound8K root")
    path = Path(inputs)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory; pass an audio directory, a .txt list or a US8K root")
    if path.is_file():
        if path.suffix.lower() != ".txt":
            raise DataError(f"{path}: a file input must be a .txt list of audio paths (one per line)")
        root = path.parent
        lines = [line.strip() for line in path.read_text().splitlines()]
        entries = [line for line in lines if line and not line.startswith("#")]
        files = [InputFile(_abs(root, p), _relative(_abs(root, p), root)) for p in entries]
        kind = "list"
    elif (path / "metadata" / "UrbanSound8K.csv").is_file():
        kind, root, files = "us8k", path, _us8k_files(path)
    else:
        kind, root = "dir", path
        files = [InputFile(p, _relative(p, path)) for p in find_audio_files(path, recursive=recursive)]
    if not files:
        raise DataError(f"{path}: no audio files found (extensions: wav, flac, ogg, ...); check the input")
    return kind, root, sorted(set(files), key=lambda f: f.source)


def _abs(root, entry):
    p = Path(entry).expanduser()
    return p if p.is_absolute() else root / p


def _relative(path, root):
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _us8k_files(root):
    try:
        from sea_tf.data.us8k import US8K
    except ImportError as exc:
        raise DataError(f"{root}: reading an UrbanSound8K root needs sea_tf.data.us8k, which is not "
                        "installed in this checkout; pass the audio directory instead") from exc
    dataset = US8K(root)
    clips = getattr(dataset, "clips", dataset)
    return [InputFile(Path(c.path), _relative(c.path, root), int(c.class_id), int(c.fold)) for c in clips]


def partition(files, k, n):
    """Job ``k`` of ``n``'s files: every n-th of the sorted list, starting at k (disjoint, covering)."""
    return list(files[k::n])


def weights_sha256(seamodel):
    """sha256 over the model's weight arrays (what a resume must match besides the card)."""
    import hashlib
    digest = hashlib.sha256()
    for w in seamodel.keras.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def _decode(item, teacher_sr, student_sr, hop_size, center, resampler="soxr-hq", block_windows=16, *,
            read_retries, read_backoff_s=0.5):
    """One file's windows at both rates, block by block (iterated on a worker thread).

    Yields dicts ``start`` (index of the block's first window), ``teacher`` float32 [b, teacher_sr],
    ``audio`` float32 [b, student_sr], ``timestamp`` float64 [b], ``loudness_db`` float32 [b]:
    :func:`sea_tf.audio.stream_windows`, so memory does not grow with the file's length and the
    windows are those of framing the whole file (the smaller of the two rates' window counts).
    """
    from sea_tf.audio import stream_windows

    for block in stream_windows(item.path, [teacher_sr, student_sr], hop_size, center, block_windows, resampler,
                                retries=read_retries, backoff_s=read_backoff_s, log=log):
        teacher, student = block.frames
        yield {"start": block.start, "teacher": teacher, "audio": student, "timestamp": block.timestamps,
               "loudness_db": block.loudness_db}


def failure_kind(exc: BaseException) -> str:
    """``"transient"`` for a failure of the operating system (I/O, timeouts), else ``"permanent"``.

    A transient failure may be gone by the next run (a mount that was down), so a resume retries
    it; a permanent one (a malformed file) fails the same way every time.
    """
    from sea_tf.audio import TransientAudioError

    return "transient" if isinstance(exc, (TransientAudioError, OSError)) else "permanent"


def retryable(manifest: dict, *, retry_failed: bool = False) -> list[int]:
    """Positions (in the job's file list) of the failed files a re-run retries, sorted.

    Transient failures always; permanent ones too with ``retry_failed``. A failure recorded by an
    older sea-tf has no kind and counts as transient: retrying it costs one read.
    """
    return sorted({int(f["pos"]) for f in manifest.get("failed", [])
                   if retry_failed or f.get("kind", "transient") == "transient"})


class _Prefetcher:
    """Decode files ``start..`` on ``workers`` threads into window blocks, at most ``depth`` blocks ahead.

    Iterating yields ``(pos, kind, payload)`` in file order: ``("block", dict)`` for each block of
    file ``pos`` (the file's last block has ``"last": True``), then ``("done", None)`` or
    ``("error", message)``. Memory is bounded by blocks, not files, so an hour-long recording costs
    what a short clip does. The file being consumed may always take the last free place, so the
    files further ahead can never fill every place while the consumer waits for it.
    """

    def __init__(self, files, start, workers, depth, decode):
        self.files, self.decode, self.depth = files, decode, max(2, depth)
        self.start = start
        self.cond = threading.Condition()
        self.queues = {}              # pos -> deque of (kind, payload)
        self.head = start             # the file the consumer reads
        self.held = 0                 # blocks waiting, all files
        self.next_pos = start
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, name=f"decode-{i}", daemon=True)
                        for i in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    def _put(self, pos, kind, payload):
        with self.cond:
            if kind == "block":
                while not self.stopping and not (self.held < self.depth - (0 if pos == self.head else 1)):
                    self.cond.wait()
                if self.stopping:
                    return False
                self.held += 1
            self.queues[pos].append((kind, payload))
            self.cond.notify_all()
            return True

    def _work(self):
        while True:
            with self.cond:
                if self.stopping or self.next_pos >= len(self.files):
                    return
                pos = self.next_pos
                self.next_pos += 1
                self.queues[pos] = collections.deque()
            blocks = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # short/silent files are still embedded; nothing to act on
                    blocks = self.decode(self.files[pos])
                    held = None   # one block held back, to mark the file's last one
                    for block in blocks:
                        if held is not None and not self._put(pos, "block", held):
                            return
                        held = block
                    if held is not None:
                        held["last"] = True
                        if not self._put(pos, "block", held):
                            return
                self._put(pos, "done", None)
            except Exception as exc:  # noqa: BLE001 - any decoding failure skips just this file
                self._put(pos, "error", (f"{type(exc).__name__}: {exc}", failure_kind(exc)))
            finally:
                if blocks is not None and hasattr(blocks, "close"):
                    blocks.close()

    def __iter__(self):
        for pos in range(self.start, len(self.files)):
            while True:
                with self.cond:
                    while not self.queues.get(pos):
                        self.cond.wait()
                    kind, payload = self.queues[pos].popleft()
                    if kind == "block":
                        self.held -= 1
                    else:
                        del self.queues[pos]
                        self.head = pos + 1
                    self.cond.notify_all()
                yield pos, kind, payload
                if kind != "block":
                    break

    def close(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()


def extract(inputs, out_dir, teacher, hop_size=0.5, center=True, student_sample_rate=8000, shard_rows=1024,
            batch_size=32, shard=None, recursive=True, limit_files=None, compression=None,
            decode_workers=2, prefetch_blocks=16, progress=True, environ=None, resampler="soxr-hq",
            sensor_manifest=None, block_windows=16, read_retries=3, read_backoff_s=0.5, shard_count=None,
            retry_failed=False):
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
        ``"K/N"``; else K of a SLURM array task (:func:`sea_tf.array_jobs.resolve_job`), else 0/1.
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
        CSV with columns ``file, sensor_id, timestamp`` (:func:`sea_tf.sampling.read_sensor_manifest`)
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
    k, n = resolve_job(shard, shard_count, out_dir, environ)
    # One process per job while it runs: a second one would write the same shards and manifest.
    with runlock.locked(out_dir, command=f"teacher-embed job {job_name(k, n)}", name=f".lock-{job_name(k, n)}"):
        return _extract(inputs, out_dir, teacher, hop_size=hop_size, center=center,
                        student_sample_rate=student_sample_rate, shard_rows=shard_rows, batch_size=batch_size,
                        shard=f"{k}/{n}", recursive=recursive, limit_files=limit_files, compression=compression,
                        decode_workers=decode_workers, prefetch_blocks=prefetch_blocks, progress=progress,
                        environ=environ, resampler=resampler, sensor_manifest=sensor_manifest,
                        block_windows=block_windows, read_retries=read_retries, read_backoff_s=read_backoff_s,
                        shard_count=n, retry_failed=retry_failed)


def _extract(inputs, out_dir, teacher, hop_size=0.5, center=True, student_sample_rate=8000, shard_rows=1024,
            batch_size=32, shard=None, recursive=True, limit_files=None, compression=None,
            decode_workers=2, prefetch_blocks=16, progress=True, environ=None, resampler="soxr-hq",
            sensor_manifest=None, block_windows=16, read_retries=3, read_backoff_s=0.5, shard_count=None,
            retry_failed=False):
    """:func:`extract` with the job's lock held."""
    from tqdm import tqdm

    from sea_tf.models import load_model

    for name, value in (("shard_rows", shard_rows), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name, value, least in (("block_windows", block_windows, 1), ("prefetch_blocks", prefetch_blocks, 1),
                               ("read_retries", read_retries, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if compression not in (None, "gzip", "lzf"):
        raise ConfigError(f"compression must be null, gzip or lzf; got {compression!r}")
    k, n = resolve_job(shard, shard_count, out_dir, environ)
    kind, root, files = list_inputs(inputs, recursive=recursive)
    if limit_files:
        files = files[:int(limit_files)]
    files = partition(files, k, n)
    job = job_name(k, n)
    sensors = _file_sensors(sensor_manifest, files) if sensor_manifest not in (None, "") else None
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory; choose another output")

    if resampler not in RESAMPLERS:
        raise ConfigError(f"resampler must be one of {', '.join(RESAMPLERS)}; got {resampler!r}")
    if resampler != "soxr-hq":
        resample(np.zeros(8, np.float32), 16000, 8000, method=resampler)  # resampy installed? (a clear error if not)
    model = load_model(teacher)
    teacher_card = copy.deepcopy(model.card)
    config = {"resampler": resampler,
              "hop_size": float(hop_size), "center": bool(center), "student_sample_rate": int(student_sample_rate),
              "shard_rows": int(shard_rows), "batch_size": int(batch_size), "compression": compression,
              "limit_files": limit_files, "shard": [k, n], "input_kind": kind,
              "teacher_weights_sha256": weights_sha256(model),
              "files_sha256": canonical_sha256([f.source for f in files]),
              # What the manifest says about this job's files decides the rows, not where the CSV lies.
              "sensor_manifest_sha256": None if sensors is None else canonical_sha256(sensors)}
    # Absolute: the rows' sources are relative to it, and a later stage (export's held-out split) may
    # run from another working directory.
    inputs_info = {"root": str(Path(root).resolve()), "kind": kind, "n_files": len(files)}
    if sensors is not None:
        inputs_info["sensor_manifest"] = str(sensor_manifest)
    manifest_path = out_dir / f"manifest-{job}.json"
    manifest = _resume_or_new(manifest_path, job, teacher_card, config, model, student_sample_rate, hop_size,
                              inputs_info, sensors is not None)
    if manifest["complete"]:
        again = retryable(manifest, retry_failed=retry_failed)
        if not again:
            kept = len(manifest["failed"])
            print(f"teacher-embed: job {job} already complete in {out_dir} ({manifest['n_rows']} rows); nothing to do"
                  + (f" ({kept} file(s) failed permanently; --retry-failed tries them again)" if kept else ""))
            return _finished_summary(out_dir, manifest)
        # A retry pass: the failed files, in file order, into further shards of this job.
        print(f"teacher-embed: job {job} retrying {len(again)} failed file(s)")
        manifest["complete"] = False
        # A file that failed part-way has its first windows in a shard already: retry it after them.
        kept = {int(f["pos"]): int(f.get("windows_kept", 0)) for f in manifest["failed"]}
        manifest["retry"] = {"positions": again, "from_window": [kept.get(p, 0) for p in again],
                             "first_shard": len(manifest["shards"])}
    if not files:
        raise DataError(f"{inputs}: job {job} has no files (only {n} jobs for fewer files); use fewer jobs")

    # ``order``: the positions this pass embeds; shard ``end`` markers index into it (the main
    # pass: every file, so ``end`` is a position in the file list as before).
    retry = manifest.get("retry")
    order = list(retry["positions"]) if retry else list(range(len(files)))
    own_shards = manifest["shards"][retry["first_shard"]:] if retry else manifest["shards"]
    start_file, start_window = own_shards[-1]["end"] if own_shards else (0, 0)
    first_window = dict(zip(retry["positions"], retry["from_window"])) if retry else {}
    redo = set(order[start_file:])
    manifest["failed"] = [f for f in manifest["failed"] if f["pos"] not in redo]
    out_dir.mkdir(parents=True, exist_ok=True)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    shard_no = len(manifest["shards"])
    rows_done = manifest["n_rows"]
    buf = _Blocks(shard_rows)
    pending = _Rows()
    writer = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
    writes = collections.deque()
    decoder = _Prefetcher([files[p] for p in order], start_file, decode_workers, prefetch_blocks,
                          lambda item: _decode(item, model.sample_rate, student_sample_rate, hop_size, center,
                                               resampler, block_windows, read_retries=read_retries,
                                               read_backoff_s=read_backoff_s))
    bar = tqdm(total=len(order), initial=start_file, desc=f"teacher-embed {job}", unit="file", disable=not progress)
    windows_embedded, inference_s = 0, 0.0

    def infer():
        nonlocal windows_embedded, inference_s
        if len(pending):
            rows = pending.take()
            start = time.perf_counter()
            rows["embedding"] = model.embed_frames(rows.pop("teacher"), batch_size=batch_size)
            inference_s += time.perf_counter() - start
            buf.extend(rows)
            windows_embedded += len(rows["embedding"])

    def flush_shard(end):
        nonlocal shard_no, rows_done
        rows = buf.take()
        name = shard_name(job, shard_no)
        manifest["shards"].append({"name": name, "rows": len(rows["embedding"]), "end": list(end)})
        rows_done += len(rows["embedding"])
        manifest["n_rows"] = rows_done
        snapshot = copy.deepcopy(manifest)
        # Bound memory: one shard waiting for the disk while the next fills, so a long file holds
        # two shards' rows whatever its length (writing one takes far less than embedding the next).
        while len(writes) >= 1:
            writes.popleft().result()
        previous = writes[-1] if writes else None
        writes.append(writer.submit(_write_shard, out_dir / name, rows, compression, manifest_path, snapshot,
                                    previous))
        shard_no += 1

    try:
        kept = 0   # windows of the current file taken so far (a file can fail after some blocks)
        for at, kind, payload in decoder:   # ``at``: index into ``order``
            pos = order[at]
            item = files[pos]
            first = start_window if at == start_file else first_window.get(pos, 0)
            if kind != "block":
                if kind == "error":
                    message, error_kind = payload
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
            count = payload["start"] + len(payload["timestamp"]) if payload.get("last") else None
            extra = {} if sensors is None else {"sensor_id": sensors[pos][1], "recording_time": sensors[pos][2]}
            for i in range(len(payload["timestamp"])):
                w = payload["start"] + i
                kept = w + 1
                if w < first:
                    continue
                pending.append({"teacher": payload["teacher"][i], "audio": payload["audio"][i],
                                "timestamp": payload["timestamp"][i], "loudness_db": payload["loudness_db"][i],
                                "source": item.source, "label": item.label, "fold": item.fold, **extra})
                if len(pending) == batch_size or len(buf) + len(pending) == shard_rows:
                    infer()
                if len(buf) == shard_rows:
                    flush_shard((at + 1, 0) if w + 1 == count else (at, w + 1))
        infer()
        if rows_done + len(buf) == 0:
            raise DataError(f"{inputs}: none of the {len(files)} files of job {job} could be read "
                            f"({manifest['failed'][0]['error'] if manifest['failed'] else 'no windows'}); "
                            "check the audio")
        manifest["complete"] = True
        manifest.pop("retry", None)
        if len(buf):
            flush_shard((len(order), 0))
        else:
            while writes:
                writes.popleft().result()
            atomic.write_json(manifest_path, manifest)
        while writes:
            writes.popleft().result()
    finally:
        bar.close()
        decoder.close()
        writer.shutdown(wait=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return _summary(out_dir, manifest, wall, cpu, windows_embedded, inference_s)


def _file_sensors(sensor_manifest, files):
    """``[[source, sensor_id, recording_time (Unix s)], ...]`` for ``files``, from a sensor manifest CSV.

    Raises :class:`DataError` naming the CSV when a file has no row (every row of a stream needs one).
    """
    from sea_tf.sampling import lookup_sensor, read_sensor_manifest

    table = read_sensor_manifest(sensor_manifest)
    out, unknown = [], []
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


def _resume_or_new(path, job, teacher_card, config, model, student_sr, hop_size, inputs_info, sensors=False):
    fresh = new_manifest(job, teacher_card, config, model.embedding_size, student_sr, hop_size, inputs_info,
                         sensors=sensors)
    if not path.exists():
        return fresh
    old = read_manifest(path)
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


def _write_shard(path, rows, compression, manifest_path, manifest, previous=None):
    """Writer thread: the shard first, then the manifest that lists it (both atomically).

    ``previous`` is the preceding shard's write: if it failed, this one re-raises its error instead
    of writing, so a manifest never lists a shard after one that is missing.
    """
    if previous is not None:
        previous.result()
    write_h5(path, rows, compression=compression)
    atomic.write_json(manifest_path, manifest)


class _Rows:
    """Per-window rows (dicts) waiting for inference; :meth:`take` stacks them into columns."""

    def __init__(self):
        self.rows = []

    def __len__(self):
        return len(self.rows)

    def append(self, row):
        self.rows.append(row)

    def take(self):
        rows, self.rows = self.rows, []
        return {key: [r[key] for r in rows] if key in _STRING_COLUMNS else np.stack([r[key] for r in rows])
                for key in rows[0]}


class _Blocks:
    """Embedded rows of the shard being filled, copied into columns of ``capacity`` rows as they come.

    One array per column, allocated at the shard's first block: no list of blocks plus their
    concatenation (twice a shard) at :meth:`take`, which hands the columns over and starts anew.
    """

    def __init__(self, capacity):
        self.capacity, self.columns, self.n = int(capacity), None, 0

    def __len__(self):
        return self.n

    def extend(self, block):
        rows = len(block["embedding"])
        if self.columns is None:
            self.columns = {key: [] if key in _STRING_COLUMNS
                            else np.empty((self.capacity,) + np.shape(value)[1:], np.asarray(value).dtype)
                            for key, value in block.items()}
        for key, value in block.items():
            if key in _STRING_COLUMNS:
                self.columns[key].extend(value)
            else:
                self.columns[key][self.n:self.n + rows] = value
        self.n += rows

    def take(self):
        columns, n = self.columns, self.n
        self.columns, self.n = None, 0
        return {key: value if key in _STRING_COLUMNS else value[:n] for key, value in columns.items()}


def _finished_summary(out_dir, manifest):
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


def _summary(out_dir, manifest, wall, cpu, windows, inference_s):
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
