"""openl3/edgel3-style embedding API: arrays → (embedding, timestamps); files → ``<base>[_suffix].npz``.

Mirrors ``openl3.get_audio_embedding`` / ``process_audio_file``: every argument is validated up
front and raises a :class:`~sea_tf.errors.SeaTFError` subclass; output files hold
``embedding`` (T×D float32) and ``timestamps`` (T, float64 seconds). Unlike openl3, windows are
never all held at once: arrays and files are resampled, framed and embedded a block at a time
(:mod:`sea_tf.audio` streaming), so memory is flat in the input's length, and in a batch of files
each failure (memory included) is that file's alone.

Like edgel3, the default model has trained weights: the published SEA-64 student
(``edgel3/sea-64``) from the weights cache. When it is not cached the call fails before anything
is written, with a line saying how to fetch or import it; a preset named explicitly (``sea-64``)
still works, with a :class:`~sea_tf.errors.SeaTFWarning` that its weights are untrained.
"""
import dataclasses
import numbers
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from sea_tf import atomic
from sea_tf.audio import check_hop_size, check_sample_rate, stream_array_windows, stream_windows
from sea_tf.errors import AudioError, ModelError, SeaTFError

if TYPE_CHECKING:  # TensorFlow is imported only when a model is resolved
    from sea_tf.audio import WindowBlock
    from sea_tf.models import SeaModel

#: ``embedding`` [T, D] float32 and ``timestamps`` [T] float64 seconds.
Embedding = npt.NDArray[np.float32]
Timestamps = npt.NDArray[np.float64]

#: None: the resolver's default, the published SEA-64 from the weights cache
#: (:data:`sea_tf.models.resolve.DEFAULT_MODEL`).
DEFAULT_MODEL = None
_MODEL_CACHE: "dict[tuple[str, int, str] | str, SeaModel]" = {}
_MODEL_CACHE_SIZE = 4


def get_model(model: "str | Path | SeaModel | None" = DEFAULT_MODEL) -> "SeaModel":
    """Resolve ``model`` with :func:`sea_tf.models.load_model`, caching a few resolved specs.

    Presets are seeded, so a cached preset equals a freshly built one (and warns again, as a fresh
    one would); files, catalogue names and the default are keyed by the file they resolve to now
    (path and modification time), so another weights cache (``$SEA_TF_HOME``) is never served
    from this one.

    Parameters
    ----------
    model : str, Path, SeaModel or None
        As in :func:`get_embedding`.

    Returns
    -------
    SeaModel
    """
    from sea_tf.models import PRESETS, SeaModel, load_model
    from sea_tf.models import resolve

    if isinstance(model, SeaModel):
        return model
    if model is not None and not isinstance(model, (str, Path)):
        raise ModelError(f"model must be a preset name, a path or a SeaModel; got {type(model).__name__}")
    if model is None:
        file = resolve.default_model_path()      # raises, with the fetch/import hint, when not cached
    elif str(model) in PRESETS:
        file = None
    elif Path(model).expanduser().is_file():
        file = Path(model).expanduser()
    elif resolve.is_catalogue_spec(str(model)):
        file = resolve.resolve_catalogue(str(model))
    else:
        file = None                              # load_model names what is wrong with it
    key: tuple[str, int, str] | str = ((str(file.resolve()), file.stat().st_mtime_ns, str(model)) if file is not None
                                       else str(model))
    if key not in _MODEL_CACHE:
        if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = load_model(model)
    elif model is not None:
        resolve.warn_if_untrained(str(model), _MODEL_CACHE[key])
    return _MODEL_CACHE[key]


