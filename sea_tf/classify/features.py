"""Frame embeddings of a labelled dataset, cached per clip and keyed by model and audio hash.

Each clip is framed like ``sea_tf.embed.get_embedding`` (1-s windows, hop 0.1 s, centred,
docs/PROTOCOL.md §1.3) or, optionally, like the L3E downstream extraction (no centring, tail dropped, docs/PROTOCOL.md §3.5),
embedded, and its ``[T, D]`` embedding cached as ``CACHE/<model name>/<framing>/<clip>.npz``. Each
cache file records the model key (sha256 of the model card and weight file) and the audio file's
sha256; a file made by another model or from other audio is detected and recomputed. Every frame
inherits its clip's label and fold, so splits made over clips never mix a clip's frames.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import numpy.typing as npt

from sea_tf import atomic, cards, tf_logs
from sea_tf.errors import ClassifyError, DataError, ModelError, OutputError, SeaTFError, SeaTFWarning

if TYPE_CHECKING:  # annotations only: datasets and models are imported when first used
    from sea_tf.data.base import LabelledDataset
    from sea_tf.models.seamodel import SeaModel

FRAMINGS = ("centered", "uncentered", "l3e")

#: ``(path, sample_rate, hop_size, framing) -> (frames [T, sample_rate], timestamps [T])``.
FrameFn = Callable[[Path, int, float, str], tuple[npt.NDArray[np.float32], np.ndarray]]


@dataclasses.dataclass
class ClipSet:
    """The labelled clips of a dataset, independent of its on-disk layout.

    Attributes
    ----------
    names : list of str
        Unique clip names (``slice_file_name``), used as cache names and in messages.
    paths : list of Path
        Audio files.
    folds : np.ndarray [shape=(n_clips,)], int
    labels : np.ndarray [shape=(n_clips,)], int
        Class ids indexing ``classes``.
    classes : list of str
    fold_ids : list of int
        The protocol's folds (1..10 for UrbanSound8K, 1..5 for ESC-50).
    kind : str
        ``"us8k"``, ``"esc50"`` or a free name.
    sources : np.ndarray [shape=(n_clips,)], int, optional
        Source recording of each clip (UrbanSound8K ``fsID``, ESC-50 ``src_file``), −1 where unknown:
        slices of one recording must not land on both sides of a hold-out.
    """
    names: list[str]
    paths: list[Path]
    folds: np.ndarray
    labels: np.ndarray
    classes: list[str]
    fold_ids: list[int]
    kind: str = "us8k"
    sources: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, keep: npt.ArrayLike) -> ClipSet:
        """A ClipSet with only the clips where boolean ``keep`` is True."""
        idx = np.flatnonzero(keep)
        return dataclasses.replace(self, names=[self.names[i] for i in idx], paths=[self.paths[i] for i in idx],
                                   folds=self.folds[idx], labels=self.labels[idx],
                                   sources=None if self.sources is None else self.sources[idx])


def clipset_from_dataset(dataset: LabelledDataset, *, kind: str = "us8k") -> ClipSet:
    """A :class:`ClipSet` from a ``sea_tf.data`` dataset (``.clips``, ``.classes``, ``.folds``, ``.n_folds``)."""
    clips = list(dataset.clips)
    if not clips:
        raise DataError(f"{getattr(dataset, 'root', 'dataset')}: the metadata lists no clips; check the dataset root")
    names = [str(c.slice_file_name) for c in clips]
    dupes = sorted({n for n in names if names.count(n) > 1}) if len(set(names)) != len(names) else []
    if dupes:
        raise DataError(f"{getattr(dataset, 'root', 'dataset')}: clip names appear more than once in the "
                        f"metadata: {dupes[:5]}; fix the metadata")
    # ``dataset.folds`` lists only folds with clips; the protocol's folds are 1..n_folds, so an empty
    # fold is reported rather than silently dropped from the protocol.
    n_folds = getattr(dataset, "n_folds", 0)
    fold_ids = list(range(1, n_folds + 1)) if n_folds else sorted(int(f) for f in dataset.folds)
    return ClipSet(names=names, paths=[Path(c.path) for c in clips],
                   folds=np.array([int(c.fold) for c in clips]), labels=np.array([int(c.class_id) for c in clips]),
                   classes=list(dataset.classes), fold_ids=fold_ids, kind=getattr(dataset, "kind", None) or kind,
                   sources=np.array([_source_id(c) for c in clips]))


def _source_id(clip: object) -> int:
    """The clip's source recording (``fs_id``), −1 where unknown or not carried by the clip."""
    fs_id = getattr(clip, "fs_id", None)
    return -1 if fs_id is None else int(fs_id)


