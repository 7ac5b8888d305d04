"""Reading published Keras-2 ``.h5`` weight files: openl3 teachers and edgel3 students (docs/PROTOCOL.md §1.4, §2.2).

Two layouts exist:

- *weights-only* (``model.save_weights``; openl3 files): the root has a ``layer_names`` attribute
  and one group per layer;
- *keras-full-model* (``model.save``; edgel3 files, Keras 2.0.9): the root has ``model_config``
  and ``keras_version``, the weights sit under ``model_weights`` with its own ``layer_names``.

Keras 2 ``load_weights`` matches layers by order, not by name, so we do the same: take the groups
in ``layer_names`` order, skip those without weights and the kapre front-end groups (their DFT
kernels and filterbank are *checked* against ours, not loaded: our front end computes them), and
assign the rest to the network's weighted layers in order, checking every shape.
"""
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from sea_tf import cards
from sea_tf.errors import ModelError
from sea_tf.models.frontends import dft_kernels, mel_filterbank

if TYPE_CHECKING:
    from sea_tf.models.seamodel import SeaModel

LAYOUT_KINDS = ("openl3-v0_4_0", "openl3-v0_2_0", "edgel3-sea", "edgel3-sparse")
# Keras-2 weight order inside a layer, used when a group lacks its ``weight_names`` attribute.
_WEIGHT_ORDER = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")
# Stored front-end constants must equal ours to this absolute tolerance (REF: 5.8e-8, 1.7e-9).
DFT_TOLERANCE = 1e-5
FILTERBANK_TOLERANCE = 1e-6

#: One weighted layer of a file: ``(group_name, [(weight_name, array), ...])``.
WeightGroup = tuple[str, list[tuple[str, np.ndarray]]]
#: Weight shapes of each weighted layer, in order.
LayerShapes = list[list[tuple[int, ...]]]


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _open(path: Path | str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weight file; check the path")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{path}: not a readable HDF5 weight file ({exc}); is it truncated or still gzipped?") \
            from exc


def _weights_root(handle: h5py.File, path: Path | str) -> tuple[h5py.Group, str]:
    if "layer_names" in handle.attrs:
        return handle, "weights-only"
    if "model_weights" in handle and "layer_names" in handle["model_weights"].attrs:
        return handle["model_weights"], "keras-full-model"
    raise ModelError(f"{path}: no 'layer_names' attribute at the root or under 'model_weights'; "
                     "this is not a Keras 2 weight file")


def _read_dataset(dataset: h5py.Dataset, path: Path | str) -> np.ndarray:
    try:
        return np.asarray(dataset)
    except OSError as exc:  # the header opened but the data cannot be read: damaged bytes inside the file
        raise ModelError(f"{path}: cannot read dataset '{dataset.name}' ({exc}); the file is damaged, copy it "
                         "again") from exc


def _group_weights(group: h5py.Group, path: Path | str) -> list[tuple[str, np.ndarray]]:
    names = [_text(n) for n in group.attrs.get("weight_names", [])]
    for name in names:
        if name not in group:
            raise ModelError(f"{path}: layer '{group.name.lstrip('/')}' lists weight '{name}' but the file has no "
                             "such dataset; the file is incomplete or damaged, copy it again")
    if names:
        return [(name, _read_dataset(group[name], path)) for name in names]
    found: list[tuple[str, np.ndarray]] = []
    group.visititems(lambda name, obj: found.append((name, _read_dataset(obj, path)))
                     if isinstance(obj, h5py.Dataset) else None)

    def rank(item: tuple[str, np.ndarray]) -> int:
        base = item[0].rsplit("/", 1)[-1].split(":")[0]
        return _WEIGHT_ORDER.index(base) if base in _WEIGHT_ORDER else len(_WEIGHT_ORDER)
    return sorted(found, key=rank)


def is_frontend_group(name: str) -> bool:
    """kapre front-end layers (``spectrogram_1``, ``melspectrogram_1``) hold constants, not learnt weights."""
    return "spectrogram" in name.lower()


