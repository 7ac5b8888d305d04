"""``sea-tf tune``: every stage of the grid, each piece of shared work once, then the results.

Order: teacher shards (one teacher-embed, or the shards given) → one sample per strategy → one
reducer and its targets per (strategy, method, d) → one distillation per student cell (here, or as
one SLURM array) → one export per (student cell, placement) → the accuracy of every exported file
through its ``.tflite`` → one benchmark per (artifact, board, threads, XNNPACK) → ``tune.json``,
``choice.json``, ``report.html`` (:mod:`sea_tf.tune.results`). Each piece is a step
(:mod:`sea_tf.tune.steps`): a re-run skips what is done and retries what failed; a piece whose input
failed is recorded as failed, naming it, and the rest of the grid goes on.
"""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from sea_tf import runlock
from sea_tf.config import Config, write_resolved
from sea_tf.errors import ConfigError, RemoteError
from sea_tf.tune import boards as boards_mod
from sea_tf.tune.grid import QAT_MODES, Artifact, BenchSetting, Grid, StudentCell, build_grid, stage_config, student_dims
from sea_tf.tune.results import TASK_METRIC, exported_file, write_results
from sea_tf.tune.steps import StepResult, blocked, finished, run_step



def teacher_dimension(cfg: Config) -> int:
    """The teacher's embedding size, known before any work (from the shards given, else the teacher's card)."""
    if cfg["shards"]:
        from sea_tf.shards import ShardSet
        return ShardSet(cfg["shards"]).embedding_size
    if cfg["teacher"] is None:
        return 512      # openl3 mel256 (env) and the demo's stand-in both make 512-d embeddings
    from sea_tf.models import load_model
    return load_model(cfg["teacher"]).embedding_size


def check(cfg: Config) -> Grid:
    """Every refusal that needs no work: settings, budgets, the grid, the inputs. Returns the grid."""
    if not cfg["data"]:
        raise ConfigError("no downstream dataset given; pass --data ROOT (UrbanSound8K / ESC-50 layout, or SONYC-UST)")
    if not Path(cfg["data"]).is_dir():
        raise ConfigError(f"--data {cfg['data']}: no such folder; pass the dataset's root")
    if not cfg["shards"] and cfg["audio"] and not Path(cfg["audio"]).exists():
        raise ConfigError(f"--audio {cfg['audio']}: no such file or folder; pass the in-domain audio the teacher embeds")
    grid = build_grid(cfg, teacher_dim=teacher_dimension(cfg))
    for stage in ("teacher", "sampling", "reduce", "distill", "export", "classify", "device"):
        stage_config(cfg, stage)     # a bad stage preset or --set is refused now, not after an hour
    if cfg["slurm"]:
        from sea_tf.tune.slurm import require_client
        require_client()
    return grid


def tune(cfg: Config, *, log: Callable[[str], object] = print) -> dict[str, Any]:
    """Run (or resume) the tune of a resolved ``tune`` config.

    Parameters
    ----------
    cfg : dict
        The resolved ``tune`` config (``configs/tune/defaults.yaml``;
        ``sea_tf.config.load("tune", "tune/demo", data=..., out=...)``).
    log : callable
        Receives one line per step.

    Returns
    -------
    dict
        The ``tune.json`` written to ``OUT`` (cells, Pareto fronts, choice per board); ``OUT/choice.json``
        and ``OUT/report.html`` beside it.

    Raises
    ------
    ConfigError
        A setting, budget or grid cell that cannot be built (before any work).
    """
    grid = check(cfg)
    out = Path(cfg["out"])
    runlock.hold(out, command="tune")
    write_resolved(cfg, out, "tune")
    start = time.perf_counter()
    log(f"tune: {len(grid.students)} student(s), {len(grid.artifacts)} exported file(s), {len(grid.boards)} board(s), "
        f"{grid.n_cells} cell(s) → {out}")
    runner = _Runner(cfg, grid, out, log)
    teacher = runner.teacher()
    samples = {s: runner.sample(s, teacher) for s in grid.strategies}
    reducers = {key: runner.reduce(key, samples[key[0]], teacher) for key in grid.reducers}
    students = runner.distill_all(reducers, teacher)
    exports = {(student, placement): runner.export(student, placement, students[student.distill_key], teacher)
               for student, placement in dict.fromkeys((a.student, a.placement) for a in grid.artifacts)}
    accuracy = {a: runner.accuracy(a, exports[(a.student, a.placement)]) for a in grid.artifacts}
    bench = runner.bench_all(exports)
    return write_results(cfg, grid, out, teacher=teacher, samples=samples, reducers=reducers, students=students,
                         exports=exports, accuracy=accuracy, bench=bench, wall_time_s=time.perf_counter() - start, log=log)


