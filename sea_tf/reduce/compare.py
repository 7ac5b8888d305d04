"""The sampling study (docs/PROTOCOL.md §3.1): every sampling strategy samples the same shards, fits φ, is scored.

Beside φ's quality (:mod:`sea_tf.reduce.quality`) the study says what each sampler picked: the share
of its rows among the m loudest (:func:`loudness_overlap`; random ≈ m/n, top-m by loudness = 1),
coverage (:func:`coverage`: mean distance from every row to its nearest sampled row) and
diversity (:func:`sea_tf.sampling.diversity`). Each DPP strategy is studied with the configured solver
(``sampling.dpp_solver``, the row named by the strategy) and once more per ``also_dpp_solvers`` entry
(rows ``"dpp (mcmc)"``, ``"dpp-quality (mcmc)"``): the paper's stated exact sample beside the published
code's MCMC approximation.

:func:`compare` is ``sea-tf reduce compare``'s entry point (the resolved ``reduce/compare`` config);
:func:`compare_strategies` does the same from explicit arguments. (The package's ``compare`` is that
function; reach this module as ``importlib.import_module("sea_tf.reduce.compare")``.)
"""
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import NearestNeighbors

from sea_tf import atomic
from sea_tf import sampling as sampling_mod
from sea_tf.config import Config, write_resolved
from sea_tf.reduce.fitting import fit_sample
from sea_tf.reduce.quality import evaluate
from sea_tf.reduce.reducer import Reducer, _need_shards, _reducer_options
from sea_tf.shards import ShardSet


def loudness_overlap(sample_index: npt.ArrayLike, loudness_db: npt.ArrayLike) -> float:
    """Share of a sample of m rows that lies among the m loudest rows of the pool.

    Parameters
    ----------
    sample_index : np.ndarray of int [shape=(m,)]
    loudness_db : np.ndarray [shape=(n,)]
        Window loudness (dBFS) of every row of the pool.

    Returns
    -------
    float in [0, 1]
        About m/n for a uniform sample; 1 for "the m loudest".
    """
    sample_index = np.asarray(sample_index, dtype=np.int64)
    m = len(sample_index)
    loudest = np.argsort(-np.asarray(loudness_db, dtype=np.float64), kind="stable")[:m]
    return float(len(np.intersect1d(loudest, sample_index)) / max(1, m))


def coverage(pool: npt.ArrayLike, sample: npt.ArrayLike) -> float:
    """Mean distance from every pool row to its nearest sampled row, on L2-normalised rows (lower: better covered).

    Parameters
    ----------
    pool : np.ndarray [shape=(n, D)]
        The rows to cover (a seeded subset of a large pool is fine).
    sample : np.ndarray [shape=(m, D)]

    Returns
    -------
    float in [0, 2]
        Chord distance ``‖a/‖a‖ − b/‖b‖‖``: scale-free, so loud and quiet rows count alike.
    """
    from sklearn.preprocessing import normalize

    nn = NearestNeighbors(n_neighbors=1).fit(normalize(np.asarray(sample, np.float64)))
    return float(nn.kneighbors(normalize(np.asarray(pool, np.float64)))[0].mean())


def compare(cfg: Config) -> list[dict[str, Any]]:
    """``sea-tf reduce compare``: every sampling strategy on the teacher shards ``cfg["shards"]``, one table.

    Parameters
    ----------
    cfg : dict
        The resolved ``reduce/compare`` config (the ``compare:`` section of
        ``configs/reduce/defaults.yaml``; ``sea_tf.config.load("reduce/compare", shards=[...], out=...)``).

    Returns
    -------
    list of dict
        One row per strategy (:func:`compare_strategies`; :func:`markdown_table` formats it); the
        resolved config is written as ``OUT/reduce-compare.config.yaml``.

    Raises
    ------
    ConfigError
        No teacher shards given, or a bad setting.
    """
    _need_shards(cfg)
    out = Path(cfg["out"])
    table = compare_strategies(cfg["shards"], out, cfg["m"], strategies=cfg["strategies"], method=cfg["method"],
                               d=cfg["d"], seed=cfg["seed"], sampling=dict(cfg["sampling"]),
                               also_dpp_solvers=cfg["also_dpp_solvers"],
                               reducer=_reducer_options(cfg), n_heldout=cfg["quality"]["n_heldout"],
                               k=cfg["quality"]["k"], progress=cfg["progress"], allow_partial=cfg["allow_partial"])
    write_resolved(cfg, out, "reduce-compare")
    return table


