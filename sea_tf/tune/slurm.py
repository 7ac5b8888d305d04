"""``sea-tf tune --slurm``: the grid's distillations as one SLURM array, then back to the tune.

Each pending distillation's resolved config is written into its step folder
(``OUT/distill/<key>/distill.config.yaml``, run folder ``OUT/distill/<key>/run``), their paths into
``OUT/slurm/distill.list``, and ``configs/slurm/tune-distill-array.sbatch`` is submitted with
``sbatch --wait --array=0-(N-1)`` (task K: line K+1), its logs in ``OUT/slurm/``. When the array has
ended, the tune reads each run's ``report.json`` like a local distillation's; a task that did not
finish fails its own cells, naming its log, and a re-run of the tune resubmits only those.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

import yaml

from sea_tf import atomic
from sea_tf.config import Config
from sea_tf.errors import ConfigError, SeaTFError
from sea_tf.tune.steps import step_folder

SBATCH = "slurm/tune-distill-array.sbatch"
LIST = "distill.list"


class SlurmError(SeaTFError):
    """``sbatch`` could not submit the array, or it is not installed."""


def run_folder(out: Path | str, key: str) -> Path:
    """Where the distillation of student ``key`` runs (the same folder here and on the cluster)."""
    return step_folder(out, "distill", key) / "run"


def config_path(out: Path | str, key: str) -> Path:
    return step_folder(out, "distill", key) / "distill.config.yaml"


def submit_distillations(out: Path, configs: Mapping[str, Config], cfg: Config, *, log: Callable[[str], object]) -> None:
    """Submit the distillations not finished yet as one array and wait for it (``sbatch --wait``).

    Parameters
    ----------
    out : Path
        The tune's output folder (on a file system the nodes share).
    configs : dict
        Student key → its resolved ``distill`` config (``out`` is set here).
    cfg : dict
        The tune config (``slurm_args``: extra sbatch arguments).

    Raises
    ------
    SlurmError
        sbatch missing or refusing the submission (one line, sbatch's own message).
    """
    from sea_tf.presets import preset_text
    from sea_tf.tune.run import distill_done

    pending = {key: c for key, c in configs.items() if not distill_done(run_folder(out, key), c)}
    if not pending:
        return
    slurm_dir = (out / "slurm").resolve()
    slurm_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, dcfg in pending.items():
        path = config_path(out, key).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, yaml.safe_dump({**dcfg, "out": str(run_folder(out, key).resolve())}, sort_keys=False))
        lines.append(str(path))
    listing = slurm_dir / LIST
    atomic.write_text(listing, "\n".join(lines) + "\n")
    script = slurm_dir / Path(SBATCH).name
    atomic.write_text(script, preset_text(SBATCH))
    sea_tf = f"{shlex.quote(sys.executable)} -m sea_tf"
    cmd = ["sbatch", "--wait", "--parsable", f"--array=0-{len(lines) - 1}", f"--output={slurm_dir}/%x-%A_%a.out",
           f"--export=ALL,LIST={listing},SEA_TF={sea_tf}", *map(str, cfg["slurm_args"]), str(script)]
    log(f"slurm: {len(lines)} distillation(s) as one array: {' '.join(map(shlex.quote, cmd))}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=slurm_dir)
    except FileNotFoundError:
        raise SlurmError("sbatch not found: --slurm needs a SLURM client on this machine; drop --slurm to "
                         "distil here") from None
    if proc.returncode != 0 and not proc.stdout.strip():
        raise SlurmError(f"sbatch refused the array: {(proc.stderr.strip().splitlines() or ['no message'])[-1]}")
    job = proc.stdout.strip().split(";")[0]
    log(f"slurm: array {job} ended (sbatch exit {proc.returncode}); logs {slurm_dir}/sea-tune-distill-{job}_<task>.out")


def task_log(out: Path | str, key: str) -> str:
    """Where the array task of student ``key`` logged (for a failure's message)."""
    listing = Path(out) / "slurm" / LIST
    try:
        lines = listing.read_text().splitlines()
        task = lines.index(str(config_path(out, key).resolve()))
    except (OSError, ValueError):
        return f"{Path(out) / 'slurm'}/"
    return f"{Path(out) / 'slurm'}/sea-tune-distill-<job>_{task}.out"


def require_report(out: Path | str, key: str, dcfg: Config) -> Path:
    """The finished run's ``report.json``, or a ConfigError naming the task's log."""
    from sea_tf.tune.run import distill_done

    report = run_folder(out, key) / "report.json"
    if not distill_done(run_folder(out, key), dcfg):
        raise ConfigError(f"the SLURM task of {key} did not finish its distillation; its log: {task_log(out, key)}")
    return report
