"""The times README quotes: ``sea-tf demo`` (full, and the small ``demo/ci`` run) and optionally ``make test``.

Each target runs as a user would run it, in a fresh output folder (nothing reused), with the venv
already installed (installing it is network-bound and not timed here). The machine's load matters
on a shared machine, so the 1-minute load average is sampled every 10 s during each run and
recorded with the CPU model, the cores and the date.

    .venv/bin/python benchmarks/bench_readme.py                      # demo-ci, then the full demo
    .venv/bin/python benchmarks/bench_readme.py --targets demo-ci    # the small run only (~4 min)
    .venv/bin/python benchmarks/bench_readme.py --targets test       # `make test` (installs apt packages)

Writes ``benchmarks/results/bench_readme.json``: one entry per target (the last measurement of each
is kept when a later run measures only some targets), with the wall time of each run, their median,
each demo stage's ``wall_time_s`` from the demo's ``report.json``, and the environment.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sea_tf import atomic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # device/ (board side, numpy only) is not part of the installed package
from device.system import cpu_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = ROOT / ".venv" / "bin"
TARGETS = {
    # name: (command given the output folder, what README calls it)
    "demo-ci": (lambda out: [str(VENV_BIN / "sea-tf"), "demo", "--config", "demo/ci", "--out", str(out)],
                'make demo DEMO_ARGS="--config demo/ci"'),
    "demo": (lambda out: [str(VENV_BIN / "sea-tf"), "demo", "--out", str(out)], "make demo"),
    "test": (lambda out: ["make", "test"], "make test"),
}


class LoadSampler(threading.Thread):
    """Samples ``os.getloadavg()[0]`` every ``period_s`` seconds until stopped."""

    def __init__(self, period_s: float = 10.0):
        super().__init__(daemon=True)
        self.period_s = period_s
        self.samples = [os.getloadavg()[0]]
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.wait(self.period_s):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        """Stop sampling; the 1-minute load average at start, end, mean and max."""
        self._stop_event.set()
        self.join()
        self.samples.append(os.getloadavg()[0])
        return {"start": round(self.samples[0], 2), "end": round(self.samples[-1], 2),
                "mean": round(statistics.fmean(self.samples), 2), "max": round(max(self.samples), 2)}


def run_once(name: str, work: Path) -> dict:
    """Run target ``name`` once in a fresh folder under ``work``; its wall time (s), load and stage times."""
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    command = TARGETS[name][0](out / "demo_out")
    sampler = LoadSampler()
    sampler.start()
    start = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        proc = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    load = sampler.stop()
    run = {"wall_s": round(wall, 1), "returncode": proc.returncode, "load_average_1min": load,
           "log": str(out / "log.txt")}
    report = out / "demo_out" / "report" / "report.json"
    if report.is_file():
        stages = json.loads(report.read_text())
        run["stage_wall_s"] = {stage: figures.get("wall_time_s") for stage, figures in stages.items()
                               if stage != "machine"}
        # What the stages do not account for: interpreter and TensorFlow start-up, the resolved config.
        run["outside_stages_s"] = round(wall - sum(v or 0 for v in run["stage_wall_s"].values()), 1)
    if proc.returncode != 0:
        print(f"{name}: exit code {proc.returncode}; see {out / 'log.txt'}", file=sys.stderr)
    return run


def environment() -> dict:
    """CPU model, cores, OS, Python, the commit measured and the date (UTC)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True)
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "architecture": platform.machine(),
            "python": platform.python_version(), "commit": commit.stdout.strip() or None,
            "uncommitted_changes": bool(dirty.stdout.strip()),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=["demo-ci", "demo"],
                        help="what to time (default: demo-ci demo)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per target (the median is quoted)")
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder for the runs' outputs (default: a new temporary folder, kept)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_readme.json")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-readme-"))
    work.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.targets:
        runs = [run_once(name, work) for _ in range(args.repeats)]
        ok = [r["wall_s"] for r in runs if r["returncode"] == 0]
        result[name] = {"command": TARGETS[name][1], "runs": runs,
                        "wall_s_median": round(statistics.median(ok), 1) if ok else None,
                        "environment": environment()}
        entry = result[name]
        stages = runs[-1].get("stage_wall_s", {})
        print(f"{entry['command']}: {entry['wall_s_median']} s median of {len(ok)}/{len(runs)} successful run(s) "
              f"on {entry['environment']['cpu_model']} ({entry['environment']['cores']} cores), load "
              f"{runs[-1]['load_average_1min']['mean']} mean, {entry['environment']['date_utc']} UTC"
              + (f"; stages: {', '.join(f'{k} {v} s' for k, v in stages.items())}" if stages else ""))
        atomic.write_json(args.out, result)  # after each target: a later failure keeps what was measured
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
