"""``sea-tf classify us8k|esc50|ust|final`` from the resolved config: :func:`run` (the stage's entry point).

Each task checks its settings, fills in the default embedding model (the published SEA-64 from
the weights cache, never an untrained preset), writes the resolved config beside its outputs and
runs the library functions below it: :func:`~sea_tf.classify.benchmark.run_benchmark` (the fold
protocol), :func:`~sea_tf.classify.ust.run_ust` (SONYC-UST) or
:func:`~sea_tf.classify.final.train_final` (the deployable classifier).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sea_tf import runlock
from sea_tf.classify.benchmark import run_benchmark
from sea_tf.classify.features import extract_features, load_clipset, open_embedder
from sea_tf.classify.final import train_final
from sea_tf.classify.ust import run_ust
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError
from sea_tf.models.resolve import DEFAULT_MODEL, default_model_path

TASKS = ("us8k", "esc50", "ust", "final")


def run(cfg: Config, *, task: str) -> dict[str, Any]:
    """Run one ``sea-tf classify`` task on its resolved config.

    Parameters
    ----------
    cfg : dict
        The resolved ``classify/<task>`` config (``configs/classify/defaults.yaml``;
        ``sea_tf.config.load("classify/us8k", data=..., out=...)``). An empty ``models`` (``model``
        for ``final``) becomes the published SEA-64, in ``cfg`` too.
    task : {"us8k", "esc50", "ust", "final"}
        The task; the resolved section does not name it.

    Returns
    -------
    dict
        us8k, esc50, ust: the comparison table (also ``OUT/comparison.json``; ``failed`` lists the
        models that could not be evaluated). final: ``classifier`` (the ``.keras`` path), ``card``
        (its card) and ``embedding_model`` (the embedding model's short name).

    Raises
    ------
    ConfigError
        An unknown task, or no ``data`` root given.
    """
    if task in ("us8k", "esc50"):
        return _benchmark(cfg, kind=task)
    if task == "ust":
        return _ust(cfg)
    if task == "final":
        return _final(cfg)
    raise ConfigError(f"unknown classify task {task!r}; use one of {', '.join(TASKS)}")


def _require(cfg: Config, key: str, flag: str) -> None:
    """A ConfigError naming ``flag`` when the setting ``key`` is empty."""
    if not cfg[key]:
        raise ConfigError(f"{flag} is required (or set '{key}' in the --config file)")


def _default_models(cfg: Config) -> None:
    """No ``models`` means the published SEA-64 (with the fetch/import hint, before anything is written)."""
    if not cfg["models"]:
        default_model_path()
        cfg["models"] = [DEFAULT_MODEL]


def _benchmark(cfg: Config, *, kind: str) -> dict[str, Any]:
    """``classify us8k|esc50``: the fold protocol over every model of ``cfg["models"]``."""
    _require(cfg, "data", "--data ROOT")
    _default_models(cfg)
    out = Path(cfg["out"])
    runlock.hold(out, command=f"classify {kind}")   # until this process ends: one run per folder
    write_resolved(cfg, out, f"classify-{kind}")
    clips = load_clipset(cfg["data"], kind)
    return run_benchmark(clips, cfg["models"], out, features_cfg=cfg["features"], clf_cfg=cfg["classifier"],
                         seed=cfg["seed"], test_folds=cfg["protocol"]["test_folds"],
                         workers=cfg["protocol"]["workers"], progress=cfg["progress"])


def _ust(cfg: Config) -> dict[str, Any]:
    """``classify ust``: SONYC-UST tagging of every model of ``cfg["models"]``."""
    from sea_tf.data.ust import UST

    _require(cfg, "data", "--data ROOT")
    _default_models(cfg)
    dataset = UST(cfg["data"])
    out = Path(cfg["out"])
    runlock.hold(out, command="classify ust")   # until this process ends: one run per folder
    write_resolved(cfg, out, "classify-ust")
    return run_ust(dataset, cfg["models"], out, cfg, progress=cfg["progress"])


def _final(cfg: Config) -> dict[str, Any]:
    """``classify final``: train and save the deployable classifier ``cfg["out"]`` (+ card)."""
    _require(cfg, "data", "--data ROOT")
    if not cfg["model"]:
        default_model_path()      # the fetch/import hint, before anything is written
        cfg["model"] = DEFAULT_MODEL
    out = Path(cfg["out"])
    clips = load_clipset(cfg["data"], cfg["dataset"])
    embedder = open_embedder(cfg["model"])
    fcfg = cfg["features"]
    cache = Path(fcfg["cache_dir"]) if fcfg["cache_dir"] else out.parent / "cache"
    feats = extract_features(clips, embedder, cache, hop_size=fcfg["hop_size"], framing=fcfg["framing"],
                             max_failed_fraction=fcfg["max_failed_fraction"], progress=cfg["progress"])
    split = cfg["split"]
    card = train_final(feats, embedder.card, out, mlp_cfg=cfg["mlp"], seed=cfg["seed"],
                       train_folds=split["train_folds"],
                       val_fold=split["val_fold"], val_fraction=split["val_fraction"], features_cfg=fcfg,
                       progress=cfg["progress"])
    write_resolved(cfg, out.parent, out.name[: -len(".keras")] if out.name.endswith(".keras") else out.name)
    return {"classifier": str(out), "card": card, "embedding_model": embedder.name}
