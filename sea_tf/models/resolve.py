"""``load_model(spec)``: one resolver for every way of naming a model, and the one default.

Accepted specs, tried in this order:

0. nothing (``None``): :data:`DEFAULT_MODEL`, the authors' published SEA-64 student, from the
   weights cache; when it is not cached, a one-line :class:`ModelError` says how to fetch or
   import it (the default never falls back to random weights);
1. a :class:`SeaModel` (returned as is);
2. a preset name (``sea-64`` … ``sea-512``, ``edgel3-sparse``, ``l3-<repr>-<512|6144>``): seeded and
   untrained; it still loads, with a :class:`SeaTFWarning` naming the published model to use instead;
3. a path to a saved sea-tf model (``.keras`` with its ``.card.json``);
4. a path to a published ``.h5`` (edgel3 full model, or openl3 weights);
5. a catalogue name ``<family>/<name>`` (``openl3/mel256-env``, ``edgel3/sea-64``): an installed
   ``openl3`` package's file when there is one, else ``sea_tf.weights.cache.resolve_name``.

Every model's card says where its weights come from (``card["weights"]["source"]``:
``"published"``, ``"trained"`` or ``"untrained"``); :func:`sea_tf.cards.weights_provenance` reads
it for the cards of what the model makes (embeddings, features).
"""
import importlib.util
import os
import re
import sys
import warnings
from pathlib import Path

from sea_tf.cards import UNTRAINED, weights_provenance
from sea_tf.errors import ModelError, SeaTFWarning
from sea_tf.models import h5_weights
from sea_tf.models.builders import DEFAULT_SEED, PRESETS, STUDENT_PRESETS, build_preset
from sea_tf.models.seamodel import SeaModel
from sea_tf.weights import cache as weights_cache

#: What every model default resolves to (``get_embedding``, ``sea-tf embed``, ``--model`` left out).
DEFAULT_MODEL = "edgel3/sea-64"

_CATALOGUE = re.compile(r"^(openl3|edgel3)/[A-Za-z0-9_.\-]+(@[A-Za-z0-9_.\-]+)?$")
_OPENL3_NAME = re.compile(r"^openl3/(linear|mel128|mel256)-(music|env)(@[A-Za-z0-9_.\-]+)?$")


def load_model(spec: str | Path | SeaModel | None = None, *, input_repr: str | None = None,
               embedding_size: int | None = None, frontend: str | None = None, dft: str = "rfft",
               seed: int = DEFAULT_SEED) -> SeaModel:
    """Resolve ``spec`` to a :class:`SeaModel`.

    Parameters
    ----------
    spec : str, Path, SeaModel or None
        Preset name, catalogue name, ``.h5`` weight file, saved ``.keras`` model, or a SeaModel;
        None means :data:`DEFAULT_MODEL` from the weights cache.
    input_repr : {"linear", "mel128", "mel256"}, optional
        openl3 weight files whose name does not say it.
    embedding_size : {512, 6144}, optional
        openl3 weight files (default 512, the size SEA distils from).
    frontend : {"kapre-0.1.4", "openl3-0.4-kapre", "openl3-0.4-librosa"}, optional
        openl3 weight files: front-end family (default kapre-0.1.4, how they were trained).
    dft : {"rfft", "matmul"}
        DFT implementation of presets and published files.
    seed : int
        Seed of untrained presets.

    Returns
    -------
    SeaModel

    Raises
    ------
    ModelError
        Nothing named and :data:`DEFAULT_MODEL` not cached, or a spec that names no model; the
        message says how to fetch, import or name one.
    WeightsError
        A catalogue name whose file is not cached (the message says how to fetch or import it).

    Warns
    -----
    SeaTFWarning
        A preset name, or a saved model whose card says ``"untrained"``: its weights are seeded
        random numbers.

    Examples
    --------
    >>> model = load_model()               # the published SEA-64, once imported  # doctest: +SKIP
    >>> model.card["weights"]["source"]                                            # doctest: +SKIP
    'published'
    """
    if spec is None:
        return load_path(default_model_path(), dft=dft)
    if isinstance(spec, SeaModel):
        return spec
    if not isinstance(spec, (str, Path)):
        raise ModelError(f"model spec must be a preset name, a path or a SeaModel; got {type(spec).__name__}")
    text = str(spec)
    path = Path(text).expanduser()
    if text in PRESETS:
        model = build_preset(text, seed=seed, dft=dft)
    elif path.is_file():
        model = load_path(path, input_repr=input_repr, embedding_size=embedding_size, frontend=frontend, dft=dft)
    elif is_catalogue_spec(text):
        model = load_path(resolve_catalogue(text), input_repr=input_repr or _repr_from_name(text),
                          embedding_size=embedding_size, frontend=frontend, dft=dft)
    else:
        raise unknown_spec_error(text)
    warn_if_untrained(text, model)
    return model


def unknown_spec_error(text: str) -> ModelError:
    """The one-line ModelError for a spec that names no model (how to name, fetch or import one)."""
    path = Path(text).expanduser()
    if path.suffix in (".keras", ".h5", ".hdf5") or path.parent != Path("."):
        return ModelError(f"{path}: no such model file; check the path")
    return ModelError(f"unknown model {text!r}: name a preset ({', '.join(PRESETS)}), an existing .keras/.h5 file, "
                     f"or a published model such as {DEFAULT_MODEL} (`sea-tf models list` shows them; get one "
                     f"with `sea-tf models fetch NAME` or `sea-tf models import PATH`)")


