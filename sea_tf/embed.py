"""openl3/edgel3-style embedding API: arrays → (embedding, timestamps); files → ``<base>[_suffix].npz``.

Mirrors ``openl3.get_audio_embedding`` / ``process_audio_file``: every argument is validated up
front and raises a :class:`~sea_tf.errors.SeaTFError` subclass; lists of arrays are embedded
together (all windows stacked, predicted in batches) and split back; output files hold
``embedding`` (T×D float32) and ``timestamps`` (T, float64 seconds).

Like edgel3, the default model has trained weights: the published SEA-64 student
(``edgel3/sea-64``) from the weights cache. When it is not cached the call fails before anything
is written, with a line saying how to fetch or import it; a preset named explicitly (``sea-64``)
still works, with a :class:`~sea_tf.errors.SeaTFWarning` that its weights are untrained.
"""
import dataclasses
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from sea_tf import atomic
from sea_tf.audio import check_hop_size, check_sample_rate, load_audio, prepare_frames
from sea_tf.errors import AudioError, ModelError, SeaTFError

if TYPE_CHECKING:  # TensorFlow is imported only when a model is resolved
    from sea_tf.models import SeaModel

#: None: the resolver's default, the published SEA-64 from the weights cache
#: (:data:`sea_tf.models.resolve.DEFAULT_MODEL`).
DEFAULT_MODEL = None
_MODEL_CACHE = {}
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
    key = (str(file.resolve()), file.stat().st_mtime_ns, str(model)) if file is not None else str(model)
    if key not in _MODEL_CACHE:
        if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = load_model(model)
    elif model is not None:
        resolve.warn_if_untrained(str(model), _MODEL_CACHE[key])
    return _MODEL_CACHE[key]


def _check_options(hop_size, center, batch_size, verbose):
    check_hop_size(hop_size)
    if not isinstance(center, (bool, np.bool_)):
        raise SeaTFError(f"center must be True or False, got {center!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise SeaTFError(f"batch_size must be a positive integer, got {batch_size!r}")
    if verbose not in (0, 1, True, False):
        raise SeaTFError(f"verbose must be True/False (or 0/1), got {verbose!r}")


def get_embedding(audio, sr, model=DEFAULT_MODEL, hop_size=0.1, center=True, batch_size=32, verbose=False):
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
    framed = [prepare_frames(a, r, seamodel.sample_rate, hop_size=hop_size, center=center,
                             name=f"audio[{i}]" if is_list else "audio")
              for i, (a, r) in enumerate(zip(audios, rates))]
    frames = np.concatenate([f for f, _ in framed])
    with tqdm(total=len(frames), unit="win", desc="embedding", disable=not verbose) as bar:
        embedding = seamodel.embed_frames(frames, batch_size=batch_size, progress=bar.update)
    splits = np.cumsum([len(f) for f, _ in framed])[:-1]
    embeddings = np.split(embedding, splits)
    timestamps = [ts for _, ts in framed]
    if is_list:
        return embeddings, timestamps
    return embeddings[0], timestamps[0]


def get_output_path(filepath, suffix, output_dir=None):
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


def output_path_for(filepath, output_dir=None, suffix=None):
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
    processed: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)

    @staticmethod
    def _with_path(path, reason):
        return reason if reason.startswith(str(path)) else f"{path}: {reason}"

    def lines(self):
        """Human summary: one count line, then one line per skipped or failed file."""
        out = [f"processed {len(self.processed)}, skipped {len(self.skipped)}, failed {len(self.failed)}"]
        out += [f"  skipped {self._with_path(path, reason)}" for path, reason in self.skipped]
        out += [f"  failed  {self._with_path(path, reason)}" for path, reason in self.failed]
        return out


def embed_files(paths, model=DEFAULT_MODEL, output_dir=None, suffix=None, hop_size=0.1, center=True,
                batch_size=32, overwrite=False, verbose=False):
    """Embed many files, batching windows across files; a failing file never stops the others.

    Files are read and framed in groups until the group holds at least ``batch_size`` windows,
    then embedded together and written one ``.npz`` per file (atomically). Existing outputs are
    skipped unless ``overwrite``, so re-running resumes an interrupted job.

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
    summary = EmbedSummary()
    todo, claimed = [], {}
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
        todo.append((path, out))
    group, n_windows = [], 0
    with tqdm(total=len(todo), unit="file", desc="embed", disable=not verbose) as bar:
        for path, out in todo:
            try:
                audio, sr = load_audio(path)
                frames, ts = prepare_frames(audio, sr, seamodel.sample_rate, hop_size=hop_size, center=center,
                                            name=str(path))
            except SeaTFError as exc:
                summary.failed.append((path, str(exc)))
                bar.update(1)
                continue
            group.append((path, out, frames, ts))
            n_windows += len(frames)
            if n_windows >= batch_size:
                _embed_group(seamodel, group, batch_size, summary)
                bar.update(len(group))
                group, n_windows = [], 0
        if group:
            _embed_group(seamodel, group, batch_size, summary)
            bar.update(len(group))
    return summary


def _embed_group(seamodel, group, batch_size, summary):
    frames = np.concatenate([g[2] for g in group])
    try:
        embedding = seamodel.embed_frames(frames, batch_size=batch_size)
    except SeaTFError as exc:
        summary.failed.extend((g[0], str(exc)) for g in group)
        return
    start = 0
    for path, out, file_frames, ts in group:
        emb = embedding[start:start + len(file_frames)]
        start += len(file_frames)
        try:
            atomic.save_npz(out, embedding=emb.astype(np.float32), timestamps=ts.astype(np.float64))
            summary.processed.append(out)
        except SeaTFError as exc:
            summary.failed.append((path, str(exc)))


def process_file(filepath, output_dir=None, suffix=None, model=DEFAULT_MODEL, hop_size=0.1, center=True,
                 batch_size=32, overwrite=False, verbose=False):
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
    paths = [Path(p) for p in (filepath if is_list else [filepath])]
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