def artifact_name(student: StudentCell, placement: str) -> str:
    """The exported file's stem: the student cell and placement, no dots (a stem is ``<name>.<mode>``)."""
    return f"{student.key}.{placement}".replace(".", "_")


class _Runner:
    """The steps of one tune, each through :func:`sea_tf.tune.steps.run_step`."""

    def __init__(self, cfg: Config, grid: Grid, out: Path, log: Callable[[str], object]) -> None:
        self.cfg, self.grid, self.out, self.log = cfg, grid, out, log

    def _step(self, kind: str, key: str, settings: Mapping[str, Any], work: Callable[[Path], Mapping[str, Any]],
              needs: Sequence[StepResult] = ()) -> StepResult:
        failed = [n for n in needs if not n.ok]
        if failed:
            reason = f"needs {failed[0].kind} {failed[0].key}, which failed: {failed[0].error}"
            return blocked(self.out, kind, key, settings, reason)
        return run_step(self.out, kind, key, settings, work, log=self.log)

    # -- teacher shards ---------------------------------------------------------------------------------
    def teacher(self) -> StepResult:
        cfg = self.cfg
        if cfg["shards"]:
            given = [str(Path(s).resolve()) for s in cfg["shards"]]
            return self._step("teacher", "given", {"shards": given},
                              lambda folder: {"shards": given, "teacher": "the shards' own"})
        audio = cfg["audio"] or cfg["data"]
        tcfg = stage_config(cfg, "teacher", input=str(Path(audio).resolve()), progress=cfg["progress"])
        settings = {"teacher": cfg["teacher"], "stage": _without(tcfg, "progress")}

        def work(folder: Path) -> dict[str, Any]:
            from sea_tf.teacher import extract
            spec, description = _teacher_model(cfg["teacher"], tcfg, folder)
            summary = extract({**tcfg, "teacher": spec, "out": str(folder / "shards")})
            return {"shards": [str(folder / "shards")], "teacher": description, "rows": summary.get("n_rows"),
                    "failed_files": len(summary.get("failed") or [])}

        return self._step("teacher", "embed", settings, work)

    # -- sampling and reduction ---------------------------------------------------------------------------
    def sample(self, strategy: str, teacher: StepResult) -> StepResult:
        scfg = stage_config(self.cfg, "sampling", strategy=strategy, progress=False)
        settings = {"stage": scfg, "shards": teacher.outputs.get("shards")}

        def work(folder: Path) -> dict[str, Any]:
            from sea_tf.sampling import sample
            _, card = sample({**scfg, "shards": teacher.outputs["shards"], "out": str(folder / "sample")})
            return {"sample": str(folder / "sample"), "m": card.get("m")}

        return self._step("sample", strategy, settings, work, needs=[teacher])

    def reduce(self, key: tuple[str, str, int], sample: StepResult, teacher: StepResult) -> StepResult:
        strategy, method, d = key
        fcfg = stage_config(self.cfg, "reduce", method=method, d=d, progress=False)
        settings = {"stage": fcfg, "sample": sample.outputs.get("sample"), "shards": teacher.outputs.get("shards")}

        def work(folder: Path) -> dict[str, Any]:
            from sea_tf import config, reduce
            shards = teacher.outputs["shards"]
            card = reduce.fit({**fcfg, "shards": shards, "sample": sample.outputs["sample"], "out": str(folder / "reducer")})
            reduce.apply(config.load("reduce/apply", reducer=folder / "reducer", shards=shards, out=folder / "targets",
                                     progress=False))
            quality = card.get("quality") or {}
            return {"reducer": str(folder / "reducer"), "targets": str(folder / "targets"),
                    "explained_variance": quality.get("explained_variance")}

        return self._step("reduce", f"{strategy}.{method}{d}", settings, work, needs=[sample, teacher])

    # -- distillation ---------------------------------------------------------------------------------------
    def distill_config(self, student: StudentCell, reducer: StepResult, teacher: StepResult) -> Config:
        """The resolved ``distill`` config of a student cell (a QAT cell's run fine-tunes after training)."""
        native = student_dims()[student.preset]
        qat = any(s.qat for s in self.grid.students if s.distill_key == student.distill_key)
        values: dict[str, Any] = {"student.preset": student.preset, "student.head": student.head,
                                  "student.overrides.embedding_size": None if student.d == native else student.d,
                                  "pruning.enabled": student.sparsity > 0, "qat.enabled": qat,
                                  "progress": self.cfg["progress"]}
        if student.sparsity > 0:
            values["pruning.target_sparsity"] = student.sparsity / 100
        dcfg = stage_config(self.cfg, "distill", **values)
        dcfg.update(shards=teacher.outputs.get("shards") or [], targets=reducer.outputs.get("targets"))
        return dcfg

    def distill_all(self, reducers: Mapping[tuple[str, str, int], StepResult], teacher: StepResult) -> dict[str, StepResult]:
        """One distillation per student cell (its QAT twin shares it): here one after the other, or as one SLURM array."""
        firsts = {s.distill_key: s for s in reversed(self.grid.students)}
        ordered = [firsts[k] for k in dict.fromkeys(s.distill_key for s in self.grid.students)]
        configs = {s.distill_key: self.distill_config(s, reducers[(s.sampling, s.method, s.d)], teacher) for s in ordered}
        if self.cfg["slurm"]:
            from sea_tf.tune.slurm import submit_distillations
            submit_distillations(self.out, {k: c for k, c in configs.items()
                                            if reducers[_reducer_of(firsts[k])].ok}, self.cfg, log=self.log)
        results: dict[str, StepResult] = {}
        for student in ordered:
            key, dcfg = student.distill_key, configs[student.distill_key]

            def work(folder: Path, key: str = key, dcfg: Config = dcfg) -> dict[str, Any]:
                if self.cfg["slurm"]:   # the array ran it: read what it left
                    from sea_tf.tune.slurm import require_report
                    return distill_outputs(json.loads(require_report(self.out, key, dcfg).read_text()))
                from sea_tf.distill import distill
                return distill_outputs(distill({**dcfg, "out": str(folder / "run")}, log=lambda line: None))

            results[key] = self._step("distill", key, {"stage": _without(dcfg, "out", "progress")}, work,
                                      needs=[reducers[_reducer_of(student)], teacher])
        return results

    # -- export ------------------------------------------------------------------------------------------
    def export(self, student: StudentCell, placement: str, distilled: StepResult, teacher: StepResult) -> StepResult:
        modes = [m for m in self.cfg["grid"]["modes"] if not student.qat or m in QAT_MODES]
        name = artifact_name(student, placement)
        ecfg = stage_config(self.cfg, "export", modes=modes, placement=placement, name=name, progress=False)
        settings = {"stage": ecfg, "student": distilled.outputs.get("qat" if student.qat else "student"),
                    "shards": teacher.outputs.get("shards")}

        def work(folder: Path) -> dict[str, Any]:
            from export import export_model
            model = distilled.outputs["qat" if student.qat else "student"]
            if not model:
                raise ConfigError(f"{distilled.folder}: the distillation made no QAT student")
            calibration = ecfg["calibration"]["sources"] or teacher.outputs["shards"]
            summary = export_model({**ecfg, "model": model, "out": str(folder), "overwrite": True,
                                    "calibration": {**ecfg["calibration"], "sources": calibration}})
            files = {}
            for row in summary["artifacts"]:
                if row["model"] != name or row.get("kind") == "classifier":
                    continue
                path = Path(row["path"])
                files[row["mode"]] = {"path": str(path), "sha256": row["sha256"], "size_bytes": path.stat().st_size,
                                      "gzip_bytes": len(gzip.compress(path.read_bytes(), 9, mtime=0)),
                                      "cosine_mean": row.get("cosine_mean"), "cosine_p5": row.get("cosine_p5"),
                                      "cosine_worst": row.get("cosine_worst")}
            missing = [m for m in modes if m not in files]
            if missing:
                raise ConfigError(f"export of {model} made no {', '.join(missing)} file; its report: {folder}")
            card = summary.get("model_card") or {}
            return {"files": files, "macs": (card.get("macs") or {}).get("total"), "report": (summary.get("report") or {}).get("json")}

        return self._step("export", f"{student.key}/{placement}", settings, work, needs=[distilled, teacher])

    # -- downstream accuracy --------------------------------------------------------------------------------
    def accuracy(self, artifact: Artifact, export: StepResult) -> StepResult:
        ccfg = stage_config(self.cfg, "classify", data=str(Path(self.cfg["data"]).resolve()), progress=False)
        file = exported_file(export, artifact.mode)
        path = file.get("path")
        settings = {"stage": _without(ccfg, "out", "models"), "task": self.cfg["task"], "artifact_sha256": file.get("sha256")}

        def work(folder: Path) -> dict[str, Any]:
            from sea_tf import classify
            key = TASK_METRIC[self.cfg["task"]][0]
            table = classify.run({**ccfg, "models": [path], "out": str(folder / "classify")}, task=self.cfg["task"])
            if table.get("failed"):
                raise ConfigError(f"classify {self.cfg['task']} of {path}: {next(iter(table['failed'].values()))}")
            summary = next(iter(table["models"].values()))
            return {"accuracy": float(summary[key]), "metric": key, "results": str(folder / "classify")}

        return self._step("accuracy", artifact.key, settings, work, needs=[export])

    # -- boards -------------------------------------------------------------------------------------------
    def bench_all(self, exports: Mapping[tuple[StudentCell, str], StepResult]) -> dict[tuple[Artifact, BenchSetting, str], StepResult]:
        """One benchmark per (artifact, board, setting); a board's pending artifacts go in one call."""
        dcfg = stage_config(self.cfg, "device")
        results: dict[tuple[Artifact, BenchSetting, str], StepResult] = {}
        for board in self.grid.boards:
            for setting in self.grid.bench:
                pending: dict[Artifact, tuple[str, Path, dict[str, Any]]] = {}
                for artifact in self.grid.artifacts:
                    export = exports[(artifact.student, artifact.placement)]
                    file = exported_file(export, artifact.mode)
                    settings = {"bench": dcfg["bench"], "threads": setting.threads, "xnnpack": setting.xnnpack,
                                "board": board, "artifact_sha256": file.get("sha256")}
                    key = f"{board}/{artifact.key}/{setting.key}"
                    if not export.ok:
                        results[(artifact, setting, board)] = blocked(
                            self.out, "bench", key, settings, f"needs export {export.key}, which failed: {export.error}")
                        continue
                    done = finished(self.out, "bench", key, settings)
                    if done is not None:
                        results[(artifact, setting, board)] = done
                    else:
                        pending[artifact] = (key, Path(file["path"]), settings)
                if pending:
                    results.update(self._bench_board(board, setting, pending, dcfg))
        return results

    def _bench_board(self, board: str, setting: BenchSetting, pending: Mapping[Artifact, tuple[str, Path, dict[str, Any]]],
                     dcfg: Config) -> dict[tuple[Artifact, BenchSetting, str], StepResult]:
        folder = self.out / "bench" / board.replace("/", "_") / f"_runs-{setting.key}"
        paths = [path for _, path, _ in pending.values()]
        self.log(f"bench: {len(paths)} file(s) on {board} ({setting.key})")
        start = time.perf_counter()
        if board == boards_mod.LOCAL:
            outcome = boards_mod.bench_local(paths, folder, dcfg["bench"], threads=setting.threads,
                                             xnnpack=setting.xnnpack, log=self.log)
        else:
            outcome = boards_mod.bench_remote(board, paths, folder, dcfg, threads=setting.threads,
                                              xnnpack=setting.xnnpack, log=self.log)
        each = (time.perf_counter() - start) / max(1, len(paths))
        results = {}
        for artifact, (key, path, settings) in pending.items():
            found = outcome[path]

            def work(step_folder: Path, found: Path | str = found) -> dict[str, Any]:
                if isinstance(found, str):   # the board's own line (a sea-tf error: the card shows just that line)
                    raise RemoteError(found)
                figures = boards_mod.read_bench(found)
                return {**figures, "result": str(found), "wall_time_s": round(each, 2)}

            results[(artifact, setting, board)] = run_step(self.out, "bench", key, settings, work, log=self.log)
        return results


