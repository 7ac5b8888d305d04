"""Which job of a split teacher-embed run this process is, and how far every job has got.

A run over many files is split into N jobs; job K embeds every N-th file of the sorted input list
and writes ``OUT/manifest-<K>of<N>.json`` plus its shards (:mod:`sea_tf.shards`). The pair (K, N)
must be the same every time a job runs, or a rerun embeds other files (docs/PROTOCOL.md §3.0,
"Split runs and SLURM arrays"):

- K is the absolute ``SLURM_ARRAY_TASK_ID``: arrays are indexed 0..N-1, so ``sbatch --array=5``
  (the usual way to rerun one failed task) is job 5 again;
- N is ``--shard-count``, else the N of the manifests already in ``OUT``, else the array's
  ``SLURM_ARRAY_TASK_COUNT`` when the array is a whole one, 0..COUNT-1. A task resubmitted alone
  sees ``TASK_COUNT=1`` (and ``TASK_MIN`` = its own index), which says nothing about the original
  N, so without the other two sources it is refused rather than guessed.

:func:`array_status` reads the manifests back for ``sea-tf teacher-embed --status``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sea_tf.errors import ConfigError, DataError

_JOB = re.compile(r"(\d+)of(\d+)")
_MANIFEST = re.compile(r"manifest-(\d+)of(\d+)\.json")

#: ``sea-tf teacher-embed --status`` exit codes: every job done / some partial or missing
#: (errors, e.g. manifests of two array sizes, exit 2 like every sea-tf error). A job that
#: finished with failed files is ``partial``: its rows lack those files.
STATUS_DONE, STATUS_UNFINISHED = 0, 1


def parse_job(name: str) -> tuple[int, int] | None:
    """``(K, N)`` of a job tag ``"KofN"`` (:func:`sea_tf.shards.job_name`), ``None`` if it is not one."""
    match = _JOB.fullmatch(str(name))
    return (int(match[1]), int(match[2])) if match else None


def parse_shard(spec: str) -> tuple[int, int]:
    """``(K, N)`` from ``"K/N"`` (``--shard``); :class:`ConfigError` unless ``0 ≤ K < N``."""
    try:
        k, n = (int(part) for part in str(spec).split("/"))
    except ValueError:
        raise ConfigError(f"--shard {spec!r}: expected K/N, e.g. --shard 0/4") from None
    _check_range(k, n, f"--shard {spec}")
    return k, n


def _check_range(k: int, n: int, source: str) -> None:
    if not (n >= 1 and 0 <= k < n):
        raise ConfigError(f"{source}: job {k} of {n} is out of range; need 0 ≤ K < N")


def jobs_in(out_dir: str | os.PathLike[str] | None) -> dict[tuple[int, int], Path]:
    """The jobs whose manifests are in ``out_dir``, by their file names: ``{(K, N): path}``."""
    if out_dir is None or not Path(out_dir).is_dir():
        return {}
    found = {}
    for path in Path(out_dir).glob("manifest-*.json"):
        match = _MANIFEST.fullmatch(path.name)
        if match:
            found[(int(match[1]), int(match[2]))] = path
    return found


def count_in(out_dir: str | os.PathLike[str] | None) -> int | None:
    """The one array size N of the manifests in ``out_dir`` (``None`` when there are none).

    Raises :class:`DataError` when manifests of two sizes are there: their jobs cover the same
    files twice, so no later stage could read the directory as one table.
    """
    sizes: dict[int, str] = {}
    for (k, n), path in sorted(jobs_in(out_dir).items()):
        sizes.setdefault(n, path.name)
    if len(sizes) > 1:
        listed = ", ".join(f"N={n} ({name})" for n, name in sorted(sizes.items()))
        raise DataError(f"{out_dir}: holds jobs of different array sizes: {listed}; they embed the same files "
                        "twice. Keep one run's manifest-*.json and shard-* files there (move the others away)")
    return next(iter(sizes), None)


def resolve_job(shard: str | None = None, *, shard_count: int | None = None,
                out_dir: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Which job this process is: ``(K, N)``, the same on every rerun of that job.

    Parameters
    ----------
    shard : str, optional
        ``"K/N"`` (``--shard``): used as given.
    shard_count : int, optional
        N (``--shard-count``; the sbatch files pass it), with K from ``SLURM_ARRAY_TASK_ID``.
    out_dir : path, optional
        The output directory: the N of the manifests already there (:func:`count_in`) is used when
        ``shard_count`` is not given, and must agree with any N given.
    environ : mapping, optional
        Defaults to ``os.environ``; reads ``SLURM_ARRAY_TASK_ID``/``_COUNT``/``_MIN``/``_MAX``.

    Returns
    -------
    (int, int)
        ``(K, N)`` with ``0 ≤ K < N``; ``(0, 1)`` outside an array without ``shard``.

    Raises
    ------
    ConfigError
        An array index outside 0..N-1, an N that contradicts the manifests in ``out_dir``, or a lone
        resubmitted task (an array of one) whose N nothing records: pass ``--shard-count``.
    """
    environ = os.environ if environ is None else environ
    if shard_count is not None and (isinstance(shard_count, bool) or int(shard_count) < 1):
        raise ConfigError(f"--shard-count must be a positive integer, got {shard_count!r}")
    on_disk = count_in(out_dir)
    if shard not in (None, ""):
        k, n = parse_shard(shard)
        if shard_count is not None and int(shard_count) != n:
            raise ConfigError(f"--shard {shard} and --shard-count {shard_count} disagree; pass one of them")
        source = f"--shard {shard}"
    elif "SLURM_ARRAY_TASK_ID" in environ:
        k, n, source = _from_array(environ, shard_count, on_disk, out_dir)
    elif shard_count is not None:
        raise ConfigError(f"--shard-count {shard_count} needs SLURM_ARRAY_TASK_ID (a SLURM array task) to say "
                          "which job this is; outside SLURM pass --shard K/N")
    else:
        k, n, source = 0, 1, "a single job (no --shard, no SLURM array)"
    if on_disk is not None and on_disk != n:
        raise ConfigError(f"{out_dir}: holds jobs of {on_disk} (manifest-*of{on_disk}.json) but {source} makes "
                          f"this job {k} of {n}; use N = {on_disk} (e.g. --shard {min(k, on_disk - 1)}/{on_disk}) "
                          "or another output directory")
    return k, n


