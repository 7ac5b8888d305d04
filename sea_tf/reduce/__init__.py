"""The reduction φ: ℝⁿ → ℝᵈ (docs/PROTOCOL.md §3.2–3.3), fitted on a sample of teacher embeddings and applied to every row.

The entry points take the resolved config, one per command: :func:`fit` (``sea-tf reduce fit``),
:func:`apply` (``sea-tf reduce apply``), :func:`compare` (``sea-tf reduce compare``); beside each, the
same from explicit arguments: :func:`fit_sample`, :func:`apply_reducer`, :func:`compare_strategies`.
Read top to bottom: :mod:`reducer` (φ itself: scaler + PCA / IncrementalPCA / UMAP, or ``none``) →
:mod:`fitting` (``sea-tf reduce fit``: the reducer folder, written as one unit) → :mod:`quality`
(held-out trustworthiness, kNN recall, explained variance; part of the fit) → :mod:`targets`
(``sea-tf reduce apply``: one target file per teacher shard, row by row) → :mod:`compare`
(``sea-tf reduce compare``: the sampling study).

    from sea_tf import config
    from sea_tf.reduce import fit, apply
    card = fit(config.load("reduce/fit", shards=["shards/"], sample="sample/", out="reducer/", d=64))
    apply(config.load("reduce/apply", reducer="reducer/", shards=["shards/"], out="targets/"))
"""
from sea_tf.reduce.compare import (STUDY_COLUMNS, compare, compare_strategies, coverage, loudness_overlap,
                                   markdown_table, plot_study)
from sea_tf.reduce.fitting import REDUCER_FILES, fit, fit_sample
from sea_tf.reduce.quality import (MIN_EVAL_ROWS, evaluate, heldout_explained_variance, heldout_rows, knn_recall,
                                   plot_scatter)
from sea_tf.reduce.reducer import METHODS, PCA_SOLVERS, ChunkReader, Reducer, check_dims, fit_reducer
from sea_tf.reduce.targets import apply, apply_reducer, check_rows_finite

__all__ = ["fit", "apply", "compare",
           "METHODS", "PCA_SOLVERS", "ChunkReader", "Reducer", "check_dims", "fit_reducer",
           "REDUCER_FILES", "fit_sample",
           "MIN_EVAL_ROWS", "evaluate", "heldout_explained_variance", "heldout_rows", "knn_recall", "plot_scatter",
           "apply_reducer", "check_rows_finite",
           "STUDY_COLUMNS", "compare_strategies", "coverage", "loudness_overlap", "markdown_table", "plot_study"]