def compare_strategies(shard_dirs: Path | str | Sequence[Path | str], out_dir: Path | str, m: int, *,
                       strategies: Sequence[str] | None = None, method: str, d: int, seed: int,
                       sampling: Mapping[str, Any], also_dpp_solvers: Sequence[str],
                       reducer: Mapping[str, Any] | None = None, n_heldout: int,
                       k: int, progress: bool, n_coverage: int = 4000,
                       allow_partial: bool) -> list[dict[str, Any]]:
    """The SEA paper's sampling study (docs/PROTOCOL.md §3.1) in one call: every strategy samples the same shards, fits φ, is scored.

    All strategies are scored on the same held-out rows (drawn from the rows none of them picked),
    and their samples are described against the same pool: loudness overlap, coverage, diversity.

    Parameters
    ----------
    shard_dirs : str, Path or list
    out_dir : str or Path
        Gets ``<run>/{sample.npz, card.json}``, ``<run>/reducer/``, ``compare.json``,
        ``compare.md``, ``compare.png`` and one ``quality-<run>.png`` each (``<run>``: the strategy, or
        ``<strategy>-<solver>`` for an ``also_dpp_solvers`` run).
    m : int
        Samples per strategy.
    strategies : list of str, optional
        Default: all of :data:`sea_tf.sampling.STRATEGIES`.
    method, d : str, int
        The reduction fitted on each sample.
    seed : int
    sampling : dict
        The sampler's settings, keyword arguments of :func:`sea_tf.sampling.sample_shards`:
        ``group_by``, ``group_rows``, ``dpp_solver``, ``dpp_kernel``, ``ridge``, ``mcmc_iterations``,
        ``mcmc_start_seed``, ``max_kdpp_mb`` (the ``sampling:`` section of ``configs/reduce/defaults.yaml``).
    also_dpp_solvers : list of str
        Each DPP strategy (``dpp``, ``dpp-quality``) is run once more with each of these solvers
        (one that equals ``sampling["dpp_solver"]`` is skipped), as a row ``"<strategy> (<solver>)"``.
    reducer : dict, optional
        Extra keyword arguments of :func:`sea_tf.reduce.fit_sample` (``pca_solver``, ``umap_params``).
    n_heldout, k : int
        Held-out rows and neighbours of :func:`~sea_tf.reduce.quality.evaluate`.
    progress : bool
        Show the samplers' progress bars.
    n_coverage : int
        Pool rows (a seeded subset) whose nearest sampled row sets the coverage.
    allow_partial : bool
        Read shard directories whose split run lacks some jobs (:class:`~sea_tf.shards.ShardSet`).

    Returns
    -------
    list of dict
        One row per run (strategy, then its ``also_dpp_solvers`` rows): ``strategy``, ``loud_overlap`` (share of the sample among the m
        loudest rows; None without loudness), ``coverage`` (lower is better), ``diversity`` (of the
        sample), then φ's ``trustworthiness``, ``knn_recall`` (at ``k``), ``explained_variance``
        (PCA) on held-out rows, and ``wall_s``.
    """
    out_dir = Path(out_dir)
    strategies = list(strategies or sampling_mod.STRATEGIES)
    shards = ShardSet(shard_dirs, allow_partial=allow_partial)
    for solver in also_dpp_solvers:
        sampling_mod.check_dpp_options(solver=solver, kernel=sampling["dpp_kernel"], ridge=sampling["ridge"],
                                       mcmc_iterations=sampling["mcmc_iterations"], max_kdpp_mb=sampling["max_kdpp_mb"])
    # (row label, output folder, strategy, sampler settings): each strategy, then its other DPP solvers.
    runs = []
    for strategy in strategies:
        runs.append((strategy, strategy, strategy, dict(sampling)))
        if strategy in ("dpp", "dpp-quality"):
            runs += [(f"{strategy} ({solver})", f"{strategy}-{solver}", strategy, {**sampling, "dpp_solver": solver})
                     for solver in also_dpp_solvers if solver != sampling["dpp_solver"]]
    samples: dict[str, np.ndarray] = {}
    walls: dict[str, float] = {}
    folders: dict[str, str] = {}
    for label, folder, strategy, settings in runs:
        start = time.perf_counter()
        folders[label] = folder
        samples[label], _ = sampling_mod.sample_shards(shard_dirs, out_dir / folder, m, strategy=strategy,
                                                       seed=seed, progress=progress, allow_partial=allow_partial,
                                                       **settings)
        fit_sample(shard_dirs, out_dir / folder, out_dir / folder / "reducer", method=method, d=d,
                   seed=seed, quality=None, progress=progress, allow_partial=allow_partial, **(reducer or {}))
        walls[label] = time.perf_counter() - start
    union = np.unique(np.concatenate(list(samples.values())))
    loud = _column_or_none(shards, "loudness_db")
    rng = np.random.default_rng(seed)
    pool_rows = np.sort(rng.choice(shards.n_rows, size=min(int(n_coverage), shards.n_rows), replace=False))
    pool = shards.read("embedding", pool_rows)
    table = []
    for label, folder in folders.items():
        fitted = Reducer.load(out_dir / folder / "reducer")
        q = evaluate(shards, fitted, union, out_dir, seed=seed, n_heldout=n_heldout, k=k,
                     name=f"quality-{folder}")
        emb = shards.read("embedding", samples[label])
        row = {"strategy": label,
               "loud_overlap": None if loud is None else loudness_overlap(samples[label], loud),
               "coverage": coverage(pool, emb),
               "diversity": sampling_mod.diversity(emb[:2000])}
        row.update({key: q[key] for key in q if key not in ("png", "method")})
        row["wall_s"] = round(walls[label], 3)
        table.append(row)
    png = plot_study(table, out_dir / "compare.png", title=f"sampling study: m = {m} of {shards.n_rows} rows, "
                                                           f"{method} d = {d}")
    atomic.write_json(out_dir / "compare.json", {"m": int(m), "n_rows": int(shards.n_rows), "method": method,
                                                 "d": int(d), "sampling": dict(sampling),
                                                 "also_dpp_solvers": list(also_dpp_solvers),
                                                 "random_loud_overlap": float(m / shards.n_rows),
                                                 "rows": table, "png": str(png)})
    atomic.write_text(out_dir / "compare.md", markdown_table(table))
    return table


