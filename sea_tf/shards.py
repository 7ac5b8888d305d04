"""Teacher shards on disk: fixed-size HDF5 files plus one manifest per job, read back as one table.

Layout (docs/ARCHITECTURE.md, "Teacher shards")::

    OUT/shard-<job>-<nnnnn>.h5   embedding f32 [n, D], audio f32 [n, student_sr], timestamp f64 [n],
                                 loudness_db f32 [n], source utf-8 [n], label i32 [n], fold i32 [n]
                                 and, from a sensor manifest (docs/PROTOCOL.md §3.1), sensor_id utf-8 [n],
                                 recording_time f64 [n] (Unix s, UTC: the source file's start;
                                 the window's own time is recording_time + timestamp)
                                 and, in shards embedded since it was stored, dBA f32 [n] (A-weighted level,
                                 :func:`sea_tf.audio.weighting.window_dba`; older shards lack it)
    OUT/manifest-<job>.json      teacher card, config, the finished shards in row order, failures,
                                 ``columns`` (the datasets every shard holds; absent: SHARD_KEYS)

``<job>`` is ``<K>of<N>`` for the K-th of N cluster jobs. A manifest lists a shard only after the
shard file has been renamed into place, so a killed job never references a half-written file.
Files are written deterministically (no HDF5 timestamps, fixed chunking) so that a resumed run ends
byte-identical to an uninterrupted one.
"""
import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from sea_tf import atomic
from sea_tf.errors import DataError, OutputError

MANIFEST_FORMAT = "sea-tf-teacher-manifest/1"
SHARD_KEYS = ("embedding", "audio", "timestamp", "loudness_db", "source", "label", "fold")
#: Columns only shards embedded with a sensor manifest hold (``sea-tf teacher-embed --sensor-manifest``).
SENSOR_KEYS = ("sensor_id", "recording_time")
#: Columns of shards embedded since the A-weighted level was stored (``sampling.quality: dba-slot`` reads them).
LEVEL_KEYS = ("dBA",)
#: Columns a shard may hold besides :data:`SHARD_KEYS` (the manifest's ``columns`` lists them).
OPTIONAL_KEYS = SENSOR_KEYS + LEVEL_KEYS
_STRING_KEYS = ("source", "sensor_id")
_DTYPES: dict[str, type[np.generic]] = {"embedding": np.float32, "audio": np.float32, "timestamp": np.float64,
           "loudness_db": np.float32, "label": np.int32, "fold": np.int32, "target": np.float32,
           "recording_time": np.float64, "dBA": np.float32}
_STR = h5py.string_dtype("utf-8")


def job_name(index: int, count: int) -> str:
    """Job tag used in file names: ``job_name(2, 8) == "2of8"``."""
    return f"{int(index)}of{int(count)}"


def shard_name(job: str, number: int) -> str:
    """File name of shard ``number`` of ``job``, e.g. ``shard-0of1-00003.h5``."""
    return f"shard-{job}-{int(number):05d}.h5"


def canonical_sha256(obj: Any) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys): a stable hash of cards and configs."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=atomic._json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_h5(path: Path | str, arrays: Mapping[str, npt.ArrayLike], *, compression: str | None = None,
             attrs: Mapping[str, Any] | None = None) -> None:
    """Write ``arrays`` (name -> array) as one HDF5 file, atomically and byte-reproducibly.

    Parameters
    ----------
    path : str or Path
    arrays : dict of str -> np.ndarray
        Each array's first axis is the row axis. ``source`` and ``sensor_id`` (str) are stored as UTF-8 strings.
    compression : {None, "gzip", "lzf"}
        HDF5 filter; chunking is fixed (64 rows) so the bytes depend only on the data.
    attrs : dict, optional
        Small file attributes (str or numbers).
    """
    columns: dict[str, tuple[np.ndarray, Any]] = {}
    for key, value in arrays.items():
        if key in _STRING_KEYS:
            columns[key] = (np.asarray([str(s) for s in np.asarray(value)], dtype=object), _STR)
        else:
            data = np.ascontiguousarray(value, dtype=_DTYPES.get(key, np.asarray(value).dtype))
            columns[key] = (data, data.dtype)
    with reserved_h5(path, _size_bound(columns, compression)) as fh:
        for key, (data, dtype) in columns.items():
            n = len(data)
            chunks = (max(1, min(64, n)),) + tuple(np.shape(data)[1:]) if n else None
            fh.create_dataset(key, data=data, dtype=dtype, chunks=chunks,
                              compression=compression if n else None, track_times=False)
        for key, value in (attrs or {}).items():
            fh.attrs[key] = value


