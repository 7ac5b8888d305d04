"""What every labelled, fold-organised dataset looks like to the rest of sea-tf.

:class:`LabelledDataset` is the common interface of the UrbanSound8K and ESC-50 loaders, so the
classify stage handles both (and the generated demo dataset) with the same code.
"""
import csv
import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sea_tf.errors import DataError


@dataclasses.dataclass(frozen=True)
class Clip:
    """One labelled audio clip.

    Attributes
    ----------
    path : Path
        The audio file (it may be missing; see :meth:`LabelledDataset.check_audio`).
    fold : int
        Predefined fold (1-10 for UrbanSound8K, 1-5 for ESC-50).
    class_id : int
        Class index (UrbanSound8K ``classID``, ESC-50 ``target``).
    class_name : str
    slice_file_name : str
        File name as in the metadata (unique within the dataset).
    fs_id : int or None
        Freesound id of the source recording (ESC-50: ``src_file`` / the clip id).
    start, end : float or None
        Position of the slice in its source recording, in seconds (UrbanSound8K only).
    salience : int or None
        1 = foreground, 2 = background (UrbanSound8K only).
    """
    path: Path
    fold: int
    class_id: int
    class_name: str
    slice_file_name: str
    fs_id: int | None = None
    start: float | None = None
    end: float | None = None
    salience: int | None = None


class LabelledDataset:
    """A dataset of labelled clips in predefined folds.

    Subclasses set :attr:`kind`, :attr:`n_folds` and :attr:`default_classes`, and fill
    ``self.clips`` in ``_load``.

    Attributes
    ----------
    root : Path
    kind : str
        ``"us8k"`` or ``"esc50"``.
    title : str
        The dataset's usual name (``"UrbanSound8K"``, ``"ESC-50"``), used in messages.
    n_folds : int
        Number of predefined folds of the protocol (10 or 5).
    metadata_path : Path or None
        The metadata file read (None when derived from file names).
    clips : list of Clip
    classes : list of str
        Class names indexed by class id.
    folds : list of int
        The folds that hold at least one clip, sorted.
    """
    kind = ""
    title = ""
    n_folds = 0
    default_classes: list[str] = []

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root not found (or not a directory); {self._root_hint()}")
        self.metadata_path: Path | None = None
        self.clips: list[Clip] = []
        names = self._load()
        if not self.clips:
            where = self.metadata_path or self.root
            raise DataError(f"{where}: the dataset lists no clips; check that this is the right root")
        self.classes = self._class_list(names)
        self.folds = sorted({clip.fold for clip in self.clips})

    # Subclasses implement these two.
    def _load(self) -> dict[int, str]:
        """Fill ``self.clips``; return ``{class_id: name}`` as given by the metadata."""
        raise NotImplementedError

    def _root_hint(self) -> str:
        return "pass the dataset's root directory"

    def _class_list(self, names: dict[int, str]) -> list[str]:
        classes = list(self.default_classes)
        for class_id, name in names.items():
            classes[class_id] = name
        return classes

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}: {len(self.clips)} clips, folds {self.folds})"

    def clips_in_fold(self, fold: int) -> list[Clip]:
        """Clips of predefined ``fold`` (1-based), in metadata order.

        Raises
        ------
        DataError
            ``fold`` is not one of the protocol's folds.
        """
        if not isinstance(fold, int) or not 1 <= fold <= self.n_folds:
            raise DataError(f"{self.root}: fold {fold!r} does not exist; {self.title} folds are 1-{self.n_folds}")
        return [clip for clip in self.clips if clip.fold == fold]

    def split(self, test_fold: int) -> tuple[list[int], int, int]:
        """Folds of one run of the published protocol (docs/PROTOCOL.md §4.1–4.2).

        Returns
        -------
        (list of int, int, int)
            Training folds, validation fold (the preceding fold, cyclic) and the test fold.
        """
        self.clips_in_fold(test_fold)  # validates the fold number
        validation = (test_fold - 2) % self.n_folds + 1
        train = [f for f in range(1, self.n_folds + 1) if f not in (test_fold, validation)]
        return train, validation, test_fold

    def class_counts(self) -> dict[str, int]:
        """``{class_name: number of clips}`` in class-id order."""
        counts = Counter(clip.class_id for clip in self.clips)
        return {self.classes[i]: counts[i] for i in sorted(counts)}

    def fold_counts(self) -> dict[int, int]:
        """``{fold: number of clips}`` for every protocol fold (0 for empty folds)."""
        counts = Counter(clip.fold for clip in self.clips)
        return {fold: counts.get(fold, 0) for fold in range(1, self.n_folds + 1)}

    def check_audio(self, *, progress: bool = False) -> list[tuple[Clip, str]]:
        """Find clips whose audio is missing or unreadable.

        Parameters
        ----------
        progress : bool
            Show a tqdm progress bar (the real UrbanSound8K has 8732 files).

        Returns
        -------
        list of (Clip, str)
            Each bad clip with the reason (``"missing"``, ``"unreadable: ..."``, ``"empty"``).
        """
        import soundfile as sf
        from tqdm import tqdm

        problems: list[tuple[Clip, str]] = []
        for clip in tqdm(self.clips, desc=f"checking {self.kind} audio", unit="file", disable=not progress):
            if not clip.path.is_file():
                problems.append((clip, "missing"))
                continue
            try:
                info = sf.info(str(clip.path))
            except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError(RuntimeError)
                problems.append((clip, f"unreadable: {str(exc).splitlines()[0]}"))
                continue
            if info.frames == 0:
                problems.append((clip, "empty"))
        return problems

    def require_audio(self, *, progress: bool = False) -> None:
        """Raise :class:`DataError` listing the bad files when any clip's audio is missing or unreadable."""
        problems = self.check_audio(progress=progress)
        if problems:
            shown = "; ".join(f"{clip.path} ({reason})" for clip, reason in problems[:5])
            more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise DataError(f"{self.root}: {len(problems)} of {len(self.clips)} audio files are missing or "
                            f"unreadable: {shown}{more}; restore them (run `sea-tf data check {self.root}` for the list)")

    def summary(self) -> dict[str, Any]:
        """JSON-able overview: kind, root, clip count, clips per fold and per class."""
        return {"kind": self.kind, "root": str(self.root), "n_clips": len(self.clips),
                "n_classes": len(self.classes), "clips_per_fold": {str(k): v for k, v in self.fold_counts().items()},
                "clips_per_class": self.class_counts()}


