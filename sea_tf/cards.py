"""Cards: the small JSON beside every artifact saying what made it.

A card for ``foo.keras`` lives at ``foo.card.json``; a card for a directory lives at
``DIR/card.json``. Later stages read cards instead of re-deriving parameters.
"""
import hashlib
import json
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import DataError


def card_path(artifact):
    """Path of the card belonging to ``artifact`` (a file or a directory)."""
    artifact = Path(artifact)
    if artifact.is_dir():
        return artifact / "card.json"
    return artifact.with_name(artifact.name.split(".")[0] + ".card.json")


def write_card(artifact, card):
    """Write ``card`` (a JSON-able dict) beside ``artifact`` atomically; returns the card path."""
    path = card_path(artifact)
    atomic.write_json(path, card)
    return path


def read_card(artifact, required=True):
    """Read the card of ``artifact``; ``None`` when absent and not ``required``."""
    path = card_path(artifact)
    if not path.exists():
        if required:
            raise DataError(f"{artifact}: no card found at {path}; was it written by sea-tf? Re-create it with the stage that makes it")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable card ({exc}); delete it and re-run the stage that wrote it") from exc


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