def _check_options(hop_size: float, center: bool, batch_size: int, verbose: bool) -> None:
    check_hop_size(hop_size)
    if not isinstance(center, (bool, np.bool_)):
        raise SeaTFError(f"center must be True or False, got {center!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise SeaTFError(f"batch_size must be a positive integer, got {batch_size!r}")
    if verbose not in (0, 1, True, False):
        raise SeaTFError(f"verbose must be True/False (or 0/1), got {verbose!r}")


@overload
def get_embedding(audio: np.ndarray, sr: int, model: "str | Path | SeaModel | None" = DEFAULT_MODEL,
                  hop_size: float = 0.1, center: bool = True, batch_size: int = 32,
                  verbose: bool = False) -> tuple[Embedding, Timestamps]: ...


@overload
def get_embedding(audio: list[np.ndarray] | tuple[np.ndarray, ...], sr: int | list[int] | tuple[int, ...],
                  model: "str | Path | SeaModel | None" = DEFAULT_MODEL, hop_size: float = 0.1, center: bool = True,
                  batch_size: int = 32, verbose: bool = False) -> tuple[list[Embedding], list[Timestamps]]: ...


def get_embedding(audio: np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...], sr: int | list[int] | tuple[int, ...],
                  model: "str | Path | SeaModel | None" = DEFAULT_MODEL, hop_size: float = 0.1, center: bool = True,
                  batch_size: int = 32, verbose: bool = False
                  ) -> tuple[Embedding, Timestamps] | tuple[list[Embedding], list[Timestamps]]:
    """Embed audio with a sea-tf model, openl3/edgel3 style.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,) or (n, channels)] or list of them
        Samples in [-1, 1]; multichannel audio is averaged to mono.
    sr : int or list of int
        Sample rate(s) in Hz; resampled (soxr HQ) to the model's rate.
    model : str, Path, SeaModel or None
        Anything :func:`sea_tf.models.load_model` accepts. None (default): the published SEA-64
        (``edgel3/sea-64``) from the weights cache; a :class:`~sea_tf.errors.ModelError` says how
        to fetch or import it when it is not there. A preset name (``"sea-64"``) gives seeded,
        untrained weights and warns.
    hop_size : float
        Seconds between windows.
    center : bool
        Centre window ``k`` on ``k * hop_size`` (prepend half a window of zeros).
    batch_size : int
        Windows per forward pass (windows of all inputs are batched together).
    verbose : bool
        Show a progress bar.

    Returns
    -------
    embedding : np.ndarray [shape=(T, D), dtype=float32] (or a list, one per input)
    timestamps : np.ndarray [shape=(T,), dtype=float64] (or a list), seconds

    Raises
    ------
    ModelError
        ``model`` is None and the published SEA-64 is not in the weights cache, or ``model``
        names nothing (the message says how to fetch, import or name a model).

    Warns
    -----
    SeaTFWarning
        ``model`` names an untrained preset.

    Examples
    --------
    >>> emb, ts = get_embedding(np.random.randn(16000) * 0.1, 16000)  # published SEA-64  # doctest: +SKIP
    >>> emb.shape, ts[:3]                                                                  # doctest: +SKIP
    ((16, 64), array([0. , 0.1, 0.2]))
    """
    _check_options(hop_size, center, batch_size, verbose)
    is_list = isinstance(audio, (list, tuple))
    audios = list(audio) if is_list else [audio]
    if is_list and not audios:
        raise AudioError("audio is an empty list; pass at least one array")
    if isinstance(sr, (list, tuple)):
        if not is_list or len(sr) != len(audios):
            raise AudioError(f"sr is a list of {len(sr)} rates but audio is "
                             f"{'a list of ' + str(len(audios)) if is_list else 'a single array'}; "
                             "give one rate, or one per array")
        rates = [check_sample_rate(r) for r in sr]
    else:
        rates = [check_sample_rate(sr)] * len(audios)
    seamodel = get_model(model)
    embeddings, timestamps = [], []
    with tqdm(unit="win", desc="embedding", disable=not verbose) as bar:
        for i, (a, r) in enumerate(zip(audios, rates)):
            # Windows framed and embedded a block at a time: a 10-min clip at 48 kHz framed whole
            # was one 1.07 GiB array; now only the input and the embeddings grow with its length.
            blocks = stream_array_windows(a, r, seamodel.sample_rate, hop_size=hop_size, center=center,
                                          block_windows=_block_windows(batch_size),
                                          name=f"audio[{i}]" if is_list else "audio")
            rows, ts = _embed_blocks(seamodel, blocks, batch_size, bar.update)
            embeddings.append(rows)
            timestamps.append(ts)
    if is_list:
        return embeddings, timestamps
    return embeddings[0], timestamps[0]


