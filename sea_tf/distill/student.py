"""The student being distilled: built from the zoo, checked against the targets, wrapped for training.

Two Keras models exist during a run:

- the **reference student** (:class:`~sea_tf.models.SeaModel`, float32, no wrappers): what is
  saved, carded and handed to later stages;
- the **training model**: the same front end (float32) in front of a body that may be built
  under ``mixed_float16`` and wrapped for pruning, with a float32 output. Its weights are copied
  back into the reference student at the end (after ``strip_pruning``).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from sea_tf.backend import keras
from sea_tf.errors import ModelError, TrainError, WeightsError
from sea_tf.models import build_student, load_model
from sea_tf.models.architectures import build_l3_network
from sea_tf.models.seamodel import NETWORK_LAYER, SeaModel
from sea_tf.distill import strategy as strategy_mod


def build(preset: str, *, overrides: dict | None, head: str, d: int, frame_samples: int, seed: int) -> SeaModel:
    """Build the student and check it fits the targets.

    Parameters
    ----------
    preset : str
    overrides : dict
        :func:`sea_tf.models.build_student` keyword overrides.
    head : str
        ``student.head``: one of :data:`sea_tf.models.architectures.HEADS`.
    d : int
        Target dimension; the student's output size must equal it.
    frame_samples : int
        Samples per audio window in the shards.
    seed : int

    Returns
    -------
    SeaModel
    """
    try:
        chosen = {key: copy.deepcopy(value) for key, value in (overrides or {}).items() if value is not None}
        if head != "published":  # the published head keeps the preset's name on the card
            chosen["head"] = head
        student = build_student(preset, seed=seed, **chosen)
    except ModelError as exc:
        raise TrainError(f"student: {exc}") from exc
    if student.embedding_size != d:
        raise TrainError(f"student {student.name!r} outputs {student.embedding_size}-d embeddings but the targets are "
                         f"{d}-d; pick the preset with d = {d} (sea-64/128/256/512) or set "
                         f"student.overrides.embedding_size: {d}")
    if student.frame_samples != frame_samples:
        raise TrainError(f"student {student.name!r} takes {student.frame_samples}-sample windows "
                         f"({student.sample_rate} Hz) but the shards hold {frame_samples}-sample windows; set "
                         f"student.overrides.sample_rate: {frame_samples} or re-embed at the student's rate")
    return student


def warm_start(student: SeaModel, spec: str | Path) -> dict:
    """Copy the body weights of model ``spec`` (path, catalogue name) into ``student``.

    Returns
    -------
    dict
        What the card records: the spec and the source model's name and weights entry.
    """
    try:
        source = load_model(spec)
    except (ModelError, WeightsError) as exc:  # WeightsError: a catalogue model that is not cached
        raise TrainError(f"student.init: {exc}") from exc
    if source.frontend != student.frontend:
        raise TrainError(f"student.init {spec}: its front end {source.frontend.get('type')} "
                         f"({source.frontend.get('sr')} Hz, {source.frontend.get('n_mels')} mels) differs from the "
                         "student's; warm-start only from a model with the same front end")
    theirs, ours = source.network().get_weights(), student.network().get_weights()
    if [w.shape for w in theirs] != [w.shape for w in ours]:
        raise TrainError(f"student.init {spec}: its body ({source.card.get('architecture', {}).get('filters')}) does "
                         f"not match the student's ({student.card['architecture'].get('filters')}); use a model of "
                         "the same architecture")
    student.network().set_weights(theirs)
    return {"spec": str(spec), "name": source.name, "weights": source.card.get("weights", {})}


def training_model(student: SeaModel, *, mixed_precision: bool,
                   prune: Callable[[keras.Model], keras.Model] | None = None) -> tuple[keras.Model, keras.Model]:
    """The Keras model that is trained: ``[B, frame_samples]`` → ``[B, d]`` float32.

    Parameters
    ----------
    student : SeaModel
        Its current weights are the starting point.
    mixed_precision : bool
        Build the body under ``mixed_float16`` (the front end and the output stay float32).
    prune : callable, optional
        ``prune(network) -> network`` (from :mod:`sea_tf.distill.pruning`).

    Returns
    -------
    model : keras.Model
    network : keras.Model
        The (possibly wrapped) body inside ``model``.
    """
    network = student.network()
    if mixed_precision:
        arch = student.card["architecture"]
        strategy_mod.set_mixed_precision(True)
        try:
            network = build_l3_network(student.frontend["output_shape"], arch["filters"],
                                       embedding_bn_relu=arch["embedding_bn_relu"],
                                       head=arch.get("head", "published"),
                                       name=NETWORK_LAYER)
        finally:
            strategy_mod.set_mixed_precision(False)
        network.set_weights(student.network().get_weights())
    if prune is not None:
        network = prune(network)
    audio = keras.Input(shape=(student.frame_samples,), name="audio")
    image = student.frontend_layer()(audio)
    output = network(image)
    if mixed_precision:
        output = keras.layers.Activation("linear", dtype="float32", name="output_float32")(output)
    return keras.Model(audio, output, name="distill"), network


def copy_back(student: SeaModel, trained_network: keras.Model) -> SeaModel:
    """Copy a trained (stripped) body's weights into the reference student's body."""
    student.network().set_weights(trained_network.get_weights())
    return student