def _from_array(environ: Mapping[str, str], shard_count: int | None, on_disk: int | None,
                out_dir: str | os.PathLike[str] | None) -> tuple[int, int, str]:
    """(K, N, source) of a SLURM array task (see :func:`resolve_job`)."""
    try:
        k = int(environ["SLURM_ARRAY_TASK_ID"])
        count, low, high = (int(environ[key]) if key in environ else None
                            for key in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"))
    except ValueError:
        raise ConfigError("SLURM_ARRAY_TASK_ID/COUNT/MIN/MAX are not integers; pass --shard K/N") from None
    if shard_count is not None:
        n, source = int(shard_count), f"SLURM_ARRAY_TASK_ID={k} with --shard-count {shard_count}"
    elif on_disk is not None:
        n, source = on_disk, f"SLURM_ARRAY_TASK_ID={k} with the manifests in {out_dir}"
    elif count is not None and count > 1 and low == 0 and high == count - 1:
        # A whole array 0..COUNT-1 states N itself. An array of one cannot be told apart from one
        # task resubmitted alone, and a strided or offset array has no N at all.
        n, source = count, f"SLURM array 0-{high}"
    else:
        raise ConfigError(f"SLURM array task {k} does not know how many jobs the run has "
                          f"(SLURM_ARRAY_TASK_COUNT={count}, MIN={low}: a task resubmitted alone, or an array "
                          "not indexed 0..N-1) and no manifest records it yet; pass --shard-count N")
    if not 0 <= k < n:
        raise ConfigError(f"{source}: array index {k} is outside 0..{n - 1}; index the array 0..N-1 "
                          f"(sbatch --array=0-{n - 1}) so that task K is job K of N")
    return k, n, source


@dataclass(frozen=True)
class JobStatus:
    """One job of a split run, as its manifest tells it (``state`` "missing" when there is none)."""
    k: int
    n: int
    state: str             # "done" | "partial" (unfinished, or finished with failed files) | "missing"
    n_rows: int = 0
    n_shards: int = 0
    files_done: int = 0    # files fully embedded (or recorded as failed) so far
    files_failed: int = 0
    n_files: int | None = None  # files of this job (None: no manifest yet)
    #: ``(source, kind, error)`` of every failed file; kind "transient" (a re-run retries it) or
    #: "permanent" (retried only with ``--retry-failed``).
    failed: tuple[tuple[str, str, str], ...] = ()


def array_status(out_dir: str | os.PathLike[str], *, shard_count: int | None = None) -> list[JobStatus]:
    """The state of every job 0..N-1 of the run in ``out_dir``.

    Parameters
    ----------
    out_dir : path
        A ``sea-tf teacher-embed`` output directory.
    shard_count : int, optional
        N; else the N of the manifests there (:func:`count_in`).

    Returns
    -------
    list of JobStatus [N], by K.
    """
    out_dir = Path(out_dir)
    n = count_in(out_dir) if shard_count is None else int(shard_count)
    if n is None:
        raise DataError(f"{out_dir}: no manifest-<K>of<N>.json found, so the number of jobs is unknown; "
                        "pass --shard-count N (or check the --out of the teacher-embed run)")
    present = jobs_in(out_dir)
    stray = sorted(path.name for (_, size), path in present.items() if size != n)
    if stray:
        raise DataError(f"{out_dir}: {', '.join(stray)} belong to a run of another size than {n} jobs; "
                        "keep one run's manifests and shards there")
    table = []
    for k in range(n):
        path = present.get((k, n))
        if path is None:
            table.append(JobStatus(k, n, "missing"))
            continue
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable manifest ({exc}); re-run job {k} of {n} to rewrite it") from exc
        shards = manifest.get("shards", [])
        n_files = manifest.get("inputs", {}).get("n_files")
        retry = manifest.get("retry")
        if retry:  # a retry pass: its ``end`` markers count the files being retried
            own = shards[retry["first_shard"]:]
            files_done = (n_files or 0) - len(retry["positions"]) + (int(own[-1]["end"][0]) if own else 0)
        else:
            files_done = int(shards[-1]["end"][0]) if shards and "end" in shards[-1] else 0
        failed = tuple((f.get("source"), f.get("kind", "transient"), f.get("error", ""))
                       for f in manifest.get("failed", []))
        done = manifest.get("complete") and not failed
        table.append(JobStatus(k, n, "done" if done else "partial",
                               int(manifest.get("n_rows", 0)), len(shards),
                               n_files if manifest.get("complete") and n_files is not None else files_done,
                               len(failed), n_files, failed))
    return table


def format_status(out_dir: str | os.PathLike[str], table: list[JobStatus]) -> str:
    """The ``--status`` table: one line per job, then a total line."""
    lines = [f"{'job':>10}  {'state':<8} {'rows':>10} {'shards':>7} {'files':>13} {'failed':>7}"]
    for job in table:
        files = "-" if job.n_files is None else f"{job.files_done}/{job.n_files}"
        lines.append(f"{f'{job.k}of{job.n}':>10}  {job.state:<8} {job.n_rows:>10} {job.n_shards:>7} "
                     f"{files:>13} {job.files_failed:>7}")
    for job in table:
        for source, kind, error in job.failed:
            lines.append(f"  {job.k}of{job.n} failed ({kind}): {source}: {error}")
    done = sum(job.state == "done" for job in table)
    missing = [str(job.k) for job in table if job.state != "done"]
    verdict = "all done" if not missing else f"to (re)run: --array={','.join(missing)}"
    if any(kind == "permanent" for job in table for _, kind, _ in job.failed):
        verdict += " (permanent failures are retried only with --retry-failed)"
    lines.append(f"{out_dir}: {done} of {len(table)} jobs done, {sum(j.n_rows for j in table)} rows; {verdict}")
    return "\n".join(lines)