def _block_windows(batch_size: int) -> int:
    """Windows per decoded block: whole forward passes, and a few of them (fewer Python round trips)."""
    return batch_size * max(1, 64 // batch_size)


def _embed_blocks(seamodel: "SeaModel", blocks: "Iterable[WindowBlock]", batch_size: int,
                  progress: Callable[[int], object] | None = None) -> tuple[Embedding, Timestamps]:
    """Embed the :class:`~sea_tf.audio.WindowBlock` s of one input; (embedding [T, D], timestamps [T])."""
    rows, stamps = [], []
    for block in blocks:
        rows.append(seamodel.embed_frames(block.frames[0], batch_size=batch_size, progress=progress))
        stamps.append(block.timestamps)
    return np.concatenate(rows), np.concatenate(stamps)


def get_output_path(filepath: Path | str, suffix: str, output_dir: Path | str | None = None) -> Path:
    """openl3's output naming: ``<output_dir or dirname(filepath)>/<basename>`` + suffix.

    Parameters
    ----------
    filepath : str or Path
        The input audio file.
    suffix : str
        Appended to the base name (without extension); a leading ``"_"`` is added unless it starts
        with ``"."``. Callers pass ``"x.npz"`` → ``clip_x.npz`` or ``".npz"`` → ``clip.npz``.
    output_dir : str or Path, optional

    Returns
    -------
    Path
    """
    filepath = Path(filepath)
    base = filepath.stem
    name = base + suffix if suffix.startswith(".") else f"{base}_{suffix}"
    return Path(output_dir if output_dir is not None else filepath.parent) / name


def output_path_for(filepath: Path | str, output_dir: Path | str | None = None, suffix: str | None = None) -> Path:
    """``<base>[_suffix].npz`` for ``filepath`` (the npz files :func:`process_file` writes)."""
    return get_output_path(filepath, (suffix or "") + ".npz", output_dir)


@dataclasses.dataclass
class EmbedSummary:
    """What a batch embedding job did, file by file.

    Attributes
    ----------
    processed : list of Path
        Output files written.
    skipped : list of (Path, str)
        Inputs skipped, with the reason (output exists).
    failed : list of (Path, str)
        Inputs that failed, with the error sentence.
    """
    processed: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[Path, str]] = dataclasses.field(default_factory=list)

    @staticmethod
    def _with_path(path: Path, reason: str) -> str:
        return reason if reason.startswith(str(path)) else f"{path}: {reason}"

    def lines(self) -> list[str]:
        """Human summary: one count line, then one line per skipped or failed file."""
        out = [f"processed {len(self.processed)}, skipped {len(self.skipped)}, failed {len(self.failed)}"]
        out += [f"  skipped {self._with_path(path, reason)}" for path, reason in self.skipped]
        out += [f"  failed  {self._with_path(path, reason)}" for path, reason in self.failed]
        return out


def _failure(path: Path, exc: BaseException) -> str:
    """The sentence recorded for a file whose embedding failed with ``exc``."""
    if isinstance(exc, MemoryError):
        return (f"{path}: out of memory while embedding it ({exc or 'MemoryError'}); the other files went on; "
                "free memory or lower --batch-size and re-run, which resumes")
    if isinstance(exc, SeaTFError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]      # TensorFlow's messages run over many lines
    return f"{path}: {type(exc).__name__}: {first}"