def parse_int(value: object, what: str, where: str) -> int:
    """``int(value)`` for a metadata cell, accepting ``"3.0"``; DataError naming ``where`` otherwise."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{where}: {what} {text!r} is not an integer; fix the row or re-download the metadata") from None
    if not number.is_integer():
        raise DataError(f"{where}: {what} {text!r} is not an integer; fix the row or re-download the metadata")
    return int(number)


def parse_float(value: object, what: str, where: str) -> float:
    """``float(value)`` for a metadata cell; DataError naming ``where`` otherwise."""
    try:
        return float(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: {what} {value!r} is not a number; fix the row or re-download the metadata") from None


def read_metadata_csv(path: Path | str, required_columns: Sequence[str],
                      fix_hint: str) -> list[tuple[int, dict[str, str]]]:
    """Rows of a metadata CSV whose header must hold ``required_columns``.

    Parameters
    ----------
    path : Path
    required_columns : list of str
    fix_hint : str
        What the user should do when the file cannot be read (e.g. "re-download it").

    Returns
    -------
    list of (int, dict)
        (line number, row) pairs; header names are stripped of white space and a UTF-8 BOM.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [name.strip() for name in (reader.fieldnames or [])]
            missing = [col for col in required_columns if col not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'nothing'}); "
                                f"the header must have {', '.join(required_columns)}")
            reader.fieldnames = header
            return [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the metadata ({exc}); {fix_hint}") from exc
