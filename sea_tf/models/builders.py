"""Builders and presets: the L3 teacher (docs/PROTOCOL.md §1.1) and the SEA / EdgeL3 students (docs/PROTOCOL.md §2.1, §2.4).

Models built here are seeded and untrained (card ``weights.source = "untrained"``); the same seed
gives the same weights. Published weights are loaded on top by ``sea_tf.models.h5_weights``.
"""
import copy
from typing import Any

from sea_tf.errors import ModelError
from sea_tf.models.frontends import frontend_spec, teacher_frontend_spec
from sea_tf.models.architectures import build_l3_network
from sea_tf.models.seamodel import NETWORK_LAYER, SeaModel, assemble, make_card

DEFAULT_SEED = 20180216

#: SEA students of edgel3 (docs/PROTOCOL.md §2.1): 8 kHz, 64 HTK mels, n_dft 1024, hop 160, fmax 4 kHz.
_SEA_COMMON: dict[str, Any] = dict(sample_rate=8000, n_mels=64, n_dft=1024, n_hop=160, fmin=0.0, fmax=4000.0,
                   frontend="kapre-0.1.4-mel", embedding_bn_relu=True, head="published")
STUDENT_PRESETS: dict[str, dict[str, Any]] = {
    "sea-64": dict(_SEA_COMMON, filters=[32, 64, 128, 64]),
    "sea-128": dict(_SEA_COMMON, filters=[32, 64, 128, 128]),
    "sea-256": dict(_SEA_COMMON, filters=[32, 64, 128, 256]),
    "sea-512": dict(_SEA_COMMON, filters=[64, 128, 256, 512]),
    # EdgeL3 sparse family (docs/PROTOCOL.md §2.4): the mel256 teacher body at 48 kHz, global valid pool, 512-d.
    "edgel3-sparse": dict(sample_rate=48000, n_mels=256, n_dft=2048, n_hop=242, fmin=0.0, fmax=24000.0,
                          frontend="kapre-0.1.4-mel", embedding_bn_relu=False, head="published",
                          filters=[64, 128, 256, 512]),
}

#: Teacher head pools (openl3 AUDIO_POOLING_SIZES, docs/PROTOCOL.md §1.1).
TEACHER_POOLS: dict[tuple[str, int], tuple[int, int]] = {
    ("linear", 6144): (8, 8), ("linear", 512): (32, 24),
    ("mel128", 6144): (4, 8), ("mel128", 512): (16, 24),
    ("mel256", 6144): (8, 8), ("mel256", 512): (32, 24),
}
TEACHER_PRESETS: dict[str, dict[str, Any]] = {f"l3-{repr_}-{size}": dict(input_repr=repr_, embedding_size=size)
                   for repr_, size in TEACHER_POOLS}
PRESETS = tuple(STUDENT_PRESETS) + tuple(TEACHER_PRESETS)


def build_student(preset: str | None = None, *, seed: int = DEFAULT_SEED, dft: str = "rfft", name: str | None = None,
                  **overrides: Any) -> SeaModel:
    """A SEA-family student (or an EdgeL3 sparse model) on raw audio windows.

    Parameters
    ----------
    preset : str, optional
        ``sea-64``, ``sea-128``, ``sea-256``, ``sea-512`` or ``edgel3-sparse``; default ``sea-64``.
    seed : int
        Seed of the initial weights.
    dft : {"rfft", "matmul"}
        How the front end computes the DFT (same numbers; matmul for export targets without FFT).
    name : str, optional
        Card name (default: the preset name or "sea-custom").
    **overrides
        Any of ``sample_rate`` (Hz), ``n_mels``, ``n_dft``, ``n_hop`` (samples), ``fmin``, ``fmax``
        (Hz), ``filters`` (4 ints, blocks 1–4), ``embedding_size`` (sets ``filters[3]``),
        ``frontend`` (a front-end type), ``embedding_bn_relu`` (False: neither BN nor ReLU after the
        embedding layer), ``head`` (one of ``architectures.HEADS``; ``published`` in every preset).

    Returns
    -------
    SeaModel
        ``[B, sample_rate]`` → ``[B, filters[3]]``; card kind "student".
    """
    base = preset or "sea-64"
    if base not in STUDENT_PRESETS:
        raise ModelError(f"unknown student preset {base!r}; known: {', '.join(STUDENT_PRESETS)}")
    arch = copy.deepcopy(STUDENT_PRESETS[base])
    embedding_size = overrides.pop("embedding_size", None)
    unknown = set(overrides) - set(arch)
    if unknown:
        raise ModelError(f"unknown student setting(s) {sorted(unknown)}; known: {', '.join(sorted(arch))}, "
                         "embedding_size")
    arch.update(overrides)
    arch["filters"] = [int(f) for f in arch["filters"]]
    if embedding_size is not None:
        if "filters" in overrides and int(embedding_size) != arch["filters"][3]:
            raise ModelError(f"embedding_size {embedding_size} contradicts filters {arch['filters']} "
                             "(block 4's width is the embedding size)")
        arch["filters"][3] = int(embedding_size)
    if arch["fmax"] is None:
        arch["fmax"] = arch["sample_rate"] / 2
    spec = frontend_spec(arch["frontend"], sr=arch["sample_rate"], n_dft=arch["n_dft"], n_hop=arch["n_hop"],
                         n_mels=arch["n_mels"], fmin=arch["fmin"], fmax=arch["fmax"])
    network = build_l3_network(spec["output_shape"], arch["filters"], embedding_bn_relu=arch["embedding_bn_relu"],
                               head=arch["head"], seed=seed, name=NETWORK_LAYER)
    name = name or (base if not overrides and embedding_size is None else "sea-custom")
    model = assemble(spec, network, name, dft=dft)
    arch.update(builder="build_student", preset=base, embedding_size=arch["filters"][3], dft=dft)
    card = make_card(name, "student", arch, spec, model, {"source": "untrained", "seed": int(seed)})
    return SeaModel(model, card)


