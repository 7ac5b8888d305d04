"""Real audio windows for int8 calibration and for held-out fidelity checks.

Sources are audio files / directories of audio files (resampled to the model's rate with soxr,
framed like openl3/edgel3), or teacher-shard directories (``manifest-*.json`` + shards, whose
``audio`` dataset already holds 1-s windows at the student's rate). Windows are drawn across files:
a seeded choice of files first, then an even quota of windows from each, so that one long
recording cannot dominate the set.

Held-out windows are kept apart from calibration by *source file*: every window is named by the
recording it came from (:func:`source_key`: an audio file's resolved path; a shard row's
``source`` resolved against its manifest's input root), and a held-out draw leaves out every
recording that calibration used, whether it reached calibration as a file or as shard rows.
A name that cannot be resolved (a shard without an input root) matches any path ending in it.
"""
import os
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sea_tf.audio import find_audio_files, load_audio, prepare_frames
from sea_tf.errors import ExportError, SeaTFError, SeaTFWarning
from sea_tf.shards import ShardSet


def is_shard_dir(path: Path | str) -> bool:
    """True when ``path`` is a directory written by ``sea-tf teacher-embed``."""
    path = Path(path)
    return path.is_dir() and any(path.glob("manifest-*.json"))


def split_sources(sources: Path | str | Iterable[Path | str] | None) -> tuple[list[Path], list[Path]]:
    """Split ``sources`` into (audio inputs, shard directories)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    audio: list[Path] = []
    shards: list[Path] = []
    for item in sources or []:
        (shards if is_shard_dir(item) else audio).append(Path(item))
    return audio, shards


def list_audio_files(inputs: Sequence[Path | str]) -> list[Path]:
    """Audio files under ``inputs`` (recursively), sorted; missing paths raise :class:`ExportError`."""
    try:
        return find_audio_files(inputs, recursive=True)
    except SeaTFError as exc:
        raise ExportError(f"calibration/held-out audio: {exc}") from exc


def windows_from_files(files: Iterable[Path | str], sample_rate: int, count: int, *, seed: int,
                       hop_size: float) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Up to ``count`` 1-s windows drawn across ``files``.

    Parameters
    ----------
    files : list of Path
        Audio files (any rate and channel count; resampled to ``sample_rate``).
    sample_rate : int
        The model's rate in Hz; windows are ``sample_rate`` samples long.
    count : int
        Windows wanted.
    seed : int
    hop_size : float
        Seconds between candidate windows in a file.

    Returns
    -------
    windows : np.ndarray [shape=(n, sample_rate), dtype=float32]
        ``n <= count`` (fewer when the files are short).
    origin : list of str
        The file each window came from.
    """
    rng = np.random.default_rng(seed)
    paths = list(files)
    if len(paths) > count:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), count, replace=False))]
    quota = -(-count // max(len(paths), 1))
    chosen: list[np.ndarray] = []
    origin: list[str] = []
    for path in paths:
        audio, sr = load_audio(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeaTFWarning)  # short clips are zero-padded, as at inference
            frames, _ = prepare_frames(audio, sr, sample_rate, hop_size=hop_size, center=True, name=str(path))
        if len(frames) > quota:
            frames = frames[np.sort(rng.choice(len(frames), quota, replace=False))]
        chosen.append(frames)
        origin += [str(path)] * len(frames)
    if not chosen:
        return np.zeros((0, sample_rate), np.float32), []
    windows = np.concatenate(chosen)
    if len(windows) > count:
        keep = np.sort(rng.choice(len(windows), count, replace=False))
        windows, origin = windows[keep], [origin[i] for i in keep]
    return windows.astype(np.float32, copy=False), origin


def file_key(path: Path | str) -> str:
    """The canonical name of an audio file named on this machine: its resolved absolute path.

    A relative path is relative to this process's working directory (``../audio/a.wav`` included).
    """
    return str(Path(os.path.expanduser(str(path))).resolve())


def source_key(name: Path | str, *, root: Path | str | None = None) -> str:
    """The canonical name of a shard row's recording: resolved absolute path, or the normalised relative name.

    Parameters
    ----------
    name : str or Path
        A shard row's ``source`` (relative to ``root``), or an absolute path.
    root : str or Path, optional
        What a relative ``name`` is relative to (a shard manifest's ``inputs.root``). A relative root
        (shards written before it was recorded resolved) is relative to a working directory no longer
        known, so the name stays relative and matches files as a path ending.
    """
    path = Path(os.path.expanduser(str(name)))
    if path.is_absolute():
        return str(path.resolve())
    if root and Path(os.path.expanduser(str(root))).is_absolute():
        return str((Path(os.path.expanduser(str(root))) / path).resolve())
    return Path(os.path.normpath(str(path))).as_posix()


def _key_filter(keys: Iterable[str]) -> Callable[[str], bool]:
    """A predicate: is a canonical source name one of ``keys`` (relative names match as path suffixes)?"""
    names = set(keys)
    relative = [k for k in names if not Path(k).is_absolute()]
    absolute = [k for k in names if Path(k).is_absolute()]

    def matches(key: str) -> bool:
        if key in names:
            return True
        if Path(key).is_absolute():
            return any(key.endswith("/" + r) for r in relative)
        return any(a.endswith("/" + key) for a in absolute)

    return matches


def _open_shards(dirs: Sequence[Path | str], allow_partial: bool) -> ShardSet:
    try:
        return ShardSet(dirs, allow_partial=allow_partial)
    except SeaTFError as exc:
        raise ExportError(f"calibration/held-out shards: {exc}") from exc


def shard_row_sources(shards: ShardSet) -> np.ndarray:
    """Canonical source name of every row of a :class:`~sea_tf.shards.ShardSet`, ``np.ndarray [n_rows]`` of str."""
    roots = {path: (m.get("inputs") or {}).get("root") for path, m in zip(shards.manifest_paths, shards.manifests)}
    keys = np.empty(shards.n_rows, dtype=object)
    for i, info in enumerate(shards.shards):
        names = shards.read_shard(i, "source")
        unique, inverse = np.unique(names.astype(str), return_inverse=True)
        resolved = np.array([source_key(u, root=roots[info.manifest]) for u in unique], dtype=object)
        keys[info.offset:info.offset + info.n_rows] = resolved[inverse]
    return keys


def source_files(sources: Path | str | Iterable[Path | str] | None, sample_rate: int, *,
                 allow_partial: bool) -> list[str]:
    """Sorted canonical names of every recording in ``sources`` (audio files and shard rows' sources).

    Shards at another rate than ``sample_rate`` (Hz) raise :class:`ExportError`.
    """
    audio_inputs, shard_dirs = split_sources(sources)
    keys = {file_key(f) for f in list_audio_files(audio_inputs)} if audio_inputs else set()
    if shard_dirs:
        shards = _open_shards(shard_dirs, allow_partial)
        _check_rate(shards, shard_dirs, sample_rate)
        keys |= set(shard_row_sources(shards))
    return sorted(keys)


def _check_rate(shards: ShardSet, dirs: Sequence[Path | str], sample_rate: int) -> None:
    if shards.student_sample_rate != int(sample_rate):
        raise ExportError(f"{', '.join(map(str, dirs))}: the shards hold {shards.student_sample_rate} Hz windows but "
                          f"the model takes {sample_rate} Hz; calibrate with shards made for this student or "
                          "with audio files (which are resampled)")


def split_held_out_files(files: Iterable[str], fraction: float, *, seed: int) -> list[str]:
    """A seeded share ``fraction`` of ``files`` (at least one; at least one left) kept for held-out windows.

    Raises :class:`ExportError` when there are fewer than two recordings to split.
    """
    names = sorted(files)
    if not names:
        raise ExportError("the calibration set is empty: no audio files or shard rows found; point --calibration at "
                          "audio files or shards")
    if len(names) < 2:
        raise ExportError(f"the calibration sources hold {len(names)} recording(s), too few to keep held-out windows "
                          "apart from calibration by file; pass --held-out with other audio")
    if not 0 < float(fraction) < 1:
        raise ExportError(f"held_out.fraction must be between 0 and 1, got {fraction}")
    n = min(len(names) - 1, max(1, int(round(float(fraction) * len(names)))))
    rng = np.random.default_rng(seed)
    return sorted(names[i] for i in rng.choice(len(names), n, replace=False))


def excluded_counts(sources: Path | str | Iterable[Path | str] | None, keys: Collection[str], *,
                    allow_partial: bool) -> dict[str, int]:
    """How much of ``sources`` a set of recordings ``keys`` covers: ``{"files", "windows"}`` (windows: shard rows)."""
    if not keys:
        return {"files": 0, "windows": 0}
    matches = _key_filter(keys)
    audio_inputs, shard_dirs = split_sources(sources)
    files = {file_key(f) for f in list_audio_files(audio_inputs) if matches(file_key(f))} if audio_inputs else set()
    windows = 0
    if shard_dirs:
        rows = shard_row_sources(_open_shards(shard_dirs, allow_partial))
        hit = np.array([matches(k) for k in rows], dtype=bool) if len(rows) else np.zeros(0, bool)
        windows = int(hit.sum())
        files |= set(rows[hit])
    return {"files": len(files), "windows": windows}


def _allowed(keys: Sequence[str] | np.ndarray, exclude: Collection[str],
             only: Collection[str] | None) -> npt.NDArray[np.bool_]:
    """Boolean mask of the canonical names ``keys`` that are not in ``exclude`` and (if given) are in ``only``."""
    unique, inverse = np.unique(np.asarray(keys, dtype=str), return_inverse=True)
    drop = _key_filter(exclude) if exclude else (lambda k: False)
    keep = _key_filter(only) if only is not None else (lambda k: True)
    ok = np.array([keep(k) and not drop(k) for k in unique], dtype=bool)
    return ok[inverse] if len(unique) else np.zeros(0, bool)


def windows_from_shards(dirs: Sequence[Path | str], sample_rate: int, count: int, *, seed: int,
                        allow_partial: bool, exclude: Collection[str] = (),
                        only: Collection[str] | None = None) -> tuple[npt.NDArray[np.float32], list[str]]:
    """``count`` random rows of the ``audio`` dataset of teacher shards.

    ``allow_partial``: read directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).
    ``exclude`` / ``only``: canonical source names (:func:`source_key`) whose rows are left out / the
    only ones drawn from. The returned origins are canonical source names.

    Raises :class:`ExportError` when the shards hold windows at another rate than the model's.
    """
    shards = _open_shards(dirs, allow_partial)
    _check_rate(shards, dirs, sample_rate)
    if shards.n_rows == 0:
        return np.zeros((0, sample_rate), np.float32), []
    keys = shard_row_sources(shards)
    candidates = np.flatnonzero(_allowed(keys, exclude, only)) if (exclude or only is not None) \
        else np.arange(shards.n_rows)
    if len(candidates) == 0:
        return np.zeros((0, sample_rate), np.float32), []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(candidates, min(count, len(candidates)), replace=False))
    windows = shards.read("audio", rows).astype(np.float32, copy=False)
    if windows.ndim != 2 or windows.shape[1] != int(sample_rate):
        raise ExportError(f"{dirs[0]}: shard audio has shape {list(windows.shape)}, not [n, {sample_rate}]; "
                          "re-run `sea-tf teacher-embed` for this student")
    return windows, [str(k) for k in keys[rows]]