def read_weight_groups(path: Path | str) -> list[WeightGroup]:
    """Weighted layer groups of a Keras-2 h5 file, in ``layer_names`` order.

    Returns
    -------
    list of (str, list of (str, np.ndarray))
        ``(group_name, [(weight_name, array), ...])`` for every group that holds weights.
    """
    with _open(path) as handle:
        root, _ = _weights_root(handle, path)
        groups = []
        for name in (_text(n) for n in root.attrs["layer_names"]):
            if name not in root:
                raise ModelError(f"{path}: layer '{name}' is listed in layer_names but has no group; "
                                 "the file is damaged")
            weights = _group_weights(root[name], path)
            if weights:
                groups.append((name, weights))
    return groups


def inspect_weight_file(path: Path | str) -> dict[str, Any]:
    """Describe a Keras-2 h5 weight file without building a model.

    Returns
    -------
    dict
        ``layout`` ("keras-full-model" | "weights-only"), ``keras_version`` (str or None),
        ``weighted_layers`` (list of ``(group_name, [shape tuples])`` in order) and
        ``model_config`` (dict, full-model files only, else None).
    """
    with _open(path) as handle:
        _, layout = _weights_root(handle, path)
        version = handle.attrs.get("keras_version")
        if version is None and "model_weights" in handle:
            version = handle["model_weights"].attrs.get("keras_version")
        config = handle.attrs.get("model_config")
    groups = read_weight_groups(path)
    try:
        config = json.loads(_text(config)) if config is not None else None
    except ValueError as exc:
        raise ModelError(f"{path}: the model_config attribute is not valid JSON ({exc}); the file is damaged, "
                         "copy it again") from exc
    return {
        "layout": layout,
        "keras_version": _text(version) if version is not None else None,
        "weighted_layers": [(name, [tuple(a.shape) for _, a in weights]) for name, weights in groups],
        "model_config": config,
    }


def network_weight_shapes(filters: list[int], *, embedding_bn_relu: bool) -> LayerShapes:
    """Shapes of the weighted layers of the L3 body, in order (see ``architectures.build_l3_network``)."""
    shapes: LayerShapes = [[(1,)] * 4]
    in_ch = 1
    for block, width in enumerate(filters):
        for position in range(2):
            shapes.append([(3, 3, in_ch, width), (width,)])
            in_ch = width
            if block == 3 and position == 1 and not embedding_bn_relu:
                break
            shapes.append([(width,)] * 4)
    return shapes


def _frontend_group_shapes(n_dft: int, n_mels: int | None) -> list[tuple[int, ...]]:
    n_freq = n_dft // 2 + 1
    shapes: list[tuple[int, ...]] = [(n_dft, 1, 1, n_freq), (n_dft, 1, 1, n_freq)]
    return shapes + [(n_freq, n_mels)] if n_mels else shapes


def _describe_mismatch(path: Path | str, kind: str, expected: LayerShapes,
                       found: list[tuple[str, list[tuple[int, ...]]]]) -> str:
    for index, (exp, (name, shapes)) in enumerate(zip(expected, found)):
        if [tuple(s) for s in exp] != [tuple(s) for s in shapes]:
            return (f"{path}: does not match {kind}: weighted layer {index} ('{name}') has shapes {shapes}, "
                    f"the architecture expects {exp}")
    return (f"{path}: does not match {kind}: the file has {len(found)} weighted layers, "
            f"the architecture expects {len(expected)}")


