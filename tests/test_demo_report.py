"""The demo is the same everywhere: presets sized by work (no clock), a report that names the machine.

Two machines running ``make demo`` (or its ``demo/ci`` run) train the same student up to float
rounding because its distillation takes a fixed number of steps; only the times differ, and the
report says on which CPU (model, cores, vector flags) and under which load they were measured.
"""
import importlib.machinery
import json
import platform
import sys
import types
from pathlib import Path

import pytest

from sea_tf import config
from sea_tf.demo import DemoContext, StepReport, run_demo
from sea_tf.presets import load_defaults


@pytest.mark.parametrize("demo_preset", [None, "demo/ci"])
def test_the_demo_distills_a_fixed_number_of_steps(tmp_path, demo_preset):
    demo = config.resolve(load_defaults("demo"), demo_preset, stage="demo")
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path / "data",
                      step_settings={key: items for key, items in demo["steps"].items() if items})
    train = ctx.settings("distill", "distill/demo")["train"]   # what the demo's distill step runs
    assert train["time_budget_s"] is None                      # no clock: a slow machine trains as long
    assert train["early_stopping"]["patience"] is None         # and never stops early on its losses
    # epochs × one pass over the training windows (the demo's data are generated from its seed).
    assert isinstance(train["epochs"], int) and train["epochs"] >= 1 and train["steps_per_epoch"] is None
    assert train["epochs"] == (30 if demo_preset else 50)


def _fake_step(monkeypatch, name, figures):
    """A demo step module ``sea_tf.demo_steps.<name>`` whose ``run`` returns ``figures``."""
    full = f"sea_tf.demo_steps.{name}"
    module = types.ModuleType(full)
    module.__spec__ = importlib.machinery.ModuleSpec(full, None)
    module.run = lambda ctx: StepReport(figures=dict(figures), markdown=f"{name} ran")
    monkeypatch.setitem(sys.modules, full, module)


def test_the_report_names_the_machine_and_the_time_of_each_stage(tmp_path, monkeypatch):
    from device.system import KERNEL_FLAGS, cpu_flags, cpu_model, usable_cores

    _fake_step(monkeypatch, "first", {"rows": 3})
    _fake_step(monkeypatch, "second", {"d": 8})
    report_dir = run_demo(tmp_path / "out", stages=["first", "second"], log=lambda _: None)
    report = json.loads((report_dir / "report.json").read_text())
    assert list(report) == ["machine", "first", "second"]
    machine = report["machine"]
    assert machine["cpu_model"] == cpu_model() and machine["cpu_model"]
    assert machine["cores"] == usable_cores() >= 1 and machine["logical_cpus"] >= machine["cores"]
    assert machine["flags"] == cpu_flags() and set(machine["flags"]) <= set(KERNEL_FLAGS)
    if Path("/proc/cpuinfo").is_file() and platform.machine() in ("x86_64", "aarch64"):
        # TensorFlow's x86 wheels need AVX; every aarch64 core has Advanced SIMD.
        assert {"avx", "asimd"} & set(machine["flags"])
    load = machine["load_average_1min"]
    assert load["start"] >= 0 and load["end"] >= 0
    md = (report_dir / "report.md").read_text()
    assert f"Measured on **{machine['cpu_model']}** ({machine['architecture']}, {machine['cores']} cores" in md
    assert " ".join(machine["flags"]) in md
    rows = {stage: report[stage]["wall_time_s"] for stage in ("first", "second")}
    for stage, wall in rows.items():
        assert f"| {stage} | {wall:.1f} |" in md
    assert f"| **all stages** | **{sum(rows.values()):.1f}** |" in md
    assert md.index("| stage | wall time (s) |") < md.index("## first") < md.index("## second")
