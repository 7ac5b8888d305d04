"""ESC-50 loader: 2000 five-second clips, 50 classes, 5 folds, same interface as :mod:`sea_tf.data.us8k`.

Expected layout (as in the ESC-50 repository)::

    ROOT/audio/{fold}-{clip_id}-{take}-{target}.wav
    ROOT/meta/esc50.csv     filename,fold,target,category[,esc10,src_file,take]   (optional)

The folds and class ids come from the file names; ``meta/esc50.csv``, when present, supplies
the class names and is checked against the file names.
"""
import re
from pathlib import Path

from sea_tf.data.base import Clip, LabelledDataset, parse_int, read_metadata_csv
from sea_tf.errors import DataError

METADATA = "meta/esc50.csv"
REQUIRED_COLUMNS = ["filename", "fold", "target", "category"]
FILENAME = re.compile(r"^(?P<fold>\d+)-(?P<clip>\d+)-(?P<take>[A-Za-z]+)-(?P<target>\d+)\.wav$")

# ESC-50 categories indexed by target (animals, natural soundscapes, human non-speech,
# interior/domestic, exterior/urban; 10 each).
ESC50_CLASSES = [
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells", "airplane",
    "fireworks", "hand_saw",
]


def parse_filename(name: str, where: object) -> tuple[int, int, str, int]:
    """``(fold, clip_id, take, target)`` from an ESC-50 file name; DataError naming ``where`` otherwise."""
    match = FILENAME.match(name)
    if not match:
        raise DataError(f"{where}: {name!r} does not follow the ESC-50 convention {{fold}}-{{clip_id}}-{{take}}-{{target}}.wav; "
                        "rename or remove it")
    return int(match["fold"]), int(match["clip"]), match["take"], int(match["target"])


class ESC50(LabelledDataset):
    """ESC-50 (or a dataset in its layout): 5 folds, 50 classes.

    Parameters
    ----------
    root : str or Path
        The folder holding ``audio/`` (and optionally ``meta/esc50.csv``).

    Raises
    ------
    DataError
        No metadata and no audio, a file name off the convention, a fold outside 1-5, a target
        outside 0-49, a target named two ways, or metadata disagreeing with its file names.
    """
    kind = "esc50"
    title = "ESC-50"
    n_folds = 5
    default_classes = ESC50_CLASSES

    def _root_hint(self) -> str:
        return "pass the ESC-50 root (the folder holding audio/ and meta/)"

    def _load(self) -> dict[int, str]:
        path = self.root / METADATA
        if path.is_file():
            self.metadata_path = path
            return self._load_metadata(path)
        audio_dir = self.root / "audio"
        files = sorted(audio_dir.glob("*.wav")) if audio_dir.is_dir() else []
        if not files:
            raise DataError(f"{self.root}: neither {METADATA} nor audio/*.wav found; {self._root_hint()}")
        for file in files:
            fold, clip_id, _, target = parse_filename(file.name, file)
            self._add(file.name, fold, target, ESC50_CLASSES[target] if target < len(ESC50_CLASSES) else "", clip_id, file)
        return {}

    def _load_metadata(self, path: Path) -> dict[int, str]:
        rows = read_metadata_csv(path, REQUIRED_COLUMNS, "re-download it")
        names: dict[int, str] = {}
        for line, row in rows:
            where = f"{path} line {line}"
            if None in row or any(row.get(col) is None for col in REQUIRED_COLUMNS):
                raise DataError(f"{where}: wrong number of fields for the header; fix the row")
            name = row["filename"].strip()
            name_fold, clip_id, _, name_target = parse_filename(name, where)
            fold = parse_int(row["fold"], "fold", where)
            target = parse_int(row["target"], "target", where)
            if (fold, target) != (name_fold, name_target):
                raise DataError(f"{where}: fold {fold} / target {target} disagree with the file name {name}; fix the row")
            category = row["category"].strip()
            if names.setdefault(target, category) != category:
                raise DataError(f"{where}: target {target} is {category!r} here but {names[target]!r} earlier; "
                                "every target must have one category")
            src = row.get("src_file")
            fs_id = parse_int(src, "src_file", where) if src and src.strip() else clip_id
            self._add(name, fold, target, category, fs_id, where)
        return names

    def _add(self, name: str, fold: int, target: int, category: str, fs_id: int, where: object) -> None:
        if not 1 <= fold <= self.n_folds:
            raise DataError(f"{where}: fold {fold} is outside 1-5 (ESC-50 has folds 1-5); fix it")
        if not 0 <= target < len(ESC50_CLASSES):
            raise DataError(f"{where}: target {target} is outside 0-49; fix it")
        self.clips.append(Clip(path=self.root / "audio" / name, fold=fold, class_id=target,
                               class_name=category, slice_file_name=name, fs_id=fs_id))
