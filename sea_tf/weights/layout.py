"""Checking a weight file against the architecture its catalogue name implies.

The layer-by-layer comparison itself belongs to the model zoo
(:func:`sea_tf.models.h5_weights.check_layout`); this module turns its verdict into a
:class:`WeightsError` that names the file and the catalogue name.
"""
from pathlib import Path
from typing import TYPE_CHECKING

from sea_tf.errors import ModelError, WeightsError

if TYPE_CHECKING:
    from sea_tf.weights.catalogue import WeightEntry


def check_entry_layout(path: Path | str, entry: "WeightEntry", *, shown: str | None = None) -> None:
    """Raise WeightsError unless the h5 at ``path`` has the layers of ``entry``'s architecture.

    Parameters
    ----------
    path : str or Path
        The (unpacked) ``.h5`` file.
    entry : sea_tf.weights.catalogue.WeightEntry
        What the file is supposed to be.
    shown : str, optional
        How to name the file in messages (e.g. the download address); default ``path``.
    """
    from sea_tf.models.h5_weights import check_layout
    shown = shown or str(path)
    try:
        check_layout(path, entry.kind, input_repr=entry.input_repr, embedding_size=entry.embedding_size)
    except ModelError as exc:  # its message names the temporary copy being checked: name the user's file
        reason = str(exc).replace(f"{path}: ", "").replace(str(path), shown)
        raise WeightsError(f"{shown} does not have the layers of '{entry.name}' ({entry.kind}): {reason}") from exc
    except OSError as exc:
        raise WeightsError(f"{shown} is not a readable HDF5 weight file ({exc}); "
                           f"expected the published {entry.filename}") from exc


def openl3_version(path: Path | str) -> str:
    """``"v0_2_0"`` when an openl3 file still holds its kapre front-end weights, else ``"v0_4_0"``.

    openl3 installs its files without the version suffix; the generation shows in the layers: the
    0.2.0-0.3.1 files carry a ``spectrogram``/``melspectrogram`` layer (docs/PROTOCOL.md §1.4).
    """
    from sea_tf.models.h5_weights import inspect_weight_file
    try:
        info = inspect_weight_file(path)
    except (ModelError, OSError) as exc:
        raise WeightsError(f"{path} is not a readable openl3 weight file ({exc}); pass --name to say "
                           "which model it is") from exc
    has_frontend = any("spectrogram" in group for group, _ in info["weighted_layers"])
    return "v0_2_0" if has_frontend else "v0_4_0"
