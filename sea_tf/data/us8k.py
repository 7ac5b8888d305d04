"""UrbanSound8K loader: the same code for the real dataset and the generated demo dataset.

Expected layout (as distributed)::

    ROOT/metadata/UrbanSound8K.csv    slice_file_name,fsID,start,end,salience,fold,classID,class
    ROOT/audio/fold1 .. fold10/<slice_file_name>

Example
-------
>>> ds = US8K("UrbanSound8K")                          # doctest: +SKIP
>>> train, val, test = ds.split(1)                      # doctest: +SKIP
>>> [c.path for c in ds.clips_in_fold(test)][:2]        # doctest: +SKIP
"""

from sea_tf.data.base import Clip, LabelledDataset, parse_float, parse_int, read_metadata_csv
from sea_tf.data.recipes import US8K_CLASSES
from sea_tf.errors import DataError

METADATA = "metadata/UrbanSound8K.csv"
REQUIRED_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


class US8K(LabelledDataset):
    """UrbanSound8K (or a dataset in its layout): 10 folds, 10 classes.

    Parameters
    ----------
    root : str or Path
        The folder holding ``audio/`` and ``metadata/``.

    Raises
    ------
    DataError
        The metadata is missing or malformed: a missing column, a fold outside 1-10, a
        non-integer or out-of-range classID, a classID named two ways, a duplicate file name.
        Missing audio files are *not* an error here: :meth:`check_audio` lists them.
    """
    kind = "us8k"
    title = "UrbanSound8K"
    n_folds = 10
    default_classes = US8K_CLASSES

    def _root_hint(self) -> str:
        return "pass the UrbanSound8K root (the folder holding audio/ and metadata/)"

    def _load(self) -> dict[int, str]:
        path = self.root / METADATA
        self.metadata_path = path
        if not path.is_file():
            raise DataError(f"{path}: metadata not found; {self._root_hint()}, "
                            "or generate the demo dataset with `sea-tf data make-demo --out DIR`")
        rows = read_metadata_csv(path, REQUIRED_COLUMNS, "re-download or regenerate it")

        names: dict[int, str] = {}
        seen: dict[str, int] = {}
        for line, row in rows:
            where = f"{path} line {line}"
            if None in row or any(row.get(col) is None for col in REQUIRED_COLUMNS):
                raise DataError(f"{where}: wrong number of fields for the header; fix the row")
            name = row["slice_file_name"].strip()
            if not name or "/" in name or "\\" in name:
                raise DataError(f"{where}: slice_file_name {name!r} must be a bare file name; fix the row")
            if name in seen:
                raise DataError(f"{where}: {name} is listed twice (first on line {seen[name]}); remove the duplicate")
            seen[name] = line
            fold = parse_int(row["fold"], "fold", where)
            if not 1 <= fold <= self.n_folds:
                raise DataError(f"{where}: fold {fold} is outside 1-10 (UrbanSound8K has folds 1-10); fix the row")
            class_id = parse_int(row["classID"], "classID", where)
            if not 0 <= class_id < len(US8K_CLASSES):
                raise DataError(f"{where}: classID {class_id} is outside 0-{len(US8K_CLASSES) - 1}; fix the row")
            class_name = row["class"].strip()
            if not class_name:
                raise DataError(f"{where}: empty class name for classID {class_id}; fix the row")
            if names.setdefault(class_id, class_name) != class_name:
                raise DataError(f"{where}: classID {class_id} is {class_name!r} here but {names[class_id]!r} "
                                "earlier; every classID must have one class name")
            self.clips.append(Clip(
                path=self.root / "audio" / f"fold{fold}" / name, fold=fold, class_id=class_id,
                class_name=class_name, slice_file_name=name,
                fs_id=parse_int(row["fsID"], "fsID", where),
                start=parse_float(row["start"], "start", where), end=parse_float(row["end"], "end", where),
                salience=parse_int(row["salience"], "salience", where)))
        by_name: dict[str, int] = {}
        for class_id, class_name in names.items():
            if by_name.setdefault(class_name, class_id) != class_id:
                raise DataError(f"{path}: class {class_name!r} has two classIDs ({by_name[class_name]} and {class_id}); "
                                "every class name must have one classID")
        return names