@contextlib.contextmanager
def reserved_h5(path: Path | str, nbytes: int) -> Iterator[h5py.File]:
    """A new HDF5 file written atomically to ``path``, ``nbytes`` of disk reserved before it is written.

    HDF5 met a full disk in the middle of its own writes and crashed (a chunked write segfaulted):
    the space is reserved first, so a full disk is one :class:`OutputError` naming ``path`` and
    the free space, and HDF5 writes through a Python file object whose errors come back as
    exceptions. Teacher shards and reduce's targets are written through this.

    Yields
    ------
    h5py.File
    """
    with atomic.atomic_path(path, suffix=".h5") as tmp, atomic.ReservedFile(tmp, nbytes, path) as raw:
        try:
            with h5py.File(raw, "w", libver="earliest", track_order=False) as fh:
                yield fh
        except OutputError:
            raise
        except (OSError, RuntimeError) as exc:
            raise atomic.write_error(path, exc) from exc


def _size_bound(columns: Mapping[str, tuple[np.ndarray, Any]], compression: str | None) -> int:
    """Bytes an HDF5 file of ``columns`` can take: the data, string heaps, chunk indexes, headers.

    Generous on purpose (it is only reserved, the file is truncated to its size): 1 % more for
    filters on incompressible data, 64 KiB per dataset and 64 bytes per chunk of index, 1 MiB.
    """
    datasets = [(sum(len(str(s).encode("utf-8")) + 48 for s in data) if dtype is _STR else data.nbytes, len(data))
                for data, dtype in columns.values()]
    return hdf5_size_bound(datasets, compressed=bool(compression))