class _Job:
    """One input of :func:`embed_files` on its way: embedded rows so far, windows still queued."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path, self.out = path, out
        # None once written or failed: the rows are not kept after that
        self.rows: list[Embedding] | None = []
        self.timestamps: list[Timestamps] | None = []
        self.queued = 0           # windows read and not yet embedded
        self.read = False         # every window of the file is read
        self.failed = False


#: What a single file may fail with while the batch goes on: sea-tf's own errors, the operating
#: system's (a read or write), and running out of memory on one file.
_PER_FILE_ERRORS = (SeaTFError, OSError, MemoryError)


def embed_files(paths: Iterable[Path | str], model: "str | Path | SeaModel | None" = DEFAULT_MODEL,
                output_dir: Path | str | None = None, suffix: str | None = None, hop_size: float = 0.1,
                center: bool = True, batch_size: int = 32, overwrite: bool = False,
                verbose: bool = False) -> EmbedSummary:
    """Embed many files, batching windows across files; a failing file never stops the others.

    Each file is read, resampled and framed in blocks (:func:`sea_tf.audio.stream_windows`, its
    header checked first), so memory is flat in its length; windows of consecutive files share
    forward passes of ``batch_size``. A file's ``.npz`` is written (atomically) as soon as its last
    window is embedded. A file that fails (unreadable, a header that lies, out of memory, its
    output not writable) is recorded in the summary with its reason and the batch goes on.
    Existing outputs are skipped unless ``overwrite``, so re-running resumes an interrupted job.

    Parameters
    ----------
    paths : list of str or Path
    model, hop_size, center, batch_size, verbose
        As in :func:`get_embedding`.
    output_dir : str or Path, optional
        Where to write; default beside each input.
    suffix : str, optional
        Output names are ``<base>_<suffix>.npz``.
    overwrite : bool

    Returns
    -------
    EmbedSummary
    """
    _check_options(hop_size, center, batch_size, verbose)
    seamodel = get_model(model)
    import tensorflow as tf   # loaded with the model already; its errors (e.g. out of memory in a kernel)

    per_file_errors = _PER_FILE_ERRORS + (tf.errors.OpError,)
    summary = EmbedSummary()
    todo: list[_Job] = []
    claimed: dict[str, Path] = {}
    for path in map(Path, paths):
        out = output_path_for(path, output_dir, suffix)
        key = os.path.abspath(out)
        if key in claimed:
            summary.failed.append((path, f"its output {out} is also the output of {claimed[key]}; "
                                         "use --suffix or separate output directories"))
            continue
        claimed[key] = path
        if out.exists() and not overwrite:
            summary.skipped.append((path, f"{out} exists (use --overwrite to replace it)"))
            continue
        todo.append(_Job(path, out))
    queue: list[tuple[_Job, np.ndarray]] = []   # (job, windows [b, sr]) read and not yet embedded, in reading order

    def fail(job: _Job, exc: BaseException) -> None:
        if not job.failed:
            job.failed = True
            job.rows = job.timestamps = None
            summary.failed.append((job.path, _failure(job.path, exc)))
            if job.read:          # counted here; a file failing while read is counted by the loop
                bar.update(1)
        queue[:] = [item for item in queue if item[0] is not job]

    def finish(job: _Job) -> None:
        if job.failed or not job.read or job.queued:
            return
        assert job.rows is not None and job.timestamps is not None   # dropped only once failed or written
        try:
            atomic.save_npz(job.out, embedding=np.concatenate(job.rows).astype(np.float32, copy=False),
                            timestamps=np.concatenate(job.timestamps).astype(np.float64, copy=False))
        except per_file_errors as exc:
            fail(job, exc)
            return
        summary.processed.append(job.out)
        job.rows = job.timestamps = None
        bar.update(1)

    def embed(items: list[tuple[_Job, np.ndarray]]) -> None:
        embedding = seamodel.embed_frames(np.concatenate([w for _, w in items]), batch_size=batch_size)
        start = 0
        for job, windows in items:
            assert job.rows is not None   # a queued job has neither failed nor been written
            job.rows.append(embedding[start:start + len(windows)])
            job.queued -= len(windows)
            start += len(windows)

    def flush() -> None:
        if not queue:
            return
        items = list(queue)
        queue.clear()
        jobs = list(dict.fromkeys(j for j, _ in items))
        try:
            embed(items)
        except per_file_errors as exc:
            if len(jobs) == 1:
                fail(jobs[0], exc)
                return
            # Windows of several files shared the pass: each file alone, so one file's failure
            # (its memory, its samples) is recorded for that file only.
            for job in jobs:
                try:
                    embed([item for item in items if item[0] is job])
                except per_file_errors as exc_job:
                    fail(job, exc_job)
        for job in jobs:
            finish(job)

    with tqdm(total=len(todo), unit="file", desc="embed", disable=not verbose) as bar:
        for job in todo:
            try:
                for block in stream_windows(job.path, [seamodel.sample_rate], hop_size=hop_size, center=center,
                                            block_windows=batch_size):
                    assert job.timestamps is not None   # a job being read has not failed
                    job.timestamps.append(block.timestamps)
                    job.queued += len(block.timestamps)
                    queue.append((job, block.frames[0]))
                    if sum(len(w) for _, w in queue) >= batch_size:
                        flush()
                        if job.failed:
                            break
            except per_file_errors as exc:
                fail(job, exc)
            if job.failed:
                bar.update(1)
                continue
            job.read = True
            finish(job)
        flush()
    return summary


@overload
def process_file(filepath: Path | str, output_dir: Path | str | None = None, suffix: str | None = None,
                 model: "str | Path | SeaModel | None" = DEFAULT_MODEL, hop_size: float = 0.1, center: bool = True,
                 batch_size: int = 32, overwrite: bool = False, verbose: bool = False) -> Path: ...


@overload
def process_file(filepath: list[Path | str] | tuple[Path | str, ...], output_dir: Path | str | None = None,
                 suffix: str | None = None, model: "str | Path | SeaModel | None" = DEFAULT_MODEL,
                 hop_size: float = 0.1, center: bool = True, batch_size: int = 32, overwrite: bool = False,
                 verbose: bool = False) -> list[Path]: ...


def process_file(filepath: Path | str | list[Path | str] | tuple[Path | str, ...], output_dir: Path | str | None = None,
                 suffix: str | None = None, model: "str | Path | SeaModel | None" = DEFAULT_MODEL,
                 hop_size: float = 0.1, center: bool = True, batch_size: int = 32, overwrite: bool = False,
                 verbose: bool = False) -> Path | list[Path]:
    """Embed audio file(s) and write ``<base>[_suffix].npz`` (``embedding``, ``timestamps``).

    Parameters
    ----------
    filepath : str, Path or list of them
    output_dir : str or Path, optional
        Default: beside each input.
    suffix : str, optional
    model, hop_size, center, batch_size, verbose
        As in :func:`get_embedding`.
    overwrite : bool
        Replace existing outputs (otherwise they are skipped).

    Returns
    -------
    Path or list of Path
        The output file(s), written or already present. A single file that fails raises its
        :class:`~sea_tf.errors.SeaTFError`; for a list, failures raise one error naming each file.
    """
    is_list = isinstance(filepath, (list, tuple))
    paths = [Path(p) for p in filepath] if isinstance(filepath, (list, tuple)) else [Path(filepath)]
    for path in paths:
        if not path.is_file():
            raise AudioError(f"{path}: no such audio file; check the path")
    summary = embed_files(paths, model=model, output_dir=output_dir, suffix=suffix, hop_size=hop_size,
                          center=center, batch_size=batch_size, overwrite=overwrite, verbose=verbose)
    if summary.failed:
        if not is_list:
            raise AudioError(summary.failed[0][1])
        raise AudioError("; ".join(f"{p}: {r}" for p, r in summary.failed))
    outputs = [output_path_for(p, output_dir, suffix) for p in paths]
    return outputs if is_list else outputs[0]