def check_layout(path: Path | str, kind: str, *, input_repr: str | None = None,
                 embedding_size: int | None = None) -> dict[str, Any]:
    """Raise :class:`ModelError` unless the file's weighted layers match architecture ``kind``.

    Parameters
    ----------
    path : str or Path
    kind : {"openl3-v0_4_0", "openl3-v0_2_0", "edgel3-sea", "edgel3-sparse"}
    input_repr : {"linear", "mel128", "mel256"}, optional
        openl3 v0_2_0 only (its front-end group reveals it): checked when given.
    embedding_size : int, optional
        edgel3-sea: 64, 128, 256 or 512 (checked when given). Ignored for openl3 files, whose
        weights are the same for 512 and 6144.

    Returns
    -------
    dict
        What was recognised: ``kind``, ``layout``, ``filters`` and, when known, ``input_repr``
        (openl3) or ``embedding_size`` (edgel3-sea).
    """
    from sea_tf.models.builders import STUDENT_PRESETS
    if kind not in LAYOUT_KINDS:
        raise ModelError(f"unknown weight-file kind {kind!r}; known: {', '.join(LAYOUT_KINDS)}")
    info = inspect_weight_file(path)
    found = info["weighted_layers"]
    result: dict[str, Any] = {"kind": kind, "layout": info["layout"], "filters": [64, 128, 256, 512]}
    teacher = network_weight_shapes([64, 128, 256, 512], embedding_bn_relu=False)
    if kind == "openl3-v0_4_0":
        body = [g for g in found if not is_frontend_group(g[0])]
        if len(body) != len(found):
            raise ModelError(f"{path}: has a spectrogram layer, so it is an openl3 v0_2_0 file, not v0_4_0")
        expected = teacher
        result["input_repr"] = input_repr
    elif kind == "openl3-v0_2_0":
        if not found or not is_frontend_group(found[0][0]):
            raise ModelError(f"{path}: an openl3 v0_2_0 file starts with a (mel)spectrogram layer; "
                             f"its first weighted layer is {found[0][0] if found else 'absent'}")
        shapes = found[0][1]
        n_dft = shapes[0][0]
        n_mels = shapes[2][1] if len(shapes) > 2 else None
        recognised = {(512, None): "linear", (2048, 128): "mel128", (2048, 256): "mel256"}.get((n_dft, n_mels))
        if recognised is None or (input_repr and recognised != input_repr):
            raise ModelError(f"{path}: front-end layer '{found[0][0]}' has shapes {shapes}, which is not "
                             f"{input_repr or 'linear, mel128 or mel256'}")
        result["input_repr"] = recognised
        expected = [_frontend_group_shapes(n_dft, n_mels)] + teacher
    elif kind == "edgel3-sparse":
        expected = [_frontend_group_shapes(2048, 256)] + teacher
    else:  # edgel3-sea
        sizes = [embedding_size] if embedding_size else [64, 128, 256, 512]
        for size in sizes:
            preset = STUDENT_PRESETS.get(f"sea-{size}")
            if preset is None:
                raise ModelError(f"edgel3 SEA embedding_size must be 64, 128, 256 or 512; got {size!r}")
            expected = ([_frontend_group_shapes(1024, 64)]
                        + network_weight_shapes(preset["filters"], embedding_bn_relu=True))
            if [[tuple(s) for s in e] for e in expected] == [[tuple(s) for s in g[1]] for g in found]:
                result.update(filters=list(preset["filters"]), embedding_size=size)
                return result
        raise ModelError(_describe_mismatch(path, f"edgel3-sea (embedding {sizes[-1]})", expected, found))
    if [[tuple(s) for s in e] for e in expected] != [[tuple(s) for s in g[1]] for g in found]:
        raise ModelError(_describe_mismatch(path, kind, expected, found))
    return result


def check_frontend_constants(path: Path | str, group: WeightGroup, spec: dict[str, Any]) -> dict[str, Any]:
    """Compare a kapre group's stored DFT kernels (and filterbank) with what our front end computes.

    Returns
    -------
    dict
        ``dft_kernels_max_abs_diff``, ``filterbank_max_abs_diff`` (None for linear) and
        ``checked: true``; raises :class:`ModelError` beyond float tolerance.
    """
    name, weights = group
    arrays = [a for _, a in weights]
    real_ref, imag_ref = dft_kernels(spec["n_dft"])
    if arrays[0].shape != (spec["n_dft"], 1, 1, real_ref.shape[1]):
        raise ModelError(f"{path}: front-end layer '{name}' has DFT kernels of shape {arrays[0].shape}, "
                         f"expected {(spec['n_dft'], 1, 1, real_ref.shape[1])}")
    dft_diff = max(float(np.abs(arrays[0][:, 0, 0, :] - real_ref).max()),
                   float(np.abs(arrays[1][:, 0, 0, :] - imag_ref).max()))
    fb_diff = None
    if spec.get("n_mels"):
        fb = mel_filterbank(spec)
        if len(arrays) < 3 or arrays[2].shape != fb.shape:
            raise ModelError(f"{path}: front-end layer '{name}' lacks a filterbank of shape {fb.shape}")
        fb_diff = float(np.abs(arrays[2] - fb).max())
    if dft_diff > DFT_TOLERANCE or (fb_diff is not None and fb_diff > FILTERBANK_TOLERANCE):
        raise ModelError(f"{path}: front-end layer '{name}' stores DFT kernels/filterbank that differ from the "
                         f"kapre-0.1.4 ones we compute (max abs diff {dft_diff:.3g} / {fb_diff}); the model was "
                         "trained with a different front end, which sea-tf does not reproduce")
    return {"checked": True, "dft_kernels_max_abs_diff": dft_diff, "filterbank_max_abs_diff": fb_diff}


