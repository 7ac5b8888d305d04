"""Batch only where it pays: batch 1 against batch N, measured once per artifact and CPU, cached.

Running N windows per ``invoke()`` is not faster everywhere: on an AMD EPYC Zen 4 (1 thread,
LiteRT 2.3/XNNPACK) batch 16 ran SEA-64 fp32 at 0.96x and int8 at 1.00x batch 1 (issue #23), and
on a Pi the larger activations may spill the cache. So offline runs (``Artifact.embed_frames``,
``embed_audio``, ``classify`` with ``batch="auto"``) time both on this machine, interleaved, and
keep the faster; a tie keeps batch 1, so the choice is never slower than batch 1 as measured.

The result is cached in one small JSON keyed by the artifact's sha256, the CPU model, the
interpreter threads, XNNPACK on or off, the interpreter package and version and N. It lives in the user's cache
folder (``$SEA_TF_DEVICE_CACHE``, else ``$XDG_CACHE_HOME/sea-tf/device-batch.json``, else
``~/.cache/sea-tf/device-batch.json``), not beside the artifact: the figure describes this
machine, not the file; the same ``.tflite`` is copied to boards of several kinds, and its folder
may be read-only (a mounted export, a shared checkout). A cache that cannot be read or written is
ignored (the choice is measured again), never an error.
"""
import json
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "sea-tf/device-batch/1"
#: Interleaved timing rounds of each candidate (after one untimed round).
ROUNDS = 3

#: ``timer(batch)`` -> seconds per window of one timed pass at that batch size.
Timer = Callable[[int], float]


@dataclass(frozen=True)
class BatchChoice:
    """Which batch size to use, and why.

    Attributes
    ----------
    batch : int
        The batch size to use (1 or the candidate N).
    seconds_per_window : dict
        ``{batch: median seconds per window}`` of each candidate measured (empty when nothing
        was measured: ``source == "fixed"``).
    source : {"measured", "cache", "fixed"}
        Timed now, read from the cache, or not a choice (N is 1, the model's batch dimension is
        fixed, or there are fewer windows than N).
    key : str
        The cache key (empty when ``fixed``).
    """

    batch: int
    seconds_per_window: dict[int, float] = field(default_factory=dict)
    source: str = "fixed"
    key: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: ``batch``, ``source`` and ``ms_per_window`` of each candidate (as string keys)."""
        return {"batch": self.batch, "source": self.source,
                "ms_per_window": {str(b): 1e3 * s for b, s in sorted(self.seconds_per_window.items())}}


def default_cache_path() -> Path:
    """Where choices are cached (see the module docstring)."""
    explicit = os.environ.get("SEA_TF_DEVICE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sea-tf" / "device-batch.json"


def cache_key(*, sha256: str, cpu: str, threads: int, xnnpack: bool, interpreter: str, batch: int) -> str:
    """The key of one choice: artifact bytes, CPU model, threads, XNNPACK on/off, interpreter and candidate N."""
    return f"{sha256}|{cpu}|threads={int(threads)}|xnnpack={'on' if xnnpack else 'off'}|{interpreter}|batch={int(batch)}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("choices"), dict):
        return {}
    return data["choices"]


def _write(path: Path, choices: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump({"schema": SCHEMA, "choices": choices}, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass            # a read-only home or a full disk: the choice is measured again next time


def choose_batch(key: str, batch: int, timer: Timer, *, cache: Path | str | None = None,
                 rounds: int = ROUNDS) -> BatchChoice:
    """The faster of batch 1 and ``batch``, from the cache or measured with ``timer``.

    Parameters
    ----------
    key : str
        :func:`cache_key` of the artifact on this machine.
    batch : int
        The candidate N (> 1; 1 returns a ``fixed`` choice without timing).
    timer : callable
        ``timer(b)`` runs one pass at batch ``b`` and returns its seconds per window. Called once
        per candidate untimed (warm-up), then ``rounds`` times each, interleaved, so both
        candidates see the same machine load.
    cache : str or Path, optional
        The JSON file (default :func:`default_cache_path`).
    rounds : int

    Returns
    -------
    BatchChoice
        ``batch`` when its median is strictly faster than batch 1's, else 1.
    """
    if batch <= 1:
        return BatchChoice(1)
    path = Path(cache) if cache is not None else default_cache_path()
    choices = _read(path)
    hit = choices.get(key)
    if isinstance(hit, dict) and hit.get("batch") in (1, batch) and isinstance(hit.get("seconds_per_window"), dict):
        try:
            seconds = {int(b): float(s) for b, s in hit["seconds_per_window"].items()}
        except (TypeError, ValueError):
            seconds = {}
        if set(seconds) == {1, batch}:
            return BatchChoice(int(hit["batch"]), seconds, "cache", key)
    for b in (1, batch):
        timer(b)                                    # warm-up: first invoke() allocates and packs weights
    samples: dict[int, list[float]] = {1: [], batch: []}
    for _ in range(max(1, rounds)):
        for b in (1, batch):
            samples[b].append(float(timer(b)))
    seconds = {b: statistics.median(values) for b, values in samples.items()}
    best = batch if seconds[batch] < seconds[1] else 1
    choices = _read(path)                           # again: another process may have added its own
    choices[key] = {"batch": best, "seconds_per_window": {str(b): s for b, s in seconds.items()}}
    _write(path, choices)
    return BatchChoice(best, seconds, "measured", key)
