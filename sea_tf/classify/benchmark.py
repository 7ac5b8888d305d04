"""Several models through the same fold protocol, and one table comparing them.

``OUT/<model>/`` holds each model's fold results, ``results.json`` and ``confusion.png``;
``OUT/comparison.{json,md}`` compares the models. A model that fails (cannot be loaded, no clip
embedded) is reported in the table's ``failed`` entry and the others still run.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from sea_tf import atomic, cards
from sea_tf.classify import defaults
from sea_tf.classify.crossval import cross_validate
from sea_tf.classify.evaluate import breakdown_markdown, comparison_markdown, write_comparison_markdown
from sea_tf.classify.features import extract_features, open_embedder, spec_name
from sea_tf.errors import SeaTFError

if TYPE_CHECKING:  # annotations only
    from sea_tf.classify.features import ClipSet
    from sea_tf.models.seamodel import SeaModel

DEFAULTS_FEATURES = defaults.FEATURES


def unique_names(specs: Sequence[object]) -> list[str]:
    """Short names for ``specs``, suffixed ``-2``, ``-3`` … where two specs share one."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for spec in specs:
        base = spec_name(spec)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def run_benchmark(clips: ClipSet, model_specs: Sequence[str | Path | SeaModel], out_dir: Path | str, *,
                  features_cfg: dict | None = None, clf_cfg: dict | None = None, seed: int,
                  test_folds: Sequence[int] | None = None, workers: int, progress: bool,
                  names: list[str] | None = None) -> dict:
    """Evaluate every model of ``model_specs`` on ``clips`` with the fold protocol.

    Parameters
    ----------
    clips : sea_tf.classify.features.ClipSet
    model_specs : list
        Anything :func:`~sea_tf.classify.features.open_embedder` takes (presets, ``.keras``,
        ``.h5``, ``.tflite`` paths, ``SeaModel`` objects).
    out_dir : str or Path
    features_cfg : dict, optional
        ``hop_size`` (s), ``framing``, ``cache_dir`` (default ``OUT/cache``), ``max_failed_fraction``.
    clf_cfg : dict, optional
        Classifier settings (``sea_tf.classify.crossval.CLASSIFIER_DEFAULTS``).
    seed, test_folds, workers, progress
        As :func:`~sea_tf.classify.crossval.cross_validate`.
    names : list of str, optional
        Display names (default: derived from the specs).

    Returns
    -------
    dict
        ``{"dataset", "n_folds", "models": {name: summary}, "failed": {name: reason}}``, also
        written to ``OUT/comparison.json`` (with ``OUT/comparison.md``).
    """
    out_dir = Path(out_dir)
    fcfg = {**DEFAULTS_FEATURES, **(features_cfg or {})}
    cache_dir = Path(fcfg["cache_dir"]) if fcfg["cache_dir"] else out_dir / "cache"
    names = names or unique_names(model_specs)
    summaries: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for spec, name in zip(model_specs, names):
        try:
            embedder = open_embedder(spec, name=name)
            feats = extract_features(clips, embedder, cache_dir, hop_size=fcfg["hop_size"], framing=fcfg["framing"],
                                     max_failed_fraction=fcfg["max_failed_fraction"], progress=progress)
            framing = {"framing": fcfg["framing"], "hop_size": float(fcfg["hop_size"])}
            # "untrained" rows say so; the file hashes join this row with export and device rows (sea-tf report)
            extra = {"spec": str(spec), "weights": cards.weights_provenance(embedder.card), **embedder.identity()}
            summaries[name] = cross_validate(feats, out_dir / name, clf_cfg=clf_cfg, seed=seed, test_folds=test_folds,
                                             workers=workers, progress=progress, framing=framing, extra=extra)
        except SeaTFError as exc:
            failed[name] = str(exc)
            if progress:
                print(f"classify: {name} failed: {exc}")
    n_folds = len(test_folds or clips.fold_ids)
    table = {"dataset": clips.kind, "n_folds": n_folds, "protocol_folds": list(clips.fold_ids),
             "test_folds": list(test_folds or clips.fold_ids), "features": fcfg,
             "models": {n: {k: v for k, v in s.items() if k != "folds"} for n, s in summaries.items()},
             "failed": failed}
    atomic.write_json(out_dir / "comparison.json", table)
    subset = f" (test folds {', '.join(map(str, test_folds))} only)" if test_folds else ""
    md = [f"# {clips.kind}: clip accuracy, {len(clips.fold_ids)}-fold protocol{subset}", "",
          comparison_markdown(summaries, n_folds),
          f"Frames: 1-s windows every {fcfg['hop_size']} s ({fcfg['framing']} framing); clip = mean of frame "
          "probabilities."]
    if summaries:
        md += ["", "## Accuracy per test fold (%)", "", breakdown_markdown(summaries, "per_fold", "fold"),
               "## Accuracy per class (%, over all test folds)", "",
               breakdown_markdown(summaries, "per_class_accuracy", "class")]
    write_comparison_markdown(out_dir, md, failed, any_succeeded=bool(summaries))
    return table