def assign_weights(network: Any, groups: list[WeightGroup], path: Path | str) -> None:
    """Set ``network``'s weighted layers from ``groups`` (front-end groups removed), by order with shape checks."""
    layers = [layer for layer in network.layers if layer.weights]
    if len(layers) != len(groups):
        raise ModelError(f"{path}: the file has {len(groups)} weighted layers "
                         f"({', '.join(g[0] for g in groups[:3])}, ...) but the architecture has {len(layers)}; "
                         "choose the matching model (input_repr / embedding size) or another file")
    for layer, (name, weights) in zip(layers, groups):
        current = layer.get_weights()
        shapes_file = [tuple(a.shape) for _, a in weights]
        shapes_model = [tuple(w.shape) for w in current]
        if shapes_file != shapes_model:
            raise ModelError(f"{path}: layer '{name}' has weight shapes {shapes_file} but model layer "
                             f"'{layer.name}' expects {shapes_model}; this file does not fit this architecture")
        layer.set_weights([a.astype(np.float32) for _, a in weights])


def _kapre_config(model_config: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None, list[dict[str, Any]]]:
    layers = model_config.get("config", {}).get("layers", [])
    for layer in layers:
        if layer.get("class_name") in ("Melspectrogram", "Spectrogram"):
            return layer["class_name"], layer["config"], layers
    return None, None, layers


