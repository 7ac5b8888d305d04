"""``sea-tf tune``: from your audio, your boards and your budget to the best student (docs/TUNE.md).

Read in this order: :mod:`~sea_tf.tune.grid` (the config → the pieces of work; every refusal before
work) → :mod:`~sea_tf.tune.steps` (a folder and a card per piece: resumable) →
:mod:`~sea_tf.tune.boards` (``device.bench`` here and over SSH) → :mod:`~sea_tf.tune.slurm` (the
distillations as one SLURM array) → :mod:`~sea_tf.tune.run` (the entry point :func:`tune`) →
:mod:`~sea_tf.tune.results` (``tune.json``, Pareto fronts, ``choice.json``, ``report.html``).

    from sea_tf import config, tune
    result = tune.tune(config.load("tune", "tune/demo", data="demo_out/data", audio="demo_out/data/upstream",
                                   out="tune_out", budget={"latency_ms": 5}))
    result["choice"]["local"]["message"]
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sea_tf.tune.grid import BUDGET_KEYS, Artifact, BenchSetting, Grid, StudentCell, build_grid, parse_budgets
from sea_tf.tune.results import choose, pareto_front
from sea_tf.tune.run import check, tune
from sea_tf.tune.steps import StepResult, walk_steps

#: ``sea-tf tune --status`` exit codes: every step done and the results written; anything else
STATUS_DONE, STATUS_UNFINISHED = 0, 1


def _alive(pid: object, host: object) -> bool:
    """Whether the process that left a step ``running`` may still run it (another machine's: assume so)."""
    import socket

    from sea_tf.atomic import pid_alive
    if host != socket.gethostname() or not isinstance(pid, int):
        return True      # another machine's process (a SLURM node): it may well be running
    return pid_alive(pid)


def status(out: Path | str, *, print_fn: Callable[[str], object] = print) -> int:
    """``sea-tf tune --status OUT``: a table of the steps by kind, every failed one with its reason.

    Returns
    -------
    int
        :data:`STATUS_DONE` when every step is done and ``OUT/tune.json`` is written, else
        :data:`STATUS_UNFINISHED`.
    """
    emit = print_fn
    out = Path(out)
    steps = list(walk_steps(out))
    if not steps:
        emit(f"{out}: no tune here (no step.json); run `sea-tf tune --out {out} ...`")
        return STATUS_UNFINISHED
    kinds: dict[str, dict[str, int]] = {}
    problems = []
    for card in steps:
        state = card["status"]
        if state == "running" and not _alive(card.get("pid"), card.get("host")):
            state = "stopped"   # its process is gone: killed; the next run retries it
        kinds.setdefault(card["kind"], {"done": 0, "failed": 0, "running": 0, "stopped": 0})[state] += 1
        if state != "done":
            task = card.get("slurm") or {}     # a distillation in the tune's SLURM array (sea_tf.tune.slurm)
            where = f" as SLURM task {task['job']}_{task['task']}, log {task['log']}" if task else ""
            problems.append(f"  {card['kind']} {card['key']}: {state}{where}" + (f": {card.get('error')}" if card.get("error") else ""))
    emit(f"{out}: {len(steps)} step(s)")
    emit(f"  {'kind':<10} {'done':>5} {'failed':>7} {'running':>8} {'stopped':>8}")
    for kind, counts in kinds.items():
        emit(f"  {kind:<10} {counts['done']:>5} {counts['failed']:>7} {counts['running']:>8} {counts['stopped']:>8}")
    for line in problems:
        emit(line)
    results = out / "tune.json"
    emit(f"results: {results}" if results.exists() else "results: not written yet (the tune has not reached its end)")
    return STATUS_DONE if not problems and results.exists() else STATUS_UNFINISHED


__all__ = ["tune", "check", "status", "STATUS_DONE", "STATUS_UNFINISHED", "BUDGET_KEYS", "parse_budgets",
           "build_grid", "Grid", "StudentCell", "Artifact", "BenchSetting", "StepResult", "walk_steps",
           "choose", "pareto_front"]