def draw_windows(sources: Path | str | Iterable[Path | str] | None, sample_rate: int, count: int, *, seed: int,
                 hop_size: float, what: str = "calibration", exclude: Collection[str] = (),
                 only: Collection[str] | None = None,
                 allow_partial: bool) -> tuple[npt.NDArray[np.float32], list[str]]:
    """1-s windows at ``sample_rate`` from audio files, directories and/or teacher shards.

    Parameters
    ----------
    sources : str, Path or list of them
    sample_rate : int
        Hz.
    count : int
        Windows wanted (split between audio files and shards in proportion to how many sources
        of each kind were given).
    seed : int
    hop_size : float
        Seconds between candidate windows in audio files.
    what : str
        Name of the set in errors (``"calibration"``, ``"held-out"``).
    exclude : collection of str
        Recordings to leave out, as :func:`source_key` names (e.g. those calibration drew from, when
        drawing held-out windows): audio files and shard rows alike.
    only : collection of str, optional
        Draw only from these recordings (:func:`source_key` names).
    allow_partial : bool
        Read teacher-shard directories whose split run lacks some jobs.

    Returns
    -------
    windows : np.ndarray [shape=(n, sample_rate), dtype=float32]
        ``0 < n <= count``.
    origin : list of str
        Recording of each window (:func:`source_key`).
    """
    count = int(count)
    if count < 1:
        raise ExportError(f"{what}: the number of windows must be at least 1, got {count}")
    audio_inputs, shard_dirs = split_sources(sources)
    if not audio_inputs and not shard_dirs:
        raise ExportError(f"no {what} audio given; pass audio files, directories or teacher-shard directories "
                          f"(--calibration PATH)")
    parts: list[np.ndarray] = []
    origin: list[str] = []
    n_audio = count if not shard_dirs else (count * len(audio_inputs)) // (len(audio_inputs) + len(shard_dirs))
    if audio_inputs:
        files = list_audio_files(audio_inputs)
        if exclude or only is not None:
            files = [f for f, ok in zip(files, _allowed([file_key(f) for f in files], exclude, only)) if ok]
        try:
            w, o = windows_from_files(files, sample_rate, max(n_audio, 1), seed=seed, hop_size=hop_size)
        except SeaTFError as exc:
            raise ExportError(f"{what} audio: {exc}") from exc
        parts.append(w)
        origin += [file_key(x) for x in o]
    if shard_dirs:
        w, o = windows_from_shards(shard_dirs, sample_rate, max(count - n_audio, 1), seed=seed,
                                   allow_partial=allow_partial, exclude=exclude, only=only)
        parts.append(w)
        origin += o
    windows = np.concatenate(parts) if parts else np.zeros((0, sample_rate), np.float32)
    if len(windows) == 0:
        left_out = " once the calibration recordings are left out" if exclude else ""
        raise ExportError(f"the {what} set is empty: no audio windows found in "
                          f"{', '.join(map(str, audio_inputs + shard_dirs))}{left_out}; point it at other audio "
                          "files or shards")
    if not np.all(np.isfinite(windows)):
        raise ExportError(f"the {what} set holds NaN or infinite samples; check the audio files")
    return windows, origin