def load_edgel3_h5(path: Path | str, *, dft: str = "rfft") -> "SeaModel":
    """Load an edgel3 full-model ``.h5`` (Keras 2.0.9 + kapre 0.1.4; SEA or sparse) as a SeaModel.

    The architecture is read from ``model_config``: the kapre Melspectrogram settings give the
    front end, the Conv2D widths give the filters, and a BatchNormalization after
    ``audio_embedding_layer`` marks a SEA student (docs/PROTOCOL.md §2.1) rather than a sparse EdgeL3 (§2.4).
    """
    from sea_tf.models.builders import build_student
    info = inspect_weight_file(path)
    if info["model_config"] is None:
        raise ModelError(f"{path}: no model_config attribute; edgel3 files are full Keras models")
    try:
        preset, named, arch, bn_after = _architecture(path, info["model_config"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a config of the wrong shape
        what = f"the setting {exc}" if isinstance(exc, KeyError) else f"a readable value ({exc})"
        raise ModelError(f"{path}: model_config lacks {what} where an edgel3 model keeps its Melspectrogram "
                         "and Conv2D layer settings; the file is damaged or not an edgel3 model") from exc
    model = build_student(named, dft=dft) if named else build_student(preset, dft=dft, **arch)
    groups = read_weight_groups(path)
    front = [g for g in groups if is_frontend_group(g[0])]
    check = check_frontend_constants(path, front[0], model.frontend) if front else {"checked": False}
    assign_weights(model.network(), [g for g in groups if not is_frontend_group(g[0])], path)
    name = f"edgel3/{named}" if bn_after and named else f"edgel3/{Path(path).stem}"
    _mark_published(model, path, name, "edgel3-keras-full-model", check, info["keras_version"])
    return model


def _architecture(path: Path | str,
                  model_config: dict[str, Any]) -> tuple[str, str | None, dict[str, Any], bool]:
    """What ``model_config`` describes: (base preset, matching preset name or None, arch kwargs, is SEA).

    A SEA student has a BatchNormalization after ``audio_embedding_layer``; a sparse EdgeL3 has none.
    """
    from sea_tf.models.builders import STUDENT_PRESETS
    class_name, kapre, layers = _kapre_config(model_config)
    if class_name != "Melspectrogram" or kapre is None:
        raise ModelError(f"{path}: no kapre Melspectrogram layer in model_config; not an edgel3 model")
    if not kapre.get("return_decibel_melgram", False) or float(kapre.get("power_melgram", 1.0)) != 1.0 \
            or not kapre.get("htk", False) or kapre.get("norm", 1) not in (1, "slaney"):
        raise ModelError(f"{path}: Melspectrogram settings {kapre} differ from the kapre-0.1.4 front end sea-tf "
                         "reproduces (dB, power_melgram 1, htk, norm 1)")
    convs = [layer["config"]["filters"] for layer in layers if layer.get("class_name") == "Conv2D"]
    if len(convs) != 8:
        raise ModelError(f"{path}: expected 8 Conv2D layers (L3 body), found {len(convs)}")
    names = [layer["config"]["name"] for layer in layers]
    emb_index = names.index("audio_embedding_layer") if "audio_embedding_layer" in names else len(names) - 4
    bn_after = any(layer.get("class_name") == "BatchNormalization" for layer in layers[emb_index + 1:])
    preset = "sea-64" if bn_after else "edgel3-sparse"
    arch = dict(sample_rate=int(kapre["sr"]), n_mels=int(kapre["n_mels"]), n_dft=int(kapre["n_dft"]),
                n_hop=int(kapre["n_hop"]), fmin=float(kapre.get("fmin", 0.0)),
                fmax=float(kapre.get("fmax") or kapre["sr"] / 2), filters=[convs[0], convs[2], convs[4], convs[6]])
    if kapre.get("padding", "same") != "same":
        raise ModelError(f"{path}: Melspectrogram padding {kapre.get('padding')!r} is not supported (only 'same')")
    named = next((p for p, v in STUDENT_PRESETS.items()
                  if all(v[k] == arch[k] for k in arch) and v["embedding_bn_relu"] == bn_after), None)
    return preset, named, arch, bn_after


def guess_input_repr(path: Path | str) -> str | None:
    """``linear``/``mel128``/``mel256`` from an openl3 file name, else None."""
    match = re.search(r"(linear|mel128|mel256)", Path(path).name)
    return match.group(1) if match else None


def load_openl3_weights(path: Path | str, *, input_repr: str | None = None, embedding_size: int = 512,
                        frontend: str = "kapre-0.1.4", dft: str = "rfft") -> "SeaModel":
    """Load openl3 audio weights (v0_2_0 with a spectrogram layer, or v0_4_0 without) into the L3 teacher.

    Parameters
    ----------
    path : str or Path
        ``openl3_audio_<repr>_<content>[-v0_x_0].h5``.
    input_repr : {"linear", "mel128", "mel256"}, optional
        Taken from a v0_2_0 file's front-end layer or the file name when not given.
    embedding_size : {512, 6144}
    frontend : {"kapre-0.1.4", "openl3-0.4-kapre", "openl3-0.4-librosa"}
        Front-end family (the weights are the same; kapre-0.1.4 is how they were trained).
    dft : {"rfft", "matmul"}

    Returns
    -------
    SeaModel
        Kind "teacher", ``weights.source = "published"``.
    """
    from sea_tf.models.builders import build_teacher
    groups = read_weight_groups(path)
    front = [g for g in groups if is_frontend_group(g[0])]
    kind = "openl3-v0_2_0" if front else "openl3-v0_4_0"
    recognised = check_layout(path, kind, input_repr=input_repr)
    input_repr = input_repr or recognised.get("input_repr") or guess_input_repr(path)
    if input_repr is None:
        raise ModelError(f"{path}: cannot tell the input representation (linear, mel128, mel256) from a v0_4_0 "
                         "file without 'linear'/'mel128'/'mel256' in its name; pass input_repr")
    model = build_teacher(input_repr, embedding_size, frontend=frontend, dft=dft)
    check: dict[str, Any] = {"checked": False}
    if front and frontend == "kapre-0.1.4":
        check = check_frontend_constants(path, front[0], model.frontend)
    assign_weights(model.network(), [g for g in groups if not is_frontend_group(g[0])], path)
    _mark_published(model, path, f"openl3/{input_repr}-{embedding_size}", kind, check,
                    inspect_weight_file(path)["keras_version"])
    return model


def _mark_published(model: "SeaModel", path: Path | str, name: str, file_format: str, check: dict[str, Any],
                    keras_version: str | None) -> None:
    model.card["name"] = name
    model.card["weights"] = {
        "source": "published", "path": str(Path(path).resolve()), "sha256": cards.sha256_file(path),
        "seed": None, "format": file_format, "keras_version": keras_version,
        # The stored kapre DFT kernels / filterbank are compared with ours, never loaded.
        "frontend_constants": check,
    }
