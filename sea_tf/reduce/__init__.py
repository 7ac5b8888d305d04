"""The reduction φ: ℝⁿ → ℝᵈ (docs/PROTOCOL.md §3.2–3.3), fitted on a sample of teacher embeddings and applied to every row.

Read top to bottom: :mod:`reducer` (φ itself: scaler + PCA / IncrementalPCA / UMAP, or ``none``) →
:mod:`fitting` (``sea-tf reduce fit``: the reducer folder, written as one unit) → :mod:`quality`
(held-out trustworthiness, kNN recall, explained variance; part of the fit) → :mod:`targets`
(``sea-tf reduce apply``: one target file per teacher shard, row by row) → :mod:`compare`
(``sea-tf reduce compare``: the sampling study).

    from sea_tf.reduce import fit, apply
    card = fit("shards/", "sample/", "reducer/", method="pca", d=64)
    apply("reducer/", "shards/", "targets/")
"""
from sea_tf.reduce.compare import (STUDY_COLUMNS, compare_strategies, coverage, loudness_overlap, markdown_table,
                                   plot_study)
from sea_tf.reduce.fitting import REDUCER_FILES, fit
from sea_tf.reduce.quality import (MIN_EVAL_ROWS, evaluate, heldout_explained_variance, heldout_rows, knn_recall,
                                   plot_scatter)
from sea_tf.reduce.reducer import METHODS, PCA_SOLVERS, ChunkReader, Reducer, check_dims, fit_reducer
from sea_tf.reduce.targets import apply, check_rows_finite

__all__ = ["METHODS", "PCA_SOLVERS", "ChunkReader", "Reducer", "check_dims", "fit_reducer",
           "REDUCER_FILES", "fit",
           "MIN_EVAL_ROWS", "evaluate", "heldout_explained_variance", "heldout_rows", "knn_recall", "plot_scatter",
           "apply", "check_rows_finite",
           "STUDY_COLUMNS", "compare_strategies", "coverage", "loudness_overlap", "markdown_table", "plot_study"]
