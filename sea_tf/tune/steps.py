"""One folder and one card per piece of a tune's work: what makes ``sea-tf tune`` resumable.

Each step (the teacher's shards, a sample, a reducer, a distillation, an export, a benchmark, an
accuracy) runs in ``OUT/<kind>/<key>/`` and leaves ``step.json`` there:

    {"kind", "key", "status": "running" | "done" | "failed", "settings_sha256", "settings",
     "started", "finished", "wall_time_s", "error", "outputs": {...}, "host", "pid"}

A re-run skips a step whose card says ``done`` for the same settings, and runs again one that
``failed``, was left ``running`` by a killed process, or whose settings changed (the stage itself resumes
what it can: a distillation from its last checkpoint, teacher-embed from its manifests).
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sea_tf import atomic
from sea_tf.errors import SeaTFError

CARD = "step.json"
STATUSES = ("done", "failed", "running")


@dataclasses.dataclass
class StepResult:
    """What a step left: its card's status, outputs and error, and whether this process ran it."""
    kind: str
    key: str
    folder: Path
    status: str
    outputs: dict[str, Any]
    error: str | None = None
    wall_time_s: float | None = None
    ran: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "done"


def settings_sha256(settings: Mapping[str, Any]) -> str:
    """The hash a step's card records of the settings it ran with (sorted JSON)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def step_folder(out: Path | str, kind: str, key: str) -> Path:
    """``OUT/<kind>/<key>`` (a key's ``/`` nests folders: ``export/<student>/<placement>``)."""
    return Path(out) / kind / key


def read_step(folder: Path | str) -> dict[str, Any] | None:
    """The step's card, or None when it never started (or its card cannot be read)."""
    try:
        card = json.loads((Path(folder) / CARD).read_text())
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) and card.get("status") in STATUSES else None


def finished(out: Path | str, kind: str, key: str, settings: Mapping[str, Any]) -> StepResult | None:
    """The result of a step done with these settings, or None when it must (still) run."""
    folder = step_folder(out, kind, key)
    card = read_step(folder)
    if card and card["status"] == "done" and card.get("settings_sha256") == settings_sha256(settings):
        return StepResult(kind, key, folder, "done", card.get("outputs") or {}, wall_time_s=card.get("wall_time_s"))
    return None


def _write(folder: Path, card: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_json(folder / CARD, card)


def one_line(exc: BaseException) -> str:
    """An exception as the one line a card and a table show: sea-tf's own message, else ``Type: message``."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(exc, SeaTFError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")


def run_step(out: Path | str, kind: str, key: str, settings: Mapping[str, Any],
             work: Callable[[Path], Mapping[str, Any]], *, log: Callable[[str], object]) -> StepResult:
    """Run ``work(folder)`` unless the step is done with these settings; record what happened.

    Parameters
    ----------
    out : Path
        The tune's output folder.
    kind, key : str
        The step's kind (``distill``) and its key within the kind (the student cell's key).
    settings : dict
        Everything the step's result depends on (JSON-able): a change runs it again.
    work : callable
        Does the step in ``folder`` and returns its outputs (JSON-able; paths as strings). An output
        ``wall_time_s`` is the step's own time when its work ran elsewhere (a SLURM task, a board's
        session for several files); else the step's time is the call's.
    log : callable
        Receives one line per step: skipped, done (with its time) or failed (with the reason).

    Returns
    -------
    StepResult
        A failure is recorded and returned, never raised, so the rest of the grid goes on.
        ``KeyboardInterrupt`` and ``SystemExit`` propagate (the card stays ``running``: the next run retries).
    """
    done = finished(out, kind, key, settings)
    if done is not None:
        return done
    folder = step_folder(out, kind, key)
    card = read_step(folder)
    sha = settings_sha256(settings)
    base = {"kind": kind, "key": key, "settings_sha256": sha, "settings": dict(settings), "started": _now(),
            "host": socket.gethostname(), "pid": os.getpid(), "attempt": int((card or {}).get("attempt", 0)) + 1}
    _write(folder, {**base, "status": "running"})
    start = time.perf_counter()
    try:
        outputs = dict(work(folder))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - one cell's failure is recorded and the grid goes on
        wall = round(time.perf_counter() - start, 2)
        error = one_line(exc)
        _write(folder, {**base, "status": "failed", "finished": _now(), "wall_time_s": wall, "error": error,
                        "error_type": type(exc).__name__})
        log(f"{kind} {key}: FAILED after {wall:.1f} s: {error}")
        return StepResult(kind, key, folder, "failed", {}, error=error, wall_time_s=wall, ran=True)
    reported = outputs.get("wall_time_s")
    wall = round(float(reported) if isinstance(reported, (int, float)) else time.perf_counter() - start, 2)
    _write(folder, {**base, "status": "done", "finished": _now(), "wall_time_s": wall, "outputs": outputs})
    log(f"{kind} {key}: done in {wall:.1f} s")
    return StepResult(kind, key, folder, "done", outputs, wall_time_s=wall, ran=True)


def blocked(out: Path | str, kind: str, key: str, settings: Mapping[str, Any], reason: str) -> StepResult:
    """A step that cannot run because a step it needs failed: recorded as failed, naming that step."""
    folder = step_folder(out, kind, key)
    attempt = int((read_step(folder) or {}).get("attempt", 0)) + 1
    _write(folder, {"kind": kind, "key": key, "settings_sha256": settings_sha256(settings), "settings": dict(settings),
                    "attempt": attempt, "status": "failed", "started": _now(), "finished": _now(), "wall_time_s": 0.0,
                    "error": reason, "error_type": "Blocked"})
    return StepResult(kind, key, folder, "failed", {}, error=reason, wall_time_s=0.0)


def walk_steps(out: Path | str) -> Iterator[dict[str, Any]]:
    """Every step card under ``out`` (any depth), sorted by folder."""
    for path in sorted(Path(out).rglob(CARD)):
        card = read_step(path.parent)
        if card is not None:
            yield {**card, "folder": str(path.parent)}
