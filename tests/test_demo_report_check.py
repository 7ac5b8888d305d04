"""scripts/ci/check_demo_report.py, the check .ci/run makes of the small demo's report."""
import copy
import importlib.util
import json

import pytest

from commands_support import REPO

_spec = importlib.util.spec_from_file_location("check_demo_report", REPO / "scripts" / "ci" / "check_demo_report.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

# The shape of a real report.json (figures trimmed to those the check reads, plus a few others).
GOOD = {
    "machine": {"cpu_model": "AMD EPYC", "architecture": "x86_64", "cores": 2, "logical_cpus": 2,
                "flags": ["avx2", "fma", "avx512f"], "load_average_1min": {"start": 0.4, "end": 1.9}},
    "data": {"n_clips": 80, "linear_probe": {"mean_fold_accuracy": 0.35}, "wall_time_s": 20.1},
    "models": {"windows": 657, "embed_s": 3.3, "wall_time_s": 17.2},
    "teacher": {"rows": 127, "shards": 1, "wall_time_s": 51.4},
    "sampling": {"m": 100, "strategy": "dpp-quality", "wall_time_s": 6.3},
    "reduce": {"explained_variance": 0.94, "d": 64, "wall_time_s": 1.8},
    "distill": {"held_out_mse": 2.5, "held_out_windows": 21, "epochs": 12, "best_epoch": None, "wall_time_s": 40.2},
    "classify": {"accuracy": {"teacher": {"mean": 0.3}, "student": {"mean": 0.2}}, "wall_time_s": 140.0},
    "export": {"artifacts": [{"mode": "int8", "cosine_mean": 0.99}], "wall_time_s": 90.0},
    "device": {"results": [{"model": "student.int8", "latency_ms": 1.2}], "wall_time_s": 30.0},
    "tune": {"cells": 6, "done": 6, "reference_accuracy": 0.4, "results": [{"model": "a", "accuracy": 0.4}],
             "wall_time_s": 300.0},
}


def _write(tmp_path, report, images=()):
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "report.md").write_text("# demo\n" + "".join(f"![x]({name})\n" for name in images))
    return tmp_path


def test_a_complete_report_passes(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"png")
    assert check.main([str(_write(tmp_path, GOOD, ["a.png"]))]) == 0
    assert "all 10 stages" in capsys.readouterr().out


def _broken(change):
    report = copy.deepcopy(GOOD)
    change(report)
    return report


@pytest.mark.parametrize("report, words", [
    (_broken(lambda r: r.pop("device")), "missing: device"),                       # the demo crashed in device
    (_broken(lambda r: r["distill"].update(held_out_mse=float("nan"))), "distill: held_out_mse = nan"),
    (_broken(lambda r: r["classify"]["accuracy"].pop("student")), "accuracy.student.mean = None"),
    (_broken(lambda r: r["export"].update(artifacts=[])), "export: no table"),
    (_broken(lambda r: r["device"]["results"][0].update(latency_ms=float("inf"))), "device: 1 non-finite"),
    (_broken(lambda r: r["teacher"].update(wall_time_s=0)), "teacher: wall_time_s = 0"),
    (_broken(lambda r: r.pop("machine")), "machine: cpu_model = None"),              # a report of before #23
    (_broken(lambda r: r["machine"].update(cores=0)), "machine: cores = 0"),
])
def test_each_shortfall_is_named(tmp_path, capsys, report, words):
    assert check.main([str(_write(tmp_path, report))]) == 1
    assert words in capsys.readouterr().err


def test_a_missing_image_or_report_fails(tmp_path, capsys):
    assert check.main([str(_write(tmp_path, GOOD, ["gone.png"]))]) == 1
    assert "gone.png" in capsys.readouterr().err
    assert check.main([str(tmp_path / "nowhere")]) == 1
    assert "did the demo run?" in capsys.readouterr().err