def load_clipset(root: Path | str, kind: str) -> ClipSet:
    """Read a labelled dataset (``kind`` = ``"us8k"`` or ``"esc50"``) through ``sea_tf.data``."""
    try:
        from sea_tf.data import LabelledDataset, load_labelled_dataset
    except ImportError as exc:
        raise ClassifyError(f"sea_tf.data.load_labelled_dataset is not available ({exc}); "
                            "the data module must be installed to read datasets") from exc
    dataset = load_labelled_dataset(root, kind=kind)
    assert isinstance(dataset, LabelledDataset)   # us8k/esc50 layouts; a UST root goes through classify/ust.py
    _warn_unlisted_audio(dataset)
    return clipset_from_dataset(dataset, kind=kind)


def _warn_unlisted_audio(dataset: LabelledDataset) -> None:
    """Warn about audio files under ``ROOT/audio`` that the metadata does not list (they are ignored)."""
    from sea_tf.audio import AUDIO_EXTENSIONS

    audio_dir = Path(dataset.root) / "audio"
    if not audio_dir.is_dir():
        return
    listed = {Path(c.path).resolve() for c in dataset.clips}
    extra = sorted(str(p.relative_to(audio_dir)) for p in audio_dir.rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS and p.resolve() not in listed)
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        warnings.warn(f"{audio_dir}: {len(extra)} audio file(s) are not in the metadata and are ignored: {shown}; "
                      "the metadata and the audio may be from different versions of the dataset",
                      SeaTFWarning, stacklevel=3)


@dataclasses.dataclass
class FrameFeatures:
    """Frame embeddings of a :class:`ClipSet` for one model.

    Attributes
    ----------
    x : np.ndarray [shape=(n_frames, dim)], float32
    frame_clip : np.ndarray [shape=(n_frames,)], int
        Index into ``clips`` of each frame's clip.
    clips : ClipSet
    model_name, model_key : str
    failed : dict
        ``{clip name: reason}`` for clips that could not be embedded (they have no frames).
    stats : dict
        Cache accounting of the extraction (``computed``, ``cached``, ``stale_model``, ``stale_audio``).
    """
    x: np.ndarray
    frame_clip: np.ndarray
    clips: ClipSet
    model_name: str
    model_key: str
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def y(self) -> np.ndarray:
        """Frame labels ``int [n_frames]`` (each frame inherits its clip's label)."""
        return self.clips.labels[self.frame_clip]

    @property
    def frame_fold(self) -> np.ndarray:
        """Frame folds ``int [n_frames]``."""
        return self.clips.folds[self.frame_clip]

    @property
    def embedding_size(self) -> int:
        return int(self.x.shape[1])


# --------------------------------------------------------------------------------------------- models

@dataclasses.dataclass
class Embedder:
    """What feature extraction needs from a model, whether Keras or an exported ``.tflite``.

    Attributes
    ----------
    name : str
        Short name used for the cache directory and in tables.
    key : str
        sha256 identifying the exact model (card + weight file).
    card : dict
        The model card (for a ``.tflite``, the sidecar's ``model_card``).
    sample_rate, frame_samples : int
    embed_frames : callable
        ``frames float32 [N, frame_samples] -> float32 [N, D]``.
    model_sha256 : str or None
        sha256 of the model file's bytes (``.keras``/``.h5`` or the ``.tflite`` itself); None for a
        preset or catalogue name given without a file. Results carry it so that ``sea-tf report``
        joins them with the export and device rows of the same file.
    source_sha256 : str or None
        For a ``.tflite``: its sidecar's ``source.sha256`` (the file it was converted from), or None.
    tflite : bool
        The model is an exported ``.tflite``.
    """
    name: str
    key: str
    card: dict
    sample_rate: int
    frame_samples: int
    embed_frames: Callable[[npt.NDArray[np.float32]], np.ndarray]
    model_sha256: str | None = None
    source_sha256: str | None = None
    tflite: bool = False

    def identity(self) -> dict:
        """``{"model_sha256": …}``, plus ``"source_sha256"`` for a ``.tflite``: the keys results carry."""
        return {"model_sha256": self.model_sha256, **({"source_sha256": self.source_sha256} if self.tflite else {})}


def model_key(card: dict, weight_file: Path | str | None = None) -> str:
    """sha256 of the canonical JSON of ``card`` plus, when given, the bytes of ``weight_file``."""
    digest = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode())
    if weight_file is not None:
        digest.update(cards.sha256_file(weight_file).encode())
    return digest.hexdigest()


