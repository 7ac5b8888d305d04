"""What a teacher-embed run reads: the sorted input files, and job K of N's share of them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sea_tf.errors import ConfigError, DataError


@dataclass(frozen=True)
class InputFile:
    """One audio file to embed: where it is, how it is named in the shards, its label and fold (−1)."""
    path: Path
    source: str
    label: int = -1
    fold: int = -1


def list_inputs(inputs: Path | str | None, *, recursive: bool) -> tuple[str, Path, list[InputFile]]:
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


def _abs(root: Path, entry: str) -> Path:
    p = Path(entry).expanduser()
    return p if p.is_absolute() else root / p


def _relative(path: Path | str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _us8k_files(root: Path) -> list[InputFile]:
    try:
        from sea_tf.data.us8k import US8K
    except ImportError as exc:
        raise DataError(f"{root}: reading an UrbanSound8K root needs sea_tf.data.us8k, which is not "
                        "installed in this checkout; pass the audio directory instead") from exc
    dataset = US8K(root)
    clips = getattr(dataset, "clips", dataset)
    return [InputFile(Path(c.path), _relative(c.path, root), int(c.class_id), int(c.fold)) for c in clips]


def partition(files: list[InputFile], k: int, n: int) -> list[InputFile]:
    """Job ``k`` of ``n``'s files: every n-th of the sorted list, starting at k (disjoint, covering)."""
    return list(files[k::n])