def default_model_path() -> Path:
    """Cached file of :data:`DEFAULT_MODEL` (verified against its known sha256).

    Returns
    -------
    Path

    Raises
    ------
    ModelError
        It is not in the weights cache; the message says how to fetch or import it, or which
        other models can be named.
    """
    if not weights_cache.is_cached(DEFAULT_MODEL):
        raise ModelError(
            f"no model named (--model), and the default {DEFAULT_MODEL} (the published SEA-64 student) is not in the weights "
            f"cache {weights_cache.weights_dir()}: fetch it with `sea-tf models fetch {DEFAULT_MODEL}`, import a "
            f"copy of edgel3_sea_ust_audio_emb_64.h5 with `sea-tf models import PATH`, or name a model "
            "(a .keras/.h5 file, or a preset such as sea-64, which is untrained)")
    return weights_cache.resolve_name(DEFAULT_MODEL)


def published_counterpart(preset: str) -> str:
    """The catalogue name of the published model a preset mirrors (``sea-64`` → ``edgel3/sea-64``)."""
    if preset in STUDENT_PRESETS:
        return "edgel3/sparse-kd-95.45" if preset == "edgel3-sparse" else f"edgel3/{preset}"
    return f"openl3/{preset.split('-')[1]}-env"


def warn_if_untrained(spec: str, model: SeaModel) -> None:
    """Warn (:class:`SeaTFWarning`) when ``model``'s card says its weights are untrained.

    Called each time a spec is resolved (a preset name, or a saved model of an untrained preset),
    so that random-weight features never pass for real ones without a word; the message names
    the published model to use instead.

    Parameters
    ----------
    spec : str
        What the user named (shown in the message).
    model : SeaModel
    """
    if weights_provenance(model.card) != UNTRAINED:
        return
    seed = model.card["weights"].get("seed")
    if spec in PRESETS:
        what, instead = f"'{spec}' is the seeded, untrained preset (seed {seed})", published_counterpart(spec)
        hint = f"use {instead} (`sea-tf models fetch {instead}` or `sea-tf models import PATH`)"
    else:
        what = f"{spec}: its card says its weights are untrained ({model.name}, seed {seed})"
        hint = "use a published model (`sea-tf models list`) or a distilled student"
    warnings.warn(f"{what}: its embeddings are random features, not learnt ones; for trained weights {hint}",
                  SeaTFWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """``stacklevel`` that attributes a warning to the first frame outside the sea_tf package.

    The same warning is raised through several call paths (get_embedding, open_embedder, the
    CLI); pointing at the caller's line makes Python's once-per-location filter behave per call
    site. (``warnings.warn(skip_file_prefixes=...)`` does this from Python 3.12 on.)
    """
    package = str(Path(__file__).resolve().parents[1]) + os.sep
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def load_path(path: Path | str, *, input_repr: str | None = None, embedding_size: int | None = None,
              frontend: str | None = None, dft: str = "rfft") -> SeaModel:
    """Load a saved sea-tf ``.keras`` model or a published ``.h5`` file."""
    path = Path(path)
    if path.suffix == ".keras":
        return SeaModel.load(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise ModelError(f"{path}: unknown model format '{path.suffix}'; expected .keras (sea-tf) or .h5 "
                         "(openl3/edgel3)")
    info = h5_weights.inspect_weight_file(path)
    config = info["model_config"]
    if config is not None and ("QuantizeWrapper" in str(config) or "QuantizeLayer" in str(config)):
        # distill --qat's student: fake-quant layers a float Keras embedder must not run as if they were
        # its weights; what it is for is its int8 export.
        raise ModelError(f"{path}: a quantization-aware student (distill --qat), not an embedding model to run in "
                         "Keras; export it (`sea-tf export`, then pass its .tflite, e.g. to classify) or use its "
                         "float student.keras")
    if config is not None and "Melspectrogram" in str(config):
        # Full Keras models with a kapre Melspectrogram are edgel3 students (SEA or sparse).
        return h5_weights.load_edgel3_h5(path, dft=dft)
    return h5_weights.load_openl3_weights(path, input_repr=input_repr, embedding_size=embedding_size or 512,
                                          frontend=frontend or "kapre-0.1.4", dft=dft)


def is_catalogue_spec(text: str) -> bool:
    """True when ``text`` is spelled like a catalogue name (``openl3/...``, ``edgel3/...[@version]``)."""
    return bool(_CATALOGUE.match(str(text)))


def _repr_from_name(name: str) -> str | None:
    match = _OPENL3_NAME.match(name)
    return match.group(1) if match else None


def installed_openl3_file(name: str) -> Path | None:
    """Path of ``openl3/<repr>-<content>`` inside an installed ``openl3`` package, or None."""
    match = _OPENL3_NAME.match(name)
    if not match or match.group(3):
        return None  # a pinned version (@v0_2_0) is only in the weights cache
    found = importlib.util.find_spec("openl3")
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        candidate = Path(folder) / f"openl3_audio_{match.group(1)}_{match.group(2)}.h5"
        if candidate.is_file():
            return candidate
    return None


def resolve_catalogue(name: str) -> Path:
    """Local path of catalogue model ``name`` (installed openl3 package first, then the weights cache)."""
    local = installed_openl3_file(name)
    if local is not None:
        return local
    return Path(weights_cache.resolve_name(name))