def spec_name(spec: object) -> str:
    """A filesystem-safe short name for a model spec (``sea-64``, ``student``, ``x.int8``)."""
    text = str(getattr(spec, "name", spec))
    path = Path(text)
    if path.suffix in (".keras", ".h5", ".tflite"):
        text = path.name[: -len(path.suffix)]
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "model"


def open_embedder(spec: str | Path | SeaModel, *, name: str | None = None) -> Embedder:
    """Load ``spec`` (preset, catalogue name, ``.h5``/``.keras`` path, ``SeaModel`` or ``.tflite``).

    A ``.tflite`` goes through the device harness (``device.runner.load_artifact``), which reads
    its JSON sidecar and computes the front end with the numpy twin when it is not in the model.
    """
    name = name or spec_name(spec)
    if str(spec).endswith(".tflite"):
        return _open_tflite(Path(str(spec)), name)
    try:
        from sea_tf.models import load_model
    except ImportError as exc:
        raise ModelError(f"sea_tf.models is not available ({exc}); cannot load model {spec!r}") from exc
    model = load_model(spec)
    path = Path(str(spec))
    weight_file = path if isinstance(spec, (str, Path)) and path.is_file() else None
    return Embedder(name=name, key=model_key(model.card, weight_file), card=model.card,
                    sample_rate=int(model.sample_rate), frame_samples=int(model.frame_samples),
                    embed_frames=model.embed_frames,
                    model_sha256=cards.sha256_file(weight_file) if weight_file else None)


def _open_tflite(path: Path, name: str) -> Embedder:
    if not path.is_file():
        raise ModelError(f"{path}: no such .tflite file; export the model first (sea-tf export)")
    try:
        from device.runner import load_artifact
    except ImportError as exc:
        raise ModelError(f"{path}: evaluating a .tflite needs the device harness (device/runner.py: "
                         f"load_artifact), which is not available ({exc})") from exc
    sidecar = path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar}: the .tflite's JSON sidecar is missing or unreadable ({exc}); re-export") from exc
    try:
        with tf_logs.quiet_stderr():  # LiteRT announces its XNNPACK delegate at the first allocation
            artifact = load_artifact(path)
    except Exception as exc:  # the device harness has its own error types; name the file either way
        raise ModelError(f"{path}: cannot load the .tflite through the device harness ({exc})") from exc
    if not artifact.sample_rate or not artifact.frame_samples:
        raise ModelError(f"{path}: the sidecar does not say the model's sample rate and window length; re-export it")
    tflite_sha256 = cards.sha256_file(path)
    key = hashlib.sha256((tflite_sha256 + cards.sha256_file(sidecar)).encode()).hexdigest()
    source = meta.get("source")
    # export's sidecars name the file the artifact was converted from (null for a preset built in memory)
    source_sha256 = source.get("sha256") if isinstance(source, dict) else None

    def embed_frames(frames: npt.NDArray[np.float32]) -> np.ndarray:
        try:
            return artifact.embed_frames(frames)
        except Exception as exc:  # device errors are not SeaTFErrors; keep the per-clip failure path
            raise ModelError(f"{path}: the interpreter failed on these frames ({exc})") from exc

    return Embedder(name=name, key=key, card=meta.get("model_card", meta), sample_rate=int(artifact.sample_rate),
                    frame_samples=int(artifact.frame_samples), embed_frames=embed_frames,
                    model_sha256=tflite_sha256, source_sha256=source_sha256, tflite=True)


# -------------------------------------------------------------------------------------------- framing