STUDY_COLUMNS = (("loud_overlap", "share among the m loudest"), ("coverage", "coverage (↓ better)"),
                 ("diversity", "diversity"), ("explained_variance", "φ explained variance (held-out)"),
                 ("trustworthiness", "φ trustworthiness"), ("knn_recall", "φ kNN recall"))


def plot_study(rows: Sequence[Mapping[str, Any]], path: Path | str, *, title: str = "") -> Path:
    """One bar panel per study column (:data:`STUDY_COLUMNS`), one bar per strategy; writes ``path`` (PNG)."""
    plt = atomic.pyplot()

    columns = [(key, label) for key, label in STUDY_COLUMNS if any(row.get(key) is not None for row in rows)]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.3 * len(columns), 3.2), dpi=100, squeeze=False)
    names = [row["strategy"] for row in rows]
    for ax, (key, label) in zip(axes[0], columns):
        values = [np.nan if row.get(key) is None else row[key] for row in rows]
        ax.bar(range(len(rows)), values, color=[f"C{i}" for i in range(len(rows))])
        ax.set_xticks(range(len(rows)), names, rotation=45, ha="right", fontsize=7)
        ax.set_title(label, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic.save_figure(fig, path)


def _column_or_none(shards: ShardSet, key: str) -> np.ndarray | None:
    """Column ``key`` of every row, or None when the shards do not hold it."""
    try:
        return np.concatenate([c[key] for c in shards.iter_chunks([key], rows=1 << 16)])
    except (KeyError, ValueError):
        return None


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of the comparison rows (numbers to 4 decimals)."""
    if not rows:
        return ""
    keys = [key for key in rows[0] if key not in ("heldout", "d")]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else ("–" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"
