"""Cards: the small JSON beside every artifact saying what made it.

A card for a file is named from the whole file name minus its last suffix:
``student.keras`` -> ``student.card.json``, ``student-v1.2.keras`` -> ``student-v1.2.card.json``,
``edgel3_ft_audio_sparsity_95.45.h5`` -> ``edgel3_ft_audio_sparsity_95.45.card.json``. A card for a
directory lives at ``DIR/card.json``. Later stages read cards instead of re-deriving parameters.

Cards written before this naming were named from the text before the *first* dot
(``student-v1.2.keras`` -> ``student-v1.card.json``), which gave two versions of one model a
single card; :func:`find_card` still finds such a card when the artifact has none of the new name.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal, overload

from sea_tf import atomic
from sea_tf.errors import DataError

CARD_SUFFIX = ".card.json"


def card_path(artifact: str | Path) -> Path:
    """Path where the card of ``artifact`` is written (and looked for first).

    Parameters
    ----------
    artifact : str or Path
        A file (``a.v1.2.keras``) or a directory.

    Returns
    -------
    Path
        ``DIR/card.json`` for a directory, else the file's path with its last suffix replaced by
        ``.card.json`` (``a.v1.2.card.json``).
    """
    artifact = Path(artifact)
    if artifact.is_dir():
        return artifact / "card.json"
    return artifact.with_name(artifact.with_suffix("").name + CARD_SUFFIX)


def legacy_card_path(artifact: str | Path) -> Path:
    """Where sea-tf before the whole-name rule wrote the card of file ``artifact``.

    That name kept only the text before the first dot (``a.v1.2.keras`` -> ``a.card.json``).
    """
    artifact = Path(artifact)
    return artifact.with_name(artifact.name.split(".")[0] + CARD_SUFFIX)


def find_card(artifact: str | Path) -> Path | None:
    """The existing card of ``artifact``: the current name first, else the legacy one; ``None`` if neither.

    Parameters
    ----------
    artifact : str or Path
        A file or a directory.

    Returns
    -------
    Path or None
    """
    path = card_path(artifact)
    if path.exists():
        return path
    if not Path(artifact).is_dir():
        legacy = legacy_card_path(artifact)
        # A legacy name equal to the artifact itself ("x.card.json" read as an artifact) is no card.
        if legacy.exists() and legacy != Path(artifact):
            return legacy
    return None


def write_card(artifact: str | Path, card: dict) -> Path:
    """Write ``card`` (a JSON-able dict) beside ``artifact`` atomically under the current name.

    Returns
    -------
    Path
        The card path, :func:`card_path` of ``artifact``.
    """
    path = card_path(artifact)
    atomic.write_json(path, card)
    return path


# A required card is always returned (or DataError raised); only ``required=False`` may give None.
@overload
def read_card(artifact: str | Path, *, required: Literal[True] = ...) -> dict: ...


@overload
def read_card(artifact: str | Path, *, required: bool) -> dict | None: ...


def read_card(artifact: str | Path, *, required: bool = True) -> dict | None:
    """Read the card of ``artifact`` (current name first, then the legacy name).

    Parameters
    ----------
    artifact : str or Path
        A file or a directory.
    required : bool
        Raise :class:`~sea_tf.errors.DataError` when there is no card; else return ``None``.

    Returns
    -------
    dict or None
    """
    path = find_card(artifact)
    if path is None:
        if required:
            raise DataError(f"{artifact}: no card found at {card_path(artifact)}; was it written by sea-tf? "
                            "Re-create it with the stage that makes it")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable card ({exc}); delete it and re-run the stage that wrote it") from exc


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the bytes of the file at ``path`` (read in chunks: never whole into memory).

    The one file hash of sea-tf (cards, sidecars, the weights cache); ``device/runner.py`` keeps its own
    copy because the board side may not import ``sea_tf``.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


#: ``weights.source`` of a model card whose weights are seeded random numbers (an untrained preset).
UNTRAINED = "untrained"


def weights_provenance(card: dict) -> str:
    """Where a model's weights come from, as its card says (``card["weights"]["source"]``).

    Cards of what a model makes (embeddings, features) repeat it under ``"weights"``, so that
    outputs of an untrained preset say so wherever they go.

    Parameters
    ----------
    card : dict
        A model card, or an export sidecar's ``model_card``.

    Returns
    -------
    str
        ``"published"``, ``"trained"``, ``"untrained"``, or ``"unknown"`` when the card does not say.
    """
    weights = card.get("weights") if isinstance(card, dict) else None
    return str(weights.get("source", "unknown")) if isinstance(weights, dict) else "unknown"
