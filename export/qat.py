"""The quantization-aware (QAT) student of ``sea-tf distill --qat``, exported beside its float student.

``student-qat.h5`` (tfmot fake-quantization wrappers, HDF5; see :mod:`sea_tf.distill.qat`) is
converted with the ranges it learnt: the TFLite converter turns each FakeQuant pair into int8
scales, so QAT needs no calibration of its own. Modes:

``int8``
    Full integer, as PTQ's ``int8``: the learnt ranges for the quantized body; the calibration
    windows only set the ranges of what QAT left in float (the input tensor and the input batch
    norm in front of the first quantized layer).
``dynamic``
    tfmot's documented conversion (``Optimize.DEFAULT``, no representative data): the body runs
    int8 with the learnt ranges, the input batch norm stays float; float input and output.

The QAT file is always reported *next to* post-training quantization of the float student it was
fine-tuned from, on the same held-out windows and against the same reference (the float Keras
student), so the two rows say what QAT buys. Its card links that student
(``card["qat"]["student"] = {"path", "sha256"}``, path relative to the QAT file); an older card
without the link is paired with ``student.keras`` beside it when that card's name matches.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sea_tf import cards
from sea_tf.errors import ExportError, SeaTFError

#: Modes a QAT student exports in (the learnt 8-bit ranges fit no other).
QAT_MODES = ("dynamic", "int8")
_H5 = (".h5", ".hdf5")

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def qat_card(path: Any) -> dict[str, Any] | None:
    """The card of ``path`` when it is a QAT student, ``None`` when it is another model.

    Raises :class:`ExportError` for a QAT HDF5 file without its card (the card names the front end
    and the float student; without it the file cannot be exported).
    """
    if not isinstance(path, (str, Path)):
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        card = cards.read_card(path, required=False)
    except SeaTFError as exc:
        raise ExportError(str(exc)) from exc
    if isinstance(card, dict) and isinstance(card.get("qat"), dict):
        return card
    if card is None and path.suffix in _H5:
        from sea_tf.distill.qat import is_qat_file

        if is_qat_file(path):
            raise ExportError(f"{path}: a quantization-aware (QAT) model without its card {cards.card_path(path)}; "
                              "nothing exported. Put the card `sea-tf distill --qat` wrote beside it, or export the "
                              "float student.keras")
    return None


def float_student(qat_path: Path | str, card: dict[str, Any]) -> Path:
    """The float student a QAT file was fine-tuned from (its card's link, else ``student.keras`` beside it)."""
    qat_path = Path(qat_path).expanduser()
    link = card["qat"].get("student") or {}
    if link.get("path"):
        path = Path(link["path"])
        path = path if path.is_absolute() else qat_path.parent / path
        if path.is_file():
            return path
    sibling = qat_path.parent / "student.keras"
    sibling_card = cards.read_card(sibling, required=False) if sibling.is_file() else None
    if not link and sibling_card and f"{sibling_card.get('name')}-qat" == card.get("name"):
        return sibling
    raise ExportError(f"{qat_path}: cannot find the float student it was fine-tuned from "
                      f"({link.get('path') or 'student.keras'} beside it); export both with "
                      f"`sea-tf export FLOAT.keras --qat-model {qat_path}`")


def check_pair(float_source: dict[str, Any], float_card: dict[str, Any], qat_path: Path | str,
               card: dict[str, Any]) -> None:
    """Refuse a QAT file paired with a float student it was not fine-tuned from."""
    link = card["qat"].get("student") or {}
    if link.get("sha256") and float_source.get("sha256") and link["sha256"] != float_source["sha256"]:
        raise ExportError(f"{qat_path} was fine-tuned from a student with sha256 {link['sha256'][:12]}, not "
                          f"{float_source['path']} ({float_source['sha256'][:12]}); pass the float student of "
                          "the same distill run")
    for key in ("frontend", "embedding_size", "sample_rate"):
        if card.get(key) != float_card.get(key):
            raise ExportError(f"{qat_path}: its {key} ({card.get(key)!r}) differs from the float student's "
                              f"({float_card.get(key)!r}); pass the float student of the same distill run")


class QatStudent:
    """A loaded QAT student: the whole fake-quantized model, its body and its card.

    Attributes
    ----------
    keras : keras.Model
        Raw audio ``[B, frame_samples]`` → float front end → fake-quantized body → ``[B, D]``.
    body : keras.Model
        Front-end image ``[B, F, T, 1]`` → ``[B, D]`` (what is converted; the device computes the
        front end).
    card : dict
    path : Path
    """

    def __init__(self, path: Path | str, card: dict[str, Any]) -> None:
        from sea_tf.distill.qat import load

        self.path = Path(path).expanduser()
        try:
            self.keras, _ = load(self.path)
        except SeaTFError as exc:
            raise ExportError(str(exc)) from exc
        self.card = card
        self.body = self.keras.get_layer("network")

    def embed_frames(self, frames: npt.ArrayLike, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """The QAT Keras model's embeddings ``[n, D]`` of raw windows ``[n, frame_samples]``."""
        import numpy as np

        return np.asarray(self.keras.predict(np.asarray(frames, np.float32), batch_size=batch_size, verbose=0),
                          np.float32)


def qat_modes(modes: Iterable[str]) -> list[str]:
    """The requested modes a QAT student exports in, in the order given."""
    return [m for m in modes if m in QAT_MODES]