def frame_l3e(audio: npt.ArrayLike, sr: int, *, hop_size: float) -> tuple[npt.NDArray[np.float32], np.ndarray]:
    """L3E downstream framing (docs/PROTOCOL.md §3.5): no centring, tail after the last full hop dropped.

    Audio shorter than one window is zero-padded symmetrically to one window.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)], mono at ``sr``
    sr : int
    hop_size : float, seconds

    Returns
    -------
    frames : np.ndarray [shape=(1 + (n - sr) // hop, sr), dtype=float32]
    timestamps : np.ndarray [shape=(T,)]
        Window start times ``k * hop_size`` in seconds.
    """
    import librosa

    samples = np.asarray(audio, dtype=np.float32)
    hop = int(hop_size * sr)
    if len(samples) < sr:
        pad = sr - len(samples)
        samples = np.pad(samples, (pad // 2, pad - pad // 2))
    frames = librosa.util.frame(samples, frame_length=sr, hop_length=hop, axis=0)
    return np.ascontiguousarray(frames, dtype=np.float32), np.arange(len(frames)) * float(hop_size)


def clip_frames(path: Path | str, sample_rate: int, hop_size: float,
                framing: str) -> tuple[npt.NDArray[np.float32], np.ndarray]:
    """Read ``path`` and cut it into the model's 1-s windows.

    Parameters
    ----------
    path : Path
    sample_rate : int
        The model's rate; windows are ``sample_rate`` samples.
    hop_size : float, seconds
    framing : {"centered", "uncentered", "l3e"}
        ``centered``/``uncentered``: openl3/edgel3 framing with ``center`` True/False;
        ``l3e``: :func:`frame_l3e`.

    Returns
    -------
    frames : np.ndarray [shape=(T, sample_rate), dtype=float32]
    timestamps : np.ndarray [shape=(T,)]
    """
    from sea_tf import audio as audio_mod

    samples, sr = audio_mod.load_audio(path)
    if framing == "l3e":
        mono = audio_mod.to_mono(audio_mod.check_audio(samples, name=str(path)))
        return frame_l3e(audio_mod.resample(mono, sr, sample_rate), sample_rate, hop_size=hop_size)
    return audio_mod.prepare_frames(samples, sr, sample_rate, hop_size=hop_size,
                                    center=framing == "centered", name=str(path))


# ---------------------------------------------------------------------------------------------- cache

def _framing_tag(hop_size: float, framing: str) -> str:
    return f"hop{float(hop_size):g}-{framing}"


def cache_file(cache_dir: Path | str, model_name: str, clip_name: str, *, hop_size: float, framing: str) -> Path:
    """``CACHE/<model>/<hop…-framing>/<clip stem>.npz``."""
    return Path(cache_dir) / model_name / _framing_tag(hop_size, framing) / (Path(clip_name).stem + ".npz")


def read_cached(path: Path, key: str, audio_sha: str) -> npt.NDArray[np.float32] | str | None:
    """The cached embedding at ``path`` if model ``key`` made it from audio ``audio_sha``.

    Returns
    -------
    np.ndarray [shape=(T, D)] or str or None
        The embedding; ``"model"`` or ``"audio"`` when the file was made by another model or from
        other audio (stale: recompute); ``"damaged"`` when it cannot be read (empty, truncated, not a
        zip, a key missing: recompute); ``None`` when absent.
    """
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            if str(data["model_key"]) != key:
                return "model"
            if str(data["audio_sha256"]) != audio_sha:
                return "audio"
            emb = data["embedding"].astype(np.float32)
    # np.load of an empty file raises EOFError, of a truncated one zipfile.BadZipFile, and a damaged
    # member zlib.error or ValueError; any of them only means "compute this clip again".
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error):
        return "damaged"
    return emb if emb.ndim == 2 else "damaged"


def _save_cached(path: Path, **arrays: np.ndarray) -> None:
    """Write one cache file; a failed write (full disk, quota, file-size limit) is an :class:`OutputError`.

    Not a per-clip failure: every later clip would fail the same way, and up to
    ``max_failed_fraction`` of the clips would be dropped with only a warning.
    """
    try:
        atomic.save_npz(path, **arrays)
    except (OSError, OutputError) as exc:
        # atomic's own OutputError names the disk's free space; the cache's way out is --cache-dir
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        reason = getattr(cause, "strerror", None) or cause or exc
        raise OutputError(f"{path}: cannot write the embedding cache ({reason}); {atomic.free_space(path.parent)} in "
                          f"{path.parent}: free some space or pass another --cache-dir") from exc


def extract_features(clips: ClipSet, embedder: Embedder, cache_dir: Path | str, *, hop_size: float, framing: str,
                     max_failed_fraction: float, progress: bool,
                     frame_fn: FrameFn | None = None) -> FrameFeatures:
    """Frame embeddings of every clip, reusing valid cache files.

    Parameters
    ----------
    clips : ClipSet
    embedder : Embedder
    cache_dir : str or Path
    hop_size : float
        Seconds between windows (0.1 in the published protocol).
    framing : {"centered", "uncentered", "l3e"}
    max_failed_fraction : float
        Clips that cannot be read or embedded are skipped with a warning naming them; more than
        this fraction of failures is an error.
    progress : bool
    frame_fn : callable, optional
        ``(path, sample_rate, hop_size, framing) -> (frames, timestamps)`` in place of
        :func:`clip_frames` (SONYC-UST fixes every clip to 10 s first: ``sea_tf.classify.ust``).

    Returns
    -------
    FrameFeatures
    """
    from tqdm.auto import tqdm

    from sea_tf.audio import check_hop_size

    if framing not in FRAMINGS:
        raise ClassifyError(f"unknown framing {framing!r}; choose one of {FRAMINGS}")
    hop_size = check_hop_size(hop_size)
    cache_root = Path(cache_dir) / embedder.name
    try:
        # The directory first: cards.card_path gives a directory's card only when it exists.
        cache_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{cache_root}: cannot create the embedding cache ({exc}); pass a writable "
                          f"--cache-dir") from exc
    # "weights" up front: features of an untrained preset must not pass for real ones.
    cards.write_card(cache_root, {"model_name": embedder.name, "model_key": embedder.key,
                                  "weights": cards.weights_provenance(embedder.card), "model_card": embedder.card})
    xs, owners, failed = [], [], {}
    stats = {"computed": 0, "cached": 0, "stale_model": 0, "stale_audio": 0}
    short = 0
    for i in tqdm(range(len(clips)), desc=f"embed {embedder.name}", unit="clip", disable=not progress):
        name, path = clips.names[i], Path(clips.paths[i])
        try:
            if not path.is_file():
                raise DataError(f"audio file missing: {path}")
            audio_sha = cards.sha256_file(path)
            target = cache_file(cache_dir, embedder.name, name, hop_size=hop_size, framing=framing)
            emb = read_cached(target, embedder.key, audio_sha)
            if isinstance(emb, np.ndarray):
                stats["cached"] += 1
            else:
                if emb in ("model", "audio"):
                    stats[f"stale_{emb}"] += 1
                elif emb == "damaged":
                    warnings.warn(f"{target}: damaged cache file (empty, truncated or incomplete); recomputing it",
                                  SeaTFWarning, stacklevel=2)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    frames, ts = (frame_fn or clip_frames)(path, embedder.sample_rate, hop_size, framing)
                short += any("shorter than" in str(w.message) for w in caught)
                for w in caught:  # one summary below instead of a warning per short clip
                    if "shorter than" not in str(w.message):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                emb = np.asarray(embedder.embed_frames(frames), dtype=np.float32)
                if emb.ndim != 2 or len(emb) != len(frames) or not np.all(np.isfinite(emb)):
                    raise ModelError(f"model {embedder.name} returned embeddings of shape {emb.shape} "
                                     f"(or non-finite values) for {len(frames)} frames")
                _save_cached(target, embedding=emb, timestamps=ts, model_key=np.array(embedder.key),
                             audio_sha256=np.array(audio_sha), framing=np.array(_framing_tag(hop_size, framing)))
                stats["computed"] += 1
        except OutputError:
            raise  # an unwritable cache is not a property of this clip
        except (SeaTFError, OSError) as exc:
            failed[name] = str(exc)
            continue
        xs.append(emb)
        owners.append(np.full(len(emb), i))
    if stats["stale_model"]:
        warnings.warn(f"{cache_root}: {stats['stale_model']} cached embedding(s) were made by a different model "
                      f"than {embedder.name} (key {embedder.key[:12]}); recomputed them", SeaTFWarning, stacklevel=2)
    if stats["stale_audio"]:
        warnings.warn(f"{cache_root}: {stats['stale_audio']} clip(s) changed on disk since they were cached; "
                      "recomputed them", SeaTFWarning, stacklevel=2)
    if short:
        warnings.warn(f"{short} clip(s) shorter than the 1-s window were zero-padded to one window",
                      SeaTFWarning, stacklevel=2)
    _report_failures(failed, len(clips), max_failed_fraction, embedder.name)
    dims = {e.shape[1] for e in xs}
    if len(dims) > 1:
        raise ClassifyError(f"{cache_root}: clips have embeddings of different sizes {sorted(dims)}; delete the "
                            "cache directory and re-run")
    x = np.concatenate(xs) if xs else np.zeros((0, 0), np.float32)
    feats = FrameFeatures(x=x, frame_clip=np.concatenate(owners) if owners else np.zeros(0, int), clips=clips,
                          model_name=embedder.name, model_key=embedder.key, failed=failed, stats=stats)
    return feats


def _report_failures(failed: dict[str, str], n_clips: int, max_fraction: float, model_name: str) -> None:
    if not failed:
        return
    shown = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:5])
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    if len(failed) > max_fraction * n_clips:
        raise DataError(f"{len(failed)} of {n_clips} clips could not be embedded with {model_name}{more}: {shown}. "
                        "Missing files mean the metadata and the audio on disk disagree (run `sea-tf data check ROOT`)")
    warnings.warn(f"skipped {len(failed)} of {n_clips} clips that could not be embedded with {model_name}"
                  f"{more}: {shown}", SeaTFWarning, stacklevel=3)
