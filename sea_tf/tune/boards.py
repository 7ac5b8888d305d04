"""Benchmark a tune's exported files on its boards: this machine, and every ``--host`` over SSH.

Both run the board's own program, ``python -m device.bench`` (numpy + LiteRT, no TensorFlow): here
in a child process, on a host through :func:`sea_tf.remote.run_boards` (copy, run, fetch). Each call
benches a list of artifacts with one (threads, XNNPACK) setting and returns one result JSON per
artifact, or the reason that board could not run it (a board that stops answering fails its own
cells only).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sea_tf.config import Config
from sea_tf.errors import RemoteError

LOCAL = "local"
#: device.bench exit codes that still wrote a result: complete, partial (device/bench.py)
_WROTE_RESULT = (0, 3)


def device_root() -> Path:
    """The directory holding the ``device`` package (the checkout, or site-packages of an install), so that
    ``python -m device.bench`` finds ours and not a ``device/`` folder in the user's working directory."""
    import device
    return Path(device.__file__).resolve().parents[1]


def bench_args(bench: Config, *, threads: int, xnnpack: bool) -> list[str]:
    """``device.bench`` options for the device stage's ``bench`` settings, with the grid's threads and XNNPACK."""
    args = ["--runs", str(bench["runs"]), "--warmup", str(bench["warmup"]), "--threads", str(threads),
            "--hop-size", str(bench["hop_s"])]
    return args + ([] if xnnpack else ["--no-xnnpack"])


def bench_local(artifacts: Sequence[Path], out_dir: Path, bench: Config, *, threads: int, xnnpack: bool,
                log: Callable[[str], object], extra_args: Mapping[Path, Sequence[str]] | None = None) -> dict[Path, Path | str]:
    """Run ``device.bench`` here on each artifact (one child process each, one after the other).

    ``extra_args`` adds ``device.bench`` options per artifact (its ``--classifier`` and ``--audio``).

    Returns
    -------
    dict
        Artifact → its result JSON, or the one-line reason it failed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[Path, Path | str] = {}
    for path in artifacts:
        json_path = out_dir / f"{path.stem}.json"
        cmd = [sys.executable, "-m", "device.bench", "--model", str(path), *bench_args(bench, threads=threads, xnnpack=xnnpack),
               "--label", LOCAL, "--quiet", "--out-file", str(json_path), *(extra_args or {}).get(path, ())]
        proc = subprocess.run(cmd, cwd=device_root(), capture_output=True, text=True, timeout=3600)
        if proc.returncode in _WROTE_RESULT and json_path.exists():
            results[path] = json_path
        else:
            lines = proc.stderr.strip().splitlines()
            results[path] = lines[-1] if lines else f"device.bench exited with {proc.returncode} and no message"
            log(f"bench {path.name} on {LOCAL}: {results[path]}")
    return results


def bench_remote(host: str, artifacts: Sequence[Path], out_dir: Path, device_cfg: Config, *, threads: int,
                 xnnpack: bool, log: Callable[[str], object]) -> dict[Path, Path | str]:
    """Copy the artifacts to ``host``, run ``device.bench`` on each and fetch the results (one SSH session).

    Returns
    -------
    dict
        Artifact → its fetched result JSON, or the reason: the board's error for all of them when it
        could not be reached or stopped answering.
    """
    from sea_tf import remote
    from sea_tf.config import set_dotted

    cfg = copy.deepcopy(dict(device_cfg))
    cfg.update(hosts=[host], artifacts=[str(p) for p in artifacts], audio=[], out=str(out_dir))
    set_dotted(cfg, "bench.threads", threads)
    set_dotted(cfg, "bench.xnnpack", xnnpack)
    try:
        outcome = remote.run_boards(cfg, lines=_quiet_lines(log))
    except RemoteError as exc:
        return {path: str(exc).splitlines()[0] for path in artifacts}
    result = next(iter(outcome.values()))
    if isinstance(result, RemoteError):
        return {path: str(result).splitlines()[0] for path in artifacts}
    fetched = {Path(p).stem: Path(p) for p in result.results}
    return {path: fetched.get(path.stem, f"{host} returned no result for {path.name}") for path in artifacts}


def _quiet_lines(log: Callable[[str], object]) -> Callable[[list[str]], Any]:
    """A :class:`sea_tf.remote.BoardLines` that keeps the board's tables out of the tune's log."""

    class Lines:
        def __init__(self, labels: list[str]) -> None:
            self.labels = labels

        def update(self, label: str, stage: str, done: int | None = None, total: int | None = None) -> None:
            pass

        def print(self, text: str, *, file: Any = None) -> None:
            if file is not None:   # the board's stderr: worth a line
                log(text)

    return Lines


def read_bench(path: Path | str) -> dict[str, Any]:
    """The figures a tune keeps of one ``device.bench`` result."""
    result = json.loads(Path(path).read_text())
    total = result["latency_ms"]["total"]
    board = result.get("board") or {}
    return {"latency_ms": {k: total.get(k) for k in ("p50", "p90", "p99", "mean")},
            "peak_rss_mb": result["memory_mb"]["peak"], "size_bytes": result["model"]["size_bytes"],
            "device": result.get("device"), "throttled": board.get("throttled"),
            "board": board, "environment": result.get("environment"), "settings": result.get("settings"),
            "status": result.get("status")}
