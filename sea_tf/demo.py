"""``make demo`` / ``sea-tf demo``: every stage, in pipeline order, on the embedded default dataset.

Each stage contributes one step module ``sea_tf/demo_steps/<stage>.py`` with
``run(ctx: DemoContext) -> StepReport``. The demo ends with ``report.json`` (``machine``: the CPU
model, cores, vector flags and load average the times were measured on; then one top-level key per
stage, each holding that stage's figures and ``wall_time_s``), ``report.md`` (the machine and a
table of the time per stage above each stage's section) and PNG figures. Every step is sized by
work, never by a clock (the distillation runs a fixed number of steps), so two machines compute the
same results up to float rounding and differ only in the times and measured latencies.

Published weights come from the weights cache only (``sea-tf models fetch|import``), as for any
user: a step that would use a published model says in its report when it is not cached, how to
put it there, and which seeded, untrained stand-in it used instead.
"""
import dataclasses
import importlib
import importlib.util
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from device.system import cpu_flags, cpu_model, usable_cores
from sea_tf import atomic
from sea_tf.config import Config, parse_set, resolve
from sea_tf.errors import ConfigError
from sea_tf.presets import load_defaults

STAGES = ["data", "models", "teacher", "sampling", "reduce", "distill", "classify", "export", "device", "tune"]

# The settings schema each step resolves (``configs/<schema>``), keyed as in ``sea-tf demo``'s
# ``steps:`` section; ``--set steps.<key>=[a.b=1, c=2]`` overrides that step's preset, like the
# stage command's own ``--set`` (``configs/demo/ci.yaml`` is the small run ``.ci/run`` makes).
STEP_SCHEMAS = {"data": "data/make-demo", "teacher": "teacher", "sampling": "sampling", "reduce": "reduce/fit",
                "distill": "distill", "classify": "classify/us8k", "classify_ust": "classify/ust",
                "export": "export", "device": "device/run", "tune": "tune"}


@dataclasses.dataclass
class StepReport:
    """What one demo step hands back.

    Attributes
    ----------
    figures : dict
        JSON-able numbers and paths for ``report.json`` (``wall_time_s`` is added for you).
    markdown : str
        The step's section of ``report.md`` (without its heading).
    images : list of str
        PNG paths (relative to the report directory) shown in ``report.md``.
    """
    figures: dict[str, Any]
    markdown: str = ""
    images: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DemoContext:
    """State shared by the demo steps.

    Attributes
    ----------
    out_dir : Path
        Root of everything the demo writes.
    report_dir : Path
        Where ``report.json``, ``report.md`` and the PNGs go (``out_dir / "report"``).
    data_dir : Path
        The generated UrbanSound8K-layout dataset (``out_dir / "data"``); ``upstream/`` sits inside.
    seed : int
    step_settings : dict
        ``key=value`` overrides per step (keys of :data:`STEP_SCHEMAS`), applied over the step's preset.
    artifacts : dict
        Paths later steps need, keyed by name (e.g. ``"student_model"``, ``"teacher_shards"``).
    results : dict
        Each finished step's figures, keyed by stage.
    """
    out_dir: Path
    report_dir: Path
    data_dir: Path
    seed: int = 20180216
    step_settings: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def settings(self, key: str, preset: str | None = None) -> Config:
        """The resolved settings of step ``key``: its schema's defaults, then ``preset``, then the demo's overrides.

        Parameters
        ----------
        key : str
            A key of :data:`STEP_SCHEMAS` (``"distill"``, ``"classify_ust"``, ...).
        preset : str, optional
            The packaged preset the step runs (``"distill/demo"``).
        """
        return resolve(load_defaults(STEP_SCHEMAS[key]), preset, set_items=self.step_settings.get(key))


def check_step_settings(step_settings: dict[str, list[str]] | None) -> None:
    """Raise ConfigError for an unknown step key or a ``key=value`` its schema refuses, before any step runs."""
    for key, items in (step_settings or {}).items():
        if key not in STEP_SCHEMAS:
            raise ConfigError(f"demo setting 'steps.{key}': no such step; known: {', '.join(STEP_SCHEMAS)}")
        if items and not all(isinstance(item, str) for item in items):
            raise ConfigError(f"demo setting 'steps.{key}': expected a list of key=value strings, got {items!r}")
        try:
            parse_set(items, load_defaults(STEP_SCHEMAS[key]))
        except ConfigError as exc:
            raise ConfigError(f"demo setting 'steps.{key}' (settings of {STEP_SCHEMAS[key]}): {exc}") from None


