"""``load_model(spec)``: one resolver for every way of naming a model.

Accepted specs, tried in this order:

1. a :class:`SeaModel` (returned as is);
2. a preset name (``sea-64`` … ``sea-512``, ``edgel3-sparse``, ``l3-<repr>-<512|6144>``): seeded, untrained;
3. a path to a saved sea-tf model (``.keras`` with its ``.card.json``);
4. a path to a published ``.h5`` (edgel3 full model, or openl3 weights);
5. a catalogue name ``<family>/<name>`` (``openl3/mel256-env``, ``edgel3/sea-64``): an installed
   ``openl3`` package's file when there is one, else ``sea_tf.weights.cache.resolve_name``.
"""
import importlib
import importlib.util
import re
from pathlib import Path

from sea_tf.errors import ModelError
from sea_tf.models import h5_weights
from sea_tf.models.builders import DEFAULT_SEED, PRESETS, build_preset
from sea_tf.models.seamodel import SeaModel

_CATALOGUE = re.compile(r"^(openl3|edgel3)/[A-Za-z0-9_.\-]+(@[A-Za-z0-9_.\-]+)?$")
_OPENL3_NAME = re.compile(r"^openl3/(linear|mel128|mel256)-(music|env)(@[A-Za-z0-9_.\-]+)?$")


def load_model(spec, input_repr=None, embedding_size=None, frontend=None, dft="rfft", seed=DEFAULT_SEED):
    """Resolve ``spec`` to a :class:`SeaModel`.

    Parameters
    ----------
    spec : str, Path or SeaModel
        Preset name, catalogue name, ``.h5`` weight file, saved ``.keras`` model, or a SeaModel.
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
    """
    if isinstance(spec, SeaModel):
        return spec
    if not isinstance(spec, (str, Path)):
        raise ModelError(f"model spec must be a preset name, a path or a SeaModel; got {type(spec).__name__}")
    text = str(spec)
    if text in PRESETS:
        return build_preset(text, seed=seed, dft=dft)
    path = Path(text).expanduser()
    if path.is_file():
        return load_path(path, input_repr=input_repr, embedding_size=embedding_size, frontend=frontend, dft=dft)
    if _CATALOGUE.match(text):
        return load_path(resolve_catalogue(text), input_repr=input_repr or _repr_from_name(text),
                         embedding_size=embedding_size, frontend=frontend, dft=dft)
    if path.suffix in (".keras", ".h5", ".hdf5") or path.parent != Path("."):
        raise ModelError(f"{path}: no such model file; check the path")
    raise ModelError(f"unknown model {text!r}: not a preset ({', '.join(PRESETS)}), an existing .keras/.h5 file, "
                     "or a catalogue name like openl3/mel256-env or edgel3/sea-64")


def load_path(path, input_repr=None, embedding_size=None, frontend=None, dft="rfft"):
    """Load a saved sea-tf ``.keras`` model or a published ``.h5`` file."""
    path = Path(path)
    if path.suffix == ".keras":
        return SeaModel.load(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise ModelError(f"{path}: unknown model format '{path.suffix}'; expected .keras (sea-tf) or .h5 "
                         "(openl3/edgel3)")
    info = h5_weights.inspect_weight_file(path)
    config = info["model_config"]
    if config is not None and "Melspectrogram" in str(config):
        # Full Keras models with a kapre Melspectrogram are edgel3 students (SEA or sparse).
        return h5_weights.load_edgel3_h5(path, dft=dft)
    return h5_weights.load_openl3_weights(path, input_repr=input_repr, embedding_size=embedding_size or 512,
                                          frontend=frontend or "kapre-0.1.4", dft=dft)


def _repr_from_name(name):
    match = _OPENL3_NAME.match(name)
    return match.group(1) if match else None


def installed_openl3_file(name):
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


def resolve_catalogue(name):
    """Local path of catalogue model ``name`` (installed openl3 package first, then the weights cache)."""
    local = installed_openl3_file(name)
    if local is not None:
        return local
    try:
        cache = importlib.import_module("sea_tf.weights.cache")
    except ModuleNotFoundError as exc:
        raise ModelError(f"catalogue model {name!r} needs the weights cache (sea_tf.weights.cache), which is "
                         "not installed in this checkout; pass a path to the .h5 file instead") from exc
    return Path(cache.resolve_name(name))
