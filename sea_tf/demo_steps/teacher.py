"""Demo step ``teacher``: embed the upstream scene recordings with the teacher into shards.

The teacher is :func:`sea_tf.teacher.standin.choose_teacher`'s: the published openl3 mel256 (env)
model when its weights are cached (``sea-tf models fetch openl3/mel256-env``), else the *seeded
untrained* mel256 L3 with its batch-norm statistics calibrated on a few upstream windows — a random
but informative feature extractor, named as such in the report. The teacher costs ~10 GMAC per window, so the step embeds
at most ``MAX_WINDOWS`` windows: measured 101 s on the shared 2-core machine at load average ~4
(593 windows; extraction 75 s at 7.9 windows/s, BN calibration on 23 windows ~15 s).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import soundfile as sf

from sea_tf.demo import DemoContext, StepReport
from sea_tf.errors import DataError
from sea_tf.teacher.standin import choose_teacher

if TYPE_CHECKING:
    from sea_tf.teacher import InputFile

MAX_WINDOWS = 640
PRESET = "teacher/demo"


def _files_within_budget(files: Sequence[InputFile], hop_size: float, budget: int) -> int:
    """How many of the sorted files fit in ``budget`` windows (centred framing: 1 + ceil(dur/hop))."""
    total = 0
    for count, item in enumerate(files):
        info = sf.info(str(item.path))
        total += 1 + int(np.ceil(info.frames / info.samplerate / hop_size))
        if total > budget:
            return max(1, count)
    return len(files)


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.teacher import extract_files, list_inputs

    cfg = ctx.settings("teacher", PRESET)
    upstream = Path(ctx.artifacts.get("upstream_dir") or ctx.data_dir / "upstream")
    if not upstream.is_dir():
        raise DataError(f"{upstream}: no upstream recordings; the data step should have made them "
                        "(`sea-tf data make-demo`)")
    _, _, files = list_inputs(upstream, recursive=cfg["recursive"])
    limit = _files_within_budget(files, cfg["hop_size"], MAX_WINDOWS)
    spec, model, description = choose_teacher(files, seed=ctx.seed, out_dir=ctx.out_dir, hop_size=cfg["hop_size"])
    out = ctx.out_dir / "teacher_shards"
    summary = extract_files(upstream, out, model, hop_size=cfg["hop_size"], center=cfg["center"],
                            student_sample_rate=cfg["student_sample_rate"], shard_rows=cfg["shard_rows"],
                            batch_size=cfg["batch_size"], recursive=cfg["recursive"], limit_files=limit,
                            compression=cfg["compression"], decode_workers=cfg["decode_workers"],
                            prefetch_blocks=cfg["prefetch_blocks"], progress=True, resampler=cfg["resampler"],
                            block_windows=cfg["block_windows"], read_retries=cfg["read_retries"],
                            read_backoff_s=cfg["read_backoff_s"], retry_failed=cfg["retry_failed"])
    ctx.artifacts["teacher_model"] = spec
    ctx.artifacts["teacher_shards"] = str(out)
    figures = {"teacher": description, "teacher_model": spec, "weights": model.card["weights"].get("source"),
               "files": limit, "files_available": len(files), "rows": summary["n_rows"],
               "shards": summary["n_shards"], "failed_files": len(summary["failed"]),
               "windows_per_s": summary["windows_per_s"], "cpu_utilisation": summary["cpu_utilisation"],
               "hop_size_s": cfg["hop_size"], "student_sample_rate": cfg["student_sample_rate"]}
    markdown = (f"Teacher: **{description}**.\n\n"
                f"Embedded {summary['n_rows']} windows (1 s, hop {cfg['hop_size']} s, centred) of {limit} of the "
                f"{len(files)} upstream recordings into {summary['n_shards']} shards at `{out}`, each row with its "
                f"{cfg['student_sample_rate']} Hz student window, timestamp and loudness. "
                f"Throughput {summary['windows_per_s']} windows/s, CPU utilisation {summary['cpu_utilisation']} "
                f"of {summary['cores']} cores; {len(summary['failed'])} unreadable files.")
    return StepReport(figures=figures, markdown=markdown)
