"""The teacher a run uses when none is named: the published openl3 mel256 (env) when its weights are
cached, else a seeded, untrained mel256 L3 whose batch-norm statistics are calibrated on a few of the
run's own windows — a random but informative feature extractor, named as such in every report.

``make demo`` and ``sea-tf tune`` (``teacher: null``) both use it, so that they run without downloads.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from sea_tf.models import SeaModel
    from sea_tf.teacher.inputs import InputFile

PUBLISHED = "openl3/mel256-env"
UNTRAINED = "l3-mel256-512"
CALIBRATION_FILES = 2  # ~25 windows: BN statistics pool over every time-frequency bin; calibration costs ~0.6 s per window


def choose_teacher(upstream_files: Sequence[InputFile], *, seed: int, out_dir: Path | str,
                   hop_size: float) -> tuple[str, SeaModel, str]:
    """The stand-in teacher: ``(model spec for later steps, SeaModel, description)``.

    Parameters
    ----------
    upstream_files : sequence of InputFile
        The run's audio; the first :data:`CALIBRATION_FILES` calibrate the untrained model's batch norm.
    seed : int
        Seed of the untrained model's weights.
    out_dir : Path
        The untrained model is saved as ``out_dir/teacher/teacher.keras`` (later stages load it by path).
    hop_size : float
        Seconds between the calibration windows.
    """
    from sea_tf.models import calibrate_batchnorm, load_model
    from sea_tf.weights import is_cached

    if is_cached(PUBLISHED):
        return PUBLISHED, load_model(PUBLISHED), f"published openl3 weights ({PUBLISHED})"
    from sea_tf.audio import load_audio, prepare_frames
    model = load_model(UNTRAINED, seed=seed)
    frames = []
    for item in upstream_files[:CALIBRATION_FILES]:
        audio, sr = load_audio(item.path)
        frames.append(prepare_frames(audio, sr, model.sample_rate, hop_size=hop_size)[0])
    calibrate_batchnorm(model, np.concatenate(frames))
    path = model.save(Path(out_dir) / "teacher" / "teacher.keras")
    return str(path), model, (f"seeded untrained L3 ({UNTRAINED}, seed {seed}), batch norm calibrated on "
                              f"{sum(len(f) for f in frames)} upstream windows — no published weights cached")