def hdf5_size_bound(datasets: Iterable[tuple[int, int]], *, compressed: bool) -> int:
    """Bytes to reserve for an HDF5 file of ``datasets`` (``(data bytes, rows)`` each), chunked by 64 rows.

    Generous on purpose (the reservation is given back when the file is truncated to its size):
    1 % more for filters on incompressible data, 64 KiB per dataset and 64 bytes per chunk of
    index, and 1 MiB for the file's own headers.
    """
    total = 1 << 20
    for nbytes, n_rows in datasets:
        total += int(nbytes) + 65536 + 64 * (int(n_rows) // 64 + 1)
    return int(total * (1.01 if compressed else 1.0))


@dataclass(frozen=True)
class ShardInfo:
    """One shard of a :class:`ShardSet`: its file, row count and first global row."""
    path: Path
    n_rows: int
    offset: int
    manifest: Path


def read_manifest(path: Path | str) -> dict[str, Any]:
    """Read and minimally validate a teacher manifest; raise :class:`DataError` when malformed."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); re-run `sea-tf teacher-embed` to rewrite it") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{path}: not a sea-tf teacher manifest (format {manifest.get('format')!r}); "
                        "point to a directory written by `sea-tf teacher-embed`")
    return manifest


class ShardSet:
    """One or many teacher-shard directories read as one table of rows.

    Rows are ordered by directory (as given), then job manifest (by name), then shard, then row.
    With ``targets`` (a directory written by ``sea-tf reduce apply``) the key ``"target"`` is
    readable too, row-aligned with the teacher rows.

    Parameters
    ----------
    dirs : str, Path or list of them
        Directories holding ``manifest-*.json`` and their shards.
    targets : str or Path, optional
        Reduced-target directory (``<same shard name>.h5`` with dataset ``target``).
    allow_incomplete : bool
        Accept jobs that have started but not finished (their finished shards are used).
    allow_partial : bool
        Accept a directory whose jobs are not all there (e.g. only ``1of3``): the rows of the jobs
        present are read. Without it each directory must hold one complete set of jobs
        ``0ofN .. (N-1)ofN`` (``sea-tf teacher-embed --status DIR`` lists what is missing). Jobs
        of two array sizes in one directory (``0of1`` + ``0of2``: the same files twice) are refused
        either way.

    Attributes
    ----------
    n_rows : int
    columns : tuple of str
        Datasets every shard holds (:data:`SHARD_KEYS`, plus :data:`SENSOR_KEYS` when every job
        was embedded with a sensor manifest, and :data:`LEVEL_KEYS` when every job stored them).
    embedding_size : int
    student_sample_rate : int
    teacher_card : dict
    teacher_card_sha256 : str
    manifests : list of dict
    shards : list of ShardInfo
    """

    def __init__(self, dirs: Path | str | Sequence[Path | str], *, targets: Path | str | None = None,
                 allow_incomplete: bool = False, allow_partial: bool = False) -> None:
        if isinstance(dirs, (str, Path)):
            dirs = [dirs]
        self.dirs = [Path(d) for d in dirs]
        if not self.dirs:
            raise DataError("no teacher-shard directory given; pass the output of `sea-tf teacher-embed`")
        self.manifests: list[dict[str, Any]] = []
        self.manifest_paths: list[Path] = []
        self.shards: list[ShardInfo] = []
        offset = 0
        for directory in self.dirs:
            if not directory.is_dir():
                raise DataError(f"{directory}: no such directory; pass the output of `sea-tf teacher-embed`")
            paths = sorted(directory.glob("manifest-*.json"))
            if not paths:
                raise DataError(f"{directory}: no manifest-*.json found; is this a `sea-tf teacher-embed` output?")
            manifests = [read_manifest(path) for path in paths]
            _check_jobs(directory, paths, manifests, allow_partial)
            for path, manifest in zip(paths, manifests):
                if not manifest.get("complete") and not allow_incomplete:
                    raise DataError(f"{path}: job {manifest.get('job')} has not finished; re-run its "
                                    "`sea-tf teacher-embed` command to complete it")
                self._check_compatible(manifest, path)
                self.manifests.append(manifest)
                self.manifest_paths.append(path)
                for entry in manifest["shards"]:
                    info = ShardInfo(directory / entry["name"], int(entry["rows"]), offset, path)
                    if not info.path.is_file():
                        raise DataError(f"{info.path}: listed in {path} but missing; re-run the teacher-embed job")
                    self.shards.append(info)
                    offset += info.n_rows
        self.n_rows = offset
        first = self.manifests[0]
        self.embedding_size = int(first["embedding_size"])
        self.student_sample_rate = int(first["student_sample_rate"])
        self.teacher_card = first["teacher_card"]
        self.teacher_card_sha256 = first["teacher_card_sha256"]
        # Manifests written before sensor columns existed list none: their shards hold SHARD_KEYS.
        held = [set(m.get("columns", SHARD_KEYS)) for m in self.manifests]
        self.columns = tuple(k for k in SHARD_KEYS + OPTIONAL_KEYS if all(k in h for h in held))
        self._ends = np.array([s.offset + s.n_rows for s in self.shards], dtype=np.int64)
        self.targets: Path | None = None
        if targets is not None:
            self._attach_targets(Path(targets))

    def _check_compatible(self, manifest: Mapping[str, Any], path: Path) -> None:
        if not self.manifests:
            return
        first, where = self.manifests[0], self.manifest_paths[0]
        for key in ("teacher_card_sha256", "embedding_size", "student_sample_rate", "hop_size"):
            if manifest.get(key) != first.get(key):
                raise DataError(f"{path}: {key} = {manifest.get(key)!r} differs from {where} "
                                f"({first.get(key)!r}); only shards from one teacher and config can be read together")

    def _attach_targets(self, targets: Path) -> None:
        self.targets = targets
        card_file = targets / "card.json"
        try:
            card = json.loads(card_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{card_file}: no readable targets card ({exc}); run `sea-tf reduce apply`") from exc
        if not card.get("complete"):
            raise DataError(f"{targets}: `sea-tf reduce apply` has not finished here; re-run it to complete the targets")
        self._target_paths = {info: targets / name for info, name in zip(self.shards, self.target_names())}
        for info, path in self._target_paths.items():
            if not path.is_file():
                raise DataError(f"{path}: target shard missing for {info.path}; run `sea-tf reduce apply` on "
                                "these teacher shards")

    def target_names(self) -> list[str]:
        """Where ``sea-tf reduce apply`` writes each shard's targets, relative to the targets directory.

        ``<job id>/<shard name>``: ``<job id>`` is 16 hex digits of the sha256 of the shard's
        manifest (canonical JSON), so two teacher-embed runs that both wrote ``shard-0of1-*`` get
        separate targets, and a moved shard directory keeps its own. A job listed twice with identical
        manifests (the same directory given twice, or two synthetic tables) has its k-th repeat in
        ``<job id>-<k>``.

        Returns
        -------
        list of str [len(shards)], in row order.
        """
        job_ids = {path: canonical_sha256(m)[:16] for path, m in zip(self.manifest_paths, self.manifests)}
        seen: dict[tuple[str, str], int] = {}
        names: list[str] = []
        for info in self.shards:
            key = (job_ids[info.manifest], info.path.name)
            seen[key] = seen.get(key, 0) + 1
            folder = key[0] if seen[key] == 1 else f"{key[0]}-{seen[key]}"
            names.append(f"{folder}/{info.path.name}")
        return names

    def target_path(self, i: int) -> Path:
        """Path of shard ``i``'s target file (needs ``ShardSet(..., targets=DIR)``)."""
        if self.targets is None:
            raise DataError("key 'target' needs ShardSet(..., targets=DIR) from `sea-tf reduce apply`")
        return self._target_paths[self.shards[int(i)]]

    def __len__(self) -> int:
        return self.n_rows

    def _file(self, info: ShardInfo, key: str) -> Path:
        if key == "target":
            if self.targets is None:
                raise DataError("key 'target' needs ShardSet(..., targets=DIR) from `sea-tf reduce apply`")
            return self._target_paths[info]
        if key in SENSOR_KEYS and key not in self.columns:
            raise DataError(f"{', '.join(map(str, self.dirs))}: these shards carry no {key} (some job was "
                            "embedded without a sensor manifest); re-run `sea-tf teacher-embed --sensor-manifest CSV`")
        if key in LEVEL_KEYS and key not in self.columns:
            raise DataError(f"{', '.join(map(str, self.dirs))}: these shards carry no A-weighted level {key} (some "
                            "job was embedded before sea-tf stored it); re-run `sea-tf teacher-embed`, or sample "
                            "with `quality: rms-group` (the unweighted loudness_db)")
        if key not in SHARD_KEYS + OPTIONAL_KEYS:
            raise DataError(f"unknown shard key {key!r}; known: {', '.join(SHARD_KEYS + OPTIONAL_KEYS + ('target',))}")
        return info.path

    def read_shard(self, i: int, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` of ``key`` in shard ``i`` (local row numbers).

        Returns
        -------
        np.ndarray [shape=(stop - start, ...)]; strings for ``source``.
        """
        stop = self.shards[i].n_rows if stop is None else stop
        return self._read_rows(i, key, slice(start, stop))

    def _read_rows(self, i: int, key: str, rows: slice | np.ndarray) -> np.ndarray:
        """``key`` of shard ``i`` at ``rows`` (a slice, or sorted local row numbers)."""
        path = self._file(self.shards[i], key)
        try:
            with h5py.File(path, "r") as fh:
                data = fh[key][rows]
        except (OSError, KeyError) as exc:
            raise DataError(f"{path}: cannot read dataset {key!r} ({exc}); the shard is damaged, delete it "
                            "and re-run the command that wrote it") from exc
        if key in _STRING_KEYS:
            data = np.array([s.decode("utf-8") if isinstance(s, bytes) else s for s in data], dtype=object)
        return data

    def iter_chunks(self, keys: str | Sequence[str], *, rows: int = 4096, start: int = 0,
                    stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Iterate over consecutive rows in chunks that never cross a shard boundary.

        Parameters
        ----------
        keys : list of str
            Datasets to read (``embedding``, ``audio``, ..., ``target``).
        rows : int
            Largest chunk, in rows; memory is bounded by ``rows`` times the row size.
        start, stop : int
            Global row range.

        Yields
        ------
        dict
            ``{key: array [n, ...]}`` plus ``"row"`` (int64 [n], global row numbers) and
            ``"shard"`` (index into :attr:`shards`).
        """
        if isinstance(keys, str):
            keys = [keys]
        stop = self.n_rows if stop is None else min(stop, self.n_rows)
        for i, info in enumerate(self.shards):
            lo, hi = max(start, info.offset), min(stop, info.offset + info.n_rows)
            for a in range(lo, hi, max(1, int(rows))):
                b = min(a + rows, hi)
                chunk: dict[str, Any] = {key: self.read_shard(i, key, a - info.offset, b - info.offset) for key in keys}
                chunk["row"] = np.arange(a, b, dtype=np.int64)
                chunk["shard"] = i
                yield chunk

    def read(self, key: str, index: npt.ArrayLike) -> np.ndarray:
        """Rows ``index`` (global row numbers, any order) of ``key``.

        Parameters
        ----------
        key : str
        index : array_like of int [shape=(m,)]

        Returns
        -------
        np.ndarray [shape=(m, ...)] in the order of ``index``.
        """
        wanted = np.asarray(index, dtype=np.int64).reshape(-1)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.n_rows):
            raise DataError(f"row index out of range [0, {self.n_rows}) for shards in {self.dirs}")
        which = np.searchsorted(self._ends, wanted, side="right")
        out = None
        for i in np.unique(which):
            mask = which == i
            local = wanted[mask] - self.shards[i].offset
            rows = np.unique(local)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            if 4 * len(rows) >= hi - lo:  # dense: one contiguous read, then pick rows
                part = self.read_shard(int(i), key, lo, hi)[local - lo]
            else:  # sparse: let HDF5 read just those rows
                part = self._read_rows(int(i), key, rows)[np.searchsorted(rows, local)]
            if out is None:
                out = np.empty((wanted.size,) + part.shape[1:], dtype=part.dtype)
            out[mask] = part
        if out is None:
            return np.empty((0,), dtype=object if key in _STRING_KEYS else _DTYPES.get(key, np.float32))
        return out

    def describe(self) -> dict[str, Any]:
        """Small JSON-able summary (for cards): directories, manifests' hashes and row count."""
        return {"dirs": [str(d) for d in self.dirs], "n_rows": self.n_rows,
                "manifests": [{"path": str(p), "sha256": canonical_sha256(m)}
                              for p, m in zip(self.manifest_paths, self.manifests)],
                "teacher_card_sha256": self.teacher_card_sha256}


def _check_jobs(directory: Path, paths: Sequence[Path], manifests: Sequence[Mapping[str, Any]],
                allow_partial: bool) -> None:
    """Refuse a directory whose jobs are not one complete set ``0ofN .. (N-1)ofN`` of one N.

    Two sizes mean two runs over the same files (duplicate rows); a missing job means rows
    silently absent from every later stage, unless ``allow_partial`` asks for just that.
    """
    from sea_tf.teacher.jobs import parse_job

    jobs: dict[int, list[int]] = {}
    for path, manifest in zip(paths, manifests):
        kn = parse_job(str(manifest.get("job")))  # parse_job reads any value as text
        if kn is None:
            raise DataError(f"{path}: job {manifest.get('job')!r} is not of the form KofN; re-run "
                            "`sea-tf teacher-embed` to rewrite this directory")
        jobs.setdefault(kn[1], []).append(kn[0])
    if len(jobs) > 1:
        listed = "; ".join(f"N={n}: {', '.join(job_name(k, n) for k in sorted(ks))}" for n, ks in sorted(jobs.items()))
        raise DataError(f"{directory}: holds jobs of different array sizes ({listed}); they embed the same files "
                        "twice. Keep one run's manifest-*.json and shard-* files there (move the others away)")
    (n, present), = jobs.items()
    missing = sorted(set(range(n)) - set(present))
    if missing and not allow_partial:
        names = ", ".join(job_name(k, n) for k in missing)
        raise DataError(f"{directory}: job(s) {names} missing (found {len(present)} of {n}); run them (a SLURM "
                        f"array: sbatch --array={','.join(map(str, missing))} ...; `sea-tf teacher-embed --status "
                        f"{directory}` lists every job), or pass --allow-partial to read only the jobs present")


def new_manifest(job: str, teacher_card: Mapping[str, Any], config: Mapping[str, Any], embedding_size: int,
                 student_sample_rate: int, hop_size: float, *, inputs: Mapping[str, Any] | None = None,
                 sensors: bool = False, levels: bool = False) -> dict[str, Any]:
    """An empty (unfinished) manifest dict for ``job``; see :func:`write_table` for a complete one.

    ``sensors``: the shards will hold :data:`SENSOR_KEYS` too; ``levels``: :data:`LEVEL_KEYS` too
    (both listed under ``columns``).
    """
    columns = SHARD_KEYS + (SENSOR_KEYS if sensors else ()) + (LEVEL_KEYS if levels else ())
    return {"format": MANIFEST_FORMAT, "job": job, "columns": list(columns),
            "teacher_card": teacher_card, "teacher_card_sha256": canonical_sha256(teacher_card),
            "config": config, "config_sha256": canonical_sha256(config),
            "embedding_size": int(embedding_size), "student_sample_rate": int(student_sample_rate),
            "hop_size": float(hop_size), "inputs": inputs or {},
            "shards": [], "failed": [], "n_rows": 0, "complete": False}


def write_table(out_dir: Path | str, arrays: Mapping[str, npt.ArrayLike], teacher_card: Mapping[str, Any], *,
                shard_rows: int = 1024, job: str = "0of1", hop_size: float = 0.5,
                config: Mapping[str, Any] | None = None, compression: str | None = None) -> Path:
    """Write in-memory rows as a complete shard directory (synthetic data, tests, benchmarks).

    Parameters
    ----------
    out_dir : str or Path
    arrays : dict
        ``embedding`` [n, D] is required; missing keys get neutral values (zero audio at 8 kHz
        unless ``audio`` is given, timestamps ``k * hop_size``, loudness −120 dB, source
        ``"synthetic"``, label and fold −1). ``sensor_id`` [n] and ``recording_time`` [n] (Unix s)
        are written only when given, both together; so is ``dBA`` [n] (A-weighted level, dBFS).
    teacher_card : dict
    shard_rows : int
        Rows per shard file.

    Returns
    -------
    Path
        The manifest path.
    """
    out_dir = Path(out_dir)
    emb = np.asarray(arrays["embedding"], dtype=np.float32)
    n = len(emb)
    full: dict[str, Any] = {"embedding": emb,
            "audio": arrays.get("audio", np.zeros((n, 8000), np.float32)),
            "timestamp": arrays.get("timestamp", np.arange(n) * hop_size),
            "loudness_db": arrays.get("loudness_db", np.full(n, -120.0, np.float32)),
            "source": arrays.get("source", np.array(["synthetic"] * n, dtype=object)),
            "label": arrays.get("label", np.full(n, -1, np.int32)),
            "fold": arrays.get("fold", np.full(n, -1, np.int32))}
    given = [key for key in SENSOR_KEYS if key in arrays]
    if given and len(given) != len(SENSOR_KEYS):
        raise DataError(f"write_table: {given[0]} without {set(SENSOR_KEYS).difference(given).pop()}; "
                        "pass both or neither")
    levels = [key for key in LEVEL_KEYS if key in arrays]
    full.update({key: arrays[key] for key in given + levels})
    manifest = new_manifest(job, teacher_card, config or {"synthetic": True}, emb.shape[1],
                            np.shape(full["audio"])[1], hop_size, sensors=bool(given), levels=bool(levels))
    for k, a in enumerate(range(0, n, shard_rows)):
        name = shard_name(job, k)
        write_h5(out_dir / name, {key: value[a:a + shard_rows] for key, value in full.items()}, compression=compression)
        manifest["shards"].append({"name": name, "rows": min(shard_rows, n - a)})
    manifest["n_rows"], manifest["complete"] = n, True
    path = out_dir / f"manifest-{job}.json"
    atomic.write_json(path, manifest)
    return path
