"""Real audio windows for int8 calibration and for held-out fidelity checks.

Sources are audio files / directories of audio files (resampled to the model's rate with soxr,
framed like openl3/edgel3), or teacher-shard directories (``manifest-*.json`` + shards, whose
``audio`` dataset already holds 1-s windows at the student's rate). Windows are drawn across files:
a seeded choice of files first, then an even quota of windows from each, so that one long
recording cannot dominate the set.
"""
import warnings
from pathlib import Path

import numpy as np

from sea_tf.audio import find_audio_files, load_audio, prepare_frames
from sea_tf.errors import ExportError, SeaTFError, SeaTFWarning
from sea_tf.shards import ShardSet


def is_shard_dir(path):
    """True when ``path`` is a directory written by ``sea-tf teacher-embed``."""
    path = Path(path)
    return path.is_dir() and any(path.glob("manifest-*.json"))


def split_sources(sources):
    """Split ``sources`` into (audio inputs, shard directories)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    audio, shards = [], []
    for item in sources or []:
        (shards if is_shard_dir(item) else audio).append(Path(item))
    return audio, shards


def list_audio_files(inputs):
    """Audio files under ``inputs`` (recursively), sorted; missing paths raise :class:`ExportError`."""
    try:
        return find_audio_files(inputs, recursive=True)
    except SeaTFError as exc:
        raise ExportError(f"calibration/held-out audio: {exc}") from exc


def windows_from_files(files, sample_rate, count, seed=0, hop_size=0.5):
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
    files = list(files)
    if len(files) > count:
        files = [files[i] for i in sorted(rng.choice(len(files), count, replace=False))]
    quota = -(-count // max(len(files), 1))
    chosen, origin = [], []
    for path in files:
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


def windows_from_shards(dirs, sample_rate, count, seed=0, allow_partial=False):
    """``count`` random rows of the ``audio`` dataset of teacher shards.

    ``allow_partial``: read directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Raises :class:`ExportError` when the shards hold windows at another rate than the model's.
    """
    try:
        shards = ShardSet(dirs, allow_partial=allow_partial)
    except SeaTFError as exc:
        raise ExportError(f"calibration shards: {exc}") from exc
    if shards.student_sample_rate != int(sample_rate):
        raise ExportError(f"{', '.join(map(str, dirs))}: the shards hold {shards.student_sample_rate} Hz windows but "
                          f"the model takes {sample_rate} Hz; calibrate with shards made for this student or "
                          "with audio files (which are resampled)")
    if shards.n_rows == 0:
        return np.zeros((0, sample_rate), np.float32), []
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(shards.n_rows, min(count, shards.n_rows), replace=False))
    windows = shards.read("audio", rows).astype(np.float32, copy=False)
    if windows.ndim != 2 or windows.shape[1] != int(sample_rate):
        raise ExportError(f"{dirs[0]}: shard audio has shape {list(windows.shape)}, not [n, {sample_rate}]; "
                          "re-run `sea-tf teacher-embed` for this student")
    origin = [str(s) for s in shards.read("source", rows)]
    return windows, origin


def draw_windows(sources, sample_rate, count, seed=0, hop_size=0.5, what="calibration", exclude=(),
                 allow_partial=False):
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
        Audio files to leave out (e.g. the calibration files when drawing held-out windows).
    allow_partial : bool
        Read teacher-shard directories whose split run lacks some jobs.

    Returns
    -------
    windows : np.ndarray [shape=(n, sample_rate), dtype=float32]
        ``0 < n <= count``.
    origin : list of str
        Source file of each window.
    """
    count = int(count)
    if count < 1:
        raise ExportError(f"{what}: the number of windows must be at least 1, got {count}")
    audio_inputs, shard_dirs = split_sources(sources)
    if not audio_inputs and not shard_dirs:
        raise ExportError(f"no {what} audio given; pass audio files, directories or teacher-shard directories "
                          f"(--calibration PATH)")
    parts, origin = [], []
    n_audio = count if not shard_dirs else (count * len(audio_inputs)) // (len(audio_inputs) + len(shard_dirs))
    if audio_inputs:
        files = [f for f in list_audio_files(audio_inputs) if str(f) not in set(exclude)]
        try:
            w, o = windows_from_files(files, sample_rate, max(n_audio, 1), seed, hop_size)
        except SeaTFError as exc:
            raise ExportError(f"{what} audio: {exc}") from exc
        parts.append(w)
        origin += o
    if shard_dirs:
        w, o = windows_from_shards(shard_dirs, sample_rate, max(count - n_audio, 1), seed, allow_partial)
        parts.append(w)
        origin += o
    windows = np.concatenate(parts) if parts else np.zeros((0, sample_rate), np.float32)
    if len(windows) == 0:
        raise ExportError(f"the {what} set is empty: no audio windows found in "
                          f"{', '.join(map(str, audio_inputs + shard_dirs))}; point it at audio files or shards")
    if not np.all(np.isfinite(windows)):
        raise ExportError(f"the {what} set holds NaN or infinite samples; check the audio files")
    return windows, origin


def check_windows(windows, sample_rate, what="calibration"):
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


def representative_dataset(inputs):
    """The TFLite ``representative_dataset`` callable over ``inputs`` (one example per step).

    Parameters
    ----------
    inputs : np.ndarray [shape=(n, *model_input_shape)], float32
        What the converted graph takes: raw windows, front-end images or embeddings.
    """
    inputs = np.asarray(inputs, np.float32)

    def generate():
        for i in range(len(inputs)):
            yield [inputs[i:i + 1]]

    return generate