def check_windows(windows: npt.ArrayLike, sample_rate: int, *, what: str = "calibration") -> npt.NDArray[np.float32]:
    """Validate in-memory windows ``[n, sample_rate]`` (float) and return them as float32."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[0] == 0:
        raise ExportError(f"the {what} set must be a non-empty array [n, {sample_rate}]; got shape {list(windows.shape)}")
    if windows.shape[1] != int(sample_rate):
        raise ExportError(f"the {what} windows have {windows.shape[1]} samples but the model takes 1-s windows at "
                          f"{sample_rate} Hz ({sample_rate} samples); resample the audio to {sample_rate} Hz")
    if not np.all(np.isfinite(windows)):
        raise ExportError(f"the {what} set holds NaN or infinite samples")
    return windows.astype(np.float32, copy=False)


def representative_dataset(inputs: npt.ArrayLike) -> Callable[[], Iterator[list[npt.NDArray[np.float32]]]]:
    """The TFLite ``representative_dataset`` callable over ``inputs`` (one example per step).

    Parameters
    ----------
    inputs : np.ndarray [shape=(n, *model_input_shape)], float32
        What the converted graph takes: raw windows, front-end images or embeddings.
    """
    examples = np.asarray(inputs, np.float32)

    def generate() -> Iterator[list[npt.NDArray[np.float32]]]:
        for i in range(len(examples)):
            yield [examples[i:i + 1]]

    return generate