def _reducer_of(student: StudentCell) -> tuple[str, str, int]:
    return (student.sampling, student.method, student.d)


def _without(cfg: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """``cfg`` without ``keys`` (where a step writes, whether it shows progress: neither changes its result)."""
    return {k: v for k, v in cfg.items() if k not in keys}


def _teacher_model(spec: str | None, tcfg: Config, folder: Path) -> tuple[str, str]:
    """The teacher to embed with: ``(model spec, description)``; null: published when cached, else the demo's stand-in."""
    if spec is not None:
        return spec, spec
    from sea_tf.teacher.standin import choose_teacher
    from sea_tf.teacher import list_inputs

    from sea_tf.presets import load_defaults

    _, _, files = list_inputs(tcfg["input"], recursive=tcfg["recursive"])
    chosen, _, description = choose_teacher(files, seed=load_defaults("demo")["seed"], out_dir=folder,
                                            hop_size=tcfg["hop_size"])
    return chosen, description


def distill_done(run_dir: Path, dcfg: Config) -> bool:
    """Whether the distillation in ``run_dir`` finished: its report names a student (and a QAT one when asked)."""
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return False
    if not report.get("student") or not Path(report["student"]).is_file():
        return False
    return not dcfg["qat"]["enabled"] or bool((report.get("qat") or {}).get("path") and Path(report["qat"]["path"]).is_file())


def distill_outputs(report: Mapping[str, Any]) -> dict[str, Any]:
    """What a tune keeps of a distillation's ``report.json``."""
    held = report.get("held_out") or {}
    return {"student": report.get("student"), "qat": (report.get("qat") or {}).get("path"),
            "r2": held.get("r2"), "cosine": held.get("cosine"), "kept_epoch": report.get("kept_epoch"),
            "epochs_run": report.get("epochs_run"), "run_dir": report.get("run_dir"), "wall_time_s": report.get("wall_s")}