def build_teacher(input_repr: str = "mel256", embedding_size: int = 512, *, frontend: str = "kapre-0.1.4",
                  seed: int = DEFAULT_SEED, dft: str = "rfft", name: str | None = None) -> SeaModel:
    """The L3 audio network (openl3's audio model, docs/PROTOCOL.md §1.1) on raw 48 kHz windows.

    Parameters
    ----------
    input_repr : {"linear", "mel128", "mel256"}
    embedding_size : {512, 6144}
        512 pools the whole map; 6144 keeps a 4×3 grid of 512 channels.
    frontend : {"kapre-0.1.4", "openl3-0.4-kapre", "openl3-0.4-librosa"}
        Front-end family; kapre-0.1.4 is how the teacher was trained (docs/PROTOCOL.md §1.2 (a)).
    seed : int
    dft : {"rfft", "matmul"}
    name : str, optional

    Returns
    -------
    SeaModel
        ``[B, 48000]`` → ``[B, embedding_size]``; card kind "teacher".
    """
    if input_repr not in ("linear", "mel128", "mel256"):
        raise ModelError(f"input_repr must be linear, mel128 or mel256; got {input_repr!r}")
    if embedding_size not in (512, 6144):
        raise ModelError(f"teacher embedding_size must be 512 or 6144; got {embedding_size!r}")
    spec = teacher_frontend_spec(input_repr, family=frontend)
    pool = TEACHER_POOLS[(input_repr, embedding_size)]
    network = build_l3_network(spec["output_shape"], [64, 128, 256, 512], embedding_bn_relu=False, pool_size=pool,
                               pool_padding="same", seed=seed, name=NETWORK_LAYER)
    name = name or f"l3-{input_repr}-{embedding_size}"
    model = assemble(spec, network, name, dft=dft)
    arch = dict(builder="build_teacher", input_repr=input_repr, embedding_size=embedding_size,
                frontend=spec["type"], filters=[64, 128, 256, 512], pool_size=list(pool), pool_padding="same",
                embedding_bn_relu=False, dft=dft)
    card = make_card(name, "teacher", arch, spec, model, {"source": "untrained", "seed": int(seed)})
    return SeaModel(model, card)


def build_preset(name: str, *, seed: int = DEFAULT_SEED, dft: str = "rfft") -> SeaModel:
    """Build any preset by name (students and ``l3-<repr>-<size>`` teachers), seeded and untrained."""
    if name in STUDENT_PRESETS:
        return build_student(name, seed=seed, dft=dft)
    if name in TEACHER_PRESETS:
        return build_teacher(**TEACHER_PRESETS[name], seed=seed, dft=dft)
    raise ModelError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")


def rebuild(card: dict[str, Any], *, seed: int | None = None, dft: str | None = None) -> SeaModel:
    """Build an untrained model with the architecture recorded in ``card`` (for weight loading)."""
    arch = dict(card["architecture"])
    builder = arch.pop("builder", None)
    dft = dft or arch.pop("dft", "rfft")
    arch.pop("dft", None)
    seed = DEFAULT_SEED if seed is None else seed
    if builder == "build_teacher":
        family = arch["frontend"].rsplit("-", 1)[0]
        return build_teacher(arch["input_repr"], arch["embedding_size"], frontend=family, seed=seed, dft=dft)
    if builder == "build_student":
        preset = arch.pop("preset", "sea-64")
        arch.pop("embedding_size", None)
        return build_student(preset, seed=seed, dft=dft, name=card.get("name"), **arch)
    raise ModelError(f"card of {card.get('name')!r} has no known builder ({builder!r})")