def run_demo(out_dir: Path | str, *, seed: int = 20180216, stages: Sequence[str] | None = None,
             log: Callable[[str], object] = print, step_settings: dict[str, list[str]] | None = None) -> Path:
    """Run every available demo step and write the report; returns the report directory.

    ``step_settings`` maps a :data:`STEP_SCHEMAS` key to ``key=value`` overrides of that step's preset.
    """
    out_dir = Path(out_dir)
    step_settings = {key: items for key, items in (step_settings or {}).items() if items}
    check_step_settings(step_settings)
    ctx = DemoContext(out_dir=out_dir, report_dir=out_dir / "report", data_dir=out_dir / "data", seed=seed,
                      step_settings=step_settings)
    ctx.report_dir.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    log(f"== demo on {machine['cpu_model']} ({machine['cores']} cores; {' '.join(machine['flags'])}), "
        f"load average {machine['load_average_1min']['start']}")
    sections = []
    for stage in stages or STAGES:
        module_name = f"sea_tf.demo_steps.{stage}"
        if importlib.util.find_spec(module_name) is None:
            continue
        log(f"== demo: {stage}")
        start = time.perf_counter()
        step = importlib.import_module(module_name).run(ctx)
        wall = time.perf_counter() - start
        ctx.results[stage] = {**step.figures, "wall_time_s": round(wall, 2)}
        sections.append(_section(stage, step, wall))
        _write_report(ctx, sections, machine)
        log(f"   {stage} done in {wall:.1f} s")
    _write_report(ctx, sections, machine)
    return ctx.report_dir


def describe_machine() -> dict[str, Any]:
    """What the demo's times were measured on: CPU model, architecture, cores, vector flags, load.

    ``cores`` counts the logical CPUs this process may use (``logical_cpus`` all of the machine's);
    ``flags`` the vector-instruction features that pick the kernels TensorFlow and LiteRT run
    (:data:`device.system.KERNEL_FLAGS`); ``load_average_1min`` holds ``start`` and, once a step has
    finished, ``end`` (above the core count, other work was competing for the CPU).
    """
    return {"cpu_model": cpu_model(), "architecture": platform.machine(), "cores": usable_cores(),
            "logical_cpus": os.cpu_count(), "flags": cpu_flags(),
            "load_average_1min": {"start": round(os.getloadavg()[0], 2)}}


def _section(stage: str, step: StepReport, wall: float) -> str:
    """Step ``stage``'s section of ``report.md``: heading, wall time (s), its markdown and images."""
    lines = [f"## {stage}", "", f"_wall time: {wall:.1f} s_", "", step.markdown.strip(), ""]
    lines += [f"![{stage}]({image})" for image in step.images]
    return "\n".join(lines) + "\n"


def _write_report(ctx: DemoContext, sections: list[str], machine: dict[str, Any]) -> None:
    """``report.json`` (the machine, then each finished step's figures) and ``report.md``, rewritten after each step."""
    if ctx.results:
        machine["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    atomic.write_json(ctx.report_dir / "report.json", {"machine": machine, **ctx.results})
    header = ["# sea-tf demo report", "",
              f"Output root: `{ctx.out_dir}`. Figures per stage are in `report.json`.", "",
              _machine_line(machine), "", *_time_table(ctx.results), ""]
    atomic.write_text(ctx.report_dir / "report.md", "\n".join(header) + "\n".join(sections))


def _machine_line(machine: dict[str, Any]) -> str:
    """One sentence of ``report.md`` naming the CPU, its cores and flags, and the load average."""
    load = machine["load_average_1min"]
    during = f"{load['start']} at the start" + (f", {load['end']} at the end" if "end" in load else "")
    return (f"Measured on **{machine['cpu_model']}** ({machine['architecture']}, {machine['cores']} cores"
            + (f" of {machine['logical_cpus']}" if machine["logical_cpus"] != machine["cores"] else "")
            + f"; vector flags: {' '.join(machine['flags']) or 'none found'}); 1-min load average "
            f"{during}. Every step is sized by work, not time: another machine computes the same results "
            "up to float rounding; only the times and latencies differ.")


def _time_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The markdown rows of the time per finished stage (s) and their sum."""
    if not results:
        return []
    rows = [f"| {stage} | {figures['wall_time_s']:.1f} |" for stage, figures in results.items()]
    total = sum(figures["wall_time_s"] for figures in results.values())
    return ["| stage | wall time (s) |", "|---|---:|", *rows, f"| **all stages** | **{total:.1f}** |"]


def load_report(report_dir: Path | str) -> dict[str, Any]:
    """Read ``report.json`` back (used by tests and ``sea-tf report``)."""
    return json.loads((Path(report_dir) / "report.json").read_text())
