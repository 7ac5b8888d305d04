"""Groups of candidate rows, and the draws that need no embeddings (docs/PROTOCOL.md §3.1).

Rows are split into contiguous groups — one per source file (``group_by="source"``), consecutive
blocks of ``group_rows`` rows, i.e. a time window in recording order (``"window"``), or one group
(``"all"``) — or into the published per-sensor streams (``"sensor-day"``, ``"sensor-week"``,
``"sensor-month"``: :mod:`sea_tf.sampling.streams`). DPPs are solved per group, as the original code
solved one per sensor-day stream, so the cost stays linear in the pool size for bounded groups. Groups
do not play the original's 2-hour windows: ``quality: rms-group`` ranks loudness within a group (a whole
day under ``sensor-day``, so night windows score low), while the published score ranks the A-weighted
level within the sensor's 2-hour slot of local time (``quality: dba-slot``, :mod:`sea_tf.sampling.quality`).
Each group receives a share of M proportional to its size (:func:`allocate`, largest remainders).
"""
import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from sea_tf.errors import ConfigError, ReduceError

#: Contiguous groups (:func:`group_bounds`), then per-sensor streams by timeframe
#: (:func:`sea_tf.sampling.streams.sample_streams`).
GROUP_BY = ("source", "window", "all", "sensor-day", "sensor-week", "sensor-month")
_CONTIGUOUS = GROUP_BY[:3]


def group_bounds(n_rows: int, sources: npt.ArrayLike | None = None, *, group_by: str,
                 group_rows: int) -> npt.NDArray[np.int64]:
    """Contiguous groups of rows as boundaries ``[b0=0, b1, ..., bG=n_rows]``.

    Parameters
    ----------
    n_rows : int
    sources : np.ndarray of str [shape=(n_rows,)], optional
        Source file of each row; required for ``group_by="source"`` (a file's rows are contiguous).
    group_by : {"source", "window", "all"}
    group_rows : int
        Rows per group for ``"window"``.

    Returns
    -------
    np.ndarray [shape=(G + 1,), dtype=int64]
    """
    if group_by not in _CONTIGUOUS:
        hint = "; sensor streams are not contiguous, use sample_streams" if group_by in GROUP_BY else ""
        raise ConfigError(f"group_by must be one of {', '.join(_CONTIGUOUS)}; got {group_by!r}{hint}")
    if group_by == "all" or n_rows == 0:
        return np.array([0, n_rows], dtype=np.int64)
    if group_by == "window":
        if int(group_rows) < 1:
            raise ConfigError(f"group_rows must be ≥ 1, got {group_rows}")
        return np.unique(np.r_[np.arange(0, n_rows, int(group_rows)), n_rows]).astype(np.int64)
    names = np.asarray(sources)
    change = np.flatnonzero(names[1:] != names[:-1]) + 1
    return np.r_[0, change, n_rows].astype(np.int64)


def loudness_rank(loudness_db: npt.ArrayLike, bounds: np.ndarray) -> npt.NDArray[np.float64]:
    """Within-group loudness rank ``rank(dB, method="min") / count`` ∈ (0, 1] (louder → higher).

    Parameters
    ----------
    loudness_db : np.ndarray [shape=(n,)]
    bounds : np.ndarray
        Group boundaries from :func:`group_bounds`.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    loudness = np.asarray(loudness_db, dtype=np.float64)
    q = np.empty_like(loudness)
    for a, b in zip(bounds[:-1], bounds[1:]):
        q[a:b] = rankdata(loudness[a:b], method="min") / (b - a)
    return q


def allocate(sizes: npt.ArrayLike, m: int) -> npt.NDArray[np.int64]:
    """Split ``m`` picks over groups of ``sizes`` proportionally (largest remainders, capped by size).

    Returns
    -------
    np.ndarray [shape=(G,), dtype=int64] summing to ``m``.
    """
    counts = np.asarray(sizes, dtype=np.int64)
    total = int(counts.sum())
    if m > total:
        raise ReduceError(f"cannot pick {m} samples from {total} rows; ask for at most {total}")
    exact = counts * (m / total)
    share = np.minimum(np.floor(exact).astype(np.int64), counts)
    order = np.argsort(-(exact - share), kind="stable")
    for g in order:  # hand out the remainder, one each, largest fractional part first
        if share.sum() >= m:
            break
        if share[g] < counts[g]:
            share[g] += 1
    while share.sum() < m:  # only when caps bit; top up wherever room is left
        top = int(np.argmax(counts - share))
        share[top] += 1
    return share


def weighted_without_replacement(weights: npt.ArrayLike, m: int,
                                 rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Pick ``m`` indices with probability ∝ ``weights``, without replacement (successive sampling).

    Uses the Efraimidis–Spirakis keys ``log(u) / w`` (top m), which draws the same distribution
    as m successive weighted draws but in O(n) instead of O(n·m).

    Parameters
    ----------
    weights : np.ndarray [shape=(n,)], positive
    m : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(m,), dtype=int64], unsorted
    """
    w = np.asarray(weights, dtype=np.float64)
    keys = np.log(rng.random(len(w))) / w
    if m >= len(w):
        return np.arange(len(w), dtype=np.int64)
    return np.argpartition(-keys, m - 1)[:m].astype(np.int64)
