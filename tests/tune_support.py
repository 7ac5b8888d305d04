"""Tiny inputs for the end-to-end tests of ``sea-tf tune`` (tests/test_tune_run.py): teacher shards of a
32-d synthetic teacher with 8-kHz (student-rate) audio, an UrbanSound8K-layout dataset of tones, and a
tune config (a YAML file, as a user writes one) that sizes every stage down to seconds.
"""
import sys
from pathlib import Path

import numpy as np
import yaml

from classify_support import write_tone_us8k
from distill_fixtures import TEACHER_CARD, TINY_STUDENT, synth_audio, teacher_embedding
from sea_tf.shards import write_table

N_SOURCES, WINDOWS = 16, 8          # 128 rows of 1-s windows
D = 8                               # the reduced dimension (the teacher has TEACHER_CARD's 32)
MODES = ["fp32", "int8"]


def write_shards(root):
    """Teacher shards as ``sea-tf teacher-embed`` writes them (embedding, audio, source, loudness)."""
    n = N_SOURCES * WINDOWS
    audio = synth_audio(n, seed=7)
    loudness = (20 * np.log10(np.sqrt((audio ** 2).mean(axis=1)) + 1e-9)).astype(np.float32)
    sources = np.array([f"src-{i // WINDOWS:03d}.wav" for i in range(n)], dtype=object)
    write_table(Path(root), {"embedding": teacher_embedding(audio), "audio": audio, "source": sources,
                             "loudness_db": loudness}, TEACHER_CARD, shard_rows=64)
    return Path(root)


def write_tones(root):
    """UrbanSound8K layout: 10 folds x 3 tone classes x one 1.2-s clip at 8 kHz."""
    def tone(rng, f0):
        t = np.arange(9600) / 8000
        return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)

    return write_tone_us8k(Path(root), 8000, 5, tone, end=1.2)


def write_config(path, *, data, shards, out, remote_dir, known_hosts, key, hosts=()):
    """A tune config of one tiny SEA-64-shaped student, exported fp32 and int8, on ``hosts`` beside local.

    Every stage is cut to seconds through its ``stages.<stage>.set``: 2 epochs of 3 steps, 24
    calibration and 16 held-out windows, one test fold with a small MLP, 3 timed runs on the board.
    """
    student = ", ".join(f"{k}: {v}" for k, v in TINY_STUDENT.items())
    cfg = {
        "data": str(data), "shards": [str(shards)], "out": str(out), "hosts": list(hosts), "progress": False,
        "budget": {"flash_kb": 512, "accuracy_drop": 0.5},
        "grid": {"sampling": ["random"], "reduction": ["pca"], "d": [D], "students": ["sea-64"],
                 "head": ["published"], "sparsity": [0], "qat": [False], "modes": MODES, "placements": ["auto"],
                 "threads": [1], "xnnpack": [True]},
        "stages": {
            "sampling": {"config": None, "set": ["m=64"]},
            "reduce": {"config": None, "set": ["quality.n_heldout=16", "quality.k=3"]},
            "distill": {"config": None, "set": [
                "student.overrides={" + student + "}", "train.epochs=2", "train.steps_per_epoch=3",
                "train.validation_steps=1", "train.batch_size=16", "data.valid_fraction=0.2",
                "data.shuffle_buffer=64", "data.block_rows=32", "evaluate.downstream=false"]},
            "export": {"config": None, "set": ["calibration.windows=24", "held_out.windows=16",
                                               "latency.runs=3", "latency.warmup=1"]},
            "classify": {"config": None, "set": ["protocol.test_folds=[1]", "features.hop_size=0.5",
                                                 "classifier.mlp.hidden=[16]", "classifier.mlp.epochs=3",
                                                 "classifier.mlp.learning_rate=0.01"]},
            "device": {"config": None, "set": [  # {host}: both test boards share this machine's home
                f"known_hosts={known_hosts}", f"key={key}", f"remote_dir={remote_dir}/board-{{host}}",
                f"remote_python={sys.executable}", "bench.runs=3", "bench.warmup=1", "bench.hop_s=0.5"]},
        },
    }
    Path(path).write_text(yaml.safe_dump(cfg, sort_keys=False))
    return Path(path)


def demo_args(*, data, shards, remote_dir, known_hosts, key):
    """``sea-tf tune`` arguments that run the packaged ``tune/demo`` preset, cut to seconds.

    The settings of :func:`write_config`, given as flags and ``--set`` over ``--config tune/demo``: the
    preset's stage presets (distill/demo, export/demo, classify/demo, ...) stay, their ``set`` lists
    shrink every stage, and the grid is the tiny one. The caller adds ``--out`` and ``--host``.
    """
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load(write_config(Path(tmp) / "tune.yaml", data=data, shards=shards, out=tmp,
                                          remote_dir=remote_dir, known_hosts=known_hosts, key=key).read_text())

    def flow(value):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()

    items = [f"budget.{k}={v}" for k, v in cfg["budget"].items()]
    items += [f"grid.{k}={flow(v)}" for k, v in cfg["grid"].items()]
    items += [f"stages.{stage}.set={flow(own['set'])}" for stage, own in cfg["stages"].items()]
    return ["--config", "tune/demo", "--data", str(data), "--shards", str(shards), "--no-progress", "--set", *items]
