"""What to run on the boards: the exported models and audio of ``--artifacts`` / ``--audio``, sorted.

:func:`plan` sorts the embedding models from the classifiers (by their sidecars) and checks what a
board would refuse after the copy; :meth:`RunPlan.classifier_for` pairs each embedding model with a
classifier of its size and export mode; :func:`listen_plan` picks the one model ``sea-tf device
listen`` runs. Nothing here touches the network.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

from sea_tf.errors import RemoteError

#: what of device/ is copied to the board, and the requirements file ``--setup`` installs there
DEVICE_FILES = ("*.py",)
REQUIREMENTS = "requirements-device.txt"


@dataclasses.dataclass
class RunPlan:
    """What to run on each host: embedding models (one bench each), classifiers, audio files."""
    embeddings: list[Path]
    classifiers: list[Path]
    audio: list[Path]

    def classifier_for(self, embedding: Path) -> Path | None:
        """The classifier to pair with ``embedding``: one whose input size is the model's embedding
        size (a teacher's 512-d output cannot feed a student's 64-d classifier); among those, the same
        export mode, else fp32, else the first. None when no classifier fits."""
        size = _embedding_size(embedding)
        fitting = [c for c in self.classifiers if size is None or _embedding_size(c) in (None, size)]
        if not fitting:
            return None
        by_mode = {_mode(c): c for c in fitting}
        return by_mode.get(_mode(embedding)) or by_mode.get("fp32") or fitting[0]

    @property
    def classifier(self) -> Path | None:
        """The classifier used with the first embedding model (None without classifiers)."""
        return self.classifier_for(self.embeddings[0]) if self.embeddings else None


def plan(artifacts: Sequence[Path | str], *, audio: Sequence[Path | str]) -> RunPlan:
    """Sort ``--artifacts`` (directories and/or ``.tflite`` files) into a :class:`RunPlan`.

    A model is a classifier when its sidecar has ``classes`` or its model card says so. When the
    export wrote the classifier in several modes, each embedding model runs with the classifier
    of its own mode (see :meth:`RunPlan.classifier_for`).
    """
    files: list[Path] = []
    for item in artifacts:
        path = Path(item)
        if path.is_dir():
            files += sorted(path.glob("*.tflite"))
        elif path.is_file() and path.suffix == ".tflite":
            files.append(path)
        else:
            raise RemoteError(f"--artifacts {item}: not a .tflite file or a directory of them; pass the "
                              "output directory of `sea-tf export`")
    names = [path.name for path in files]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # one name on the board and one result file per model: a second one would overwrite the first
        raise RemoteError(f"--artifacts: {', '.join(twice)} given from several directories; the board and the "
                          "results name models by file name, so pass each name once")
    bare = [str(path) for path in files if not path.with_suffix(".json").exists()]
    if bare:  # the board would refuse it after the copy (device.bench: no sidecar, no front end)
        raise RemoteError(f"--artifacts: {', '.join(bare)} has no sidecar (.json) beside it, so the board cannot know its "
                          "front end, rates or classes; copy the sidecar `sea-tf export` wrote next to it")
    embeddings: list[Path] = []
    classifiers: list[Path] = []
    for path in files:
        (classifiers if _is_classifier(path) else embeddings).append(path)
    if not embeddings:
        raise RemoteError(f"--artifacts {' '.join(map(str, artifacts))}: no embedding model (.tflite) found; "
                          "run `sea-tf export` first")
    for path in map(Path, audio):
        if not path.is_file():
            raise RemoteError(f"--audio {path}: file not found")
    return RunPlan(embeddings, classifiers, [Path(a) for a in audio])


def _mode(path: Path | str) -> str | None:
    """The export mode of a model (``fp32``, ``int8``...): its sidecar's, else the name's ``<stem>.<mode>.tflite``."""
    sidecar = Path(path).with_suffix(".json")
    try:
        return json.loads(sidecar.read_text()).get("mode")
    except (OSError, ValueError):
        parts = Path(path).name.split(".")
        return parts[-2] if len(parts) >= 3 else None


def _embedding_size(path: Path | str) -> int | None:
    """Embedding size a model makes (or a classifier takes), from its sidecar card; None if unknown."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return _card(meta).get("embedding_size")


def _is_classifier(path: Path) -> bool:
    """Whether the model's sidecar lists classes or its model card says it is a classifier."""
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return (isinstance(meta, dict) and bool(meta.get("classes"))) or _card(meta).get("kind") == "classifier"


def _card(meta: object) -> dict[str, Any]:
    """The sidecar's model card, or {} when it has none or a damaged one (the board then says what is wrong)."""
    card = meta.get("model_card") if isinstance(meta, dict) else None
    return card if isinstance(card, dict) else {}


def listen_plan(artifacts: Sequence[Path | str], *, model: str | None = None) -> tuple[Path, Path | None]:
    """(embedding model, classifier or None) for ``sea-tf device listen`` from ``--artifacts``.

    ``model`` picks the embedding model when there are several (its file name, or the start of it);
    the classifier is the one :meth:`RunPlan.classifier_for` pairs with it.
    """
    run_plan = plan(artifacts, audio=[])   # listen classifies the live source, no files
    embeddings = run_plan.embeddings
    if model:
        embeddings = [m for m in embeddings if m.name == model or m.name.startswith(model)]
        if not embeddings:
            raise RemoteError(f"--model {model}: no embedding model of that name in --artifacts; there are "
                              f"{', '.join(m.name for m in run_plan.embeddings)}")
    elif len(embeddings) > 1:
        raise RemoteError(f"--artifacts holds {len(embeddings)} embedding models "
                          f"({', '.join(m.name for m in embeddings)}); pick one with --model NAME")
    return embeddings[0], run_plan.classifier_for(embeddings[0])
