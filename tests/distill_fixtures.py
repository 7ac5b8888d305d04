"""Tiny synthetic teacher shards, reducer and targets for the distillation tests and benchmark.

The "teacher embedding" of a window is a fixed random linear map of its log band energies, so a
mel-front-end student can learn it; φ is a real ``sea_tf.reduce`` PCA and the targets are written
by ``sea_tf.reduce.apply_reducer``, i.e. in exactly the format the distill stage reads in production.
"""
from pathlib import Path

import numpy as np

from sea_tf import cards
from sea_tf.reduce import apply_reducer, fit_reducer
from sea_tf.shards import canonical_sha256, write_table
from stage_args_support import settings

TEACHER_CARD = {"name": "synthetic-teacher", "kind": "teacher", "embedding_size": 32}
TINY_STUDENT = {"filters": [4, 4, 8, 8], "embedding_bn_relu": False}


def synth_audio(n, sr=8000, seed=0):
    """``n`` 1-s windows: 1–3 sinusoids with random frequencies/levels plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(sr, dtype=np.float32) / sr
    audio = np.zeros((n, sr), np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            freq = rng.uniform(80, 3800)
            audio[i] += rng.uniform(0.05, 0.5) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3))
        audio[i] += 0.01 * rng.standard_normal(sr)
    return audio


def teacher_embedding(audio, dims=32, seed=1):
    """A learnable 'teacher': random linear map of 16 relative log band energies, ``float32 [n, dims]``."""
    spectrum = np.abs(np.fft.rfft(audio, axis=1)) ** 2
    bands = np.array_split(spectrum[:, 1:], 16, axis=1)
    log_energy = np.log10(np.stack([b.sum(axis=1) for b in bands], axis=1) + 1e-3)
    log_energy -= log_energy.max(axis=1, keepdims=True)  # level-free, like the students' max-normalised dB
    mix = np.random.default_rng(seed).standard_normal((16, dims)) / 4
    return (log_energy @ mix).astype(np.float32)


def make_dataset(root, n_sources=40, windows=8, d=8, shard_rows=96, seed=0):
    """Write ``root/{shards,reducer,targets}``; returns their paths as a dict."""
    root = Path(root)
    n = n_sources * windows
    audio = synth_audio(n, seed=seed)
    emb = teacher_embedding(audio)
    sources = np.array([f"src-{i // windows:03d}.wav" for i in range(n)], dtype=object)
    shards = root / "shards"
    write_table(shards, {"embedding": emb, "audio": audio, "source": sources,
                         "label": (np.arange(n) // windows % 3).astype(np.int32)},
                TEACHER_CARD, shard_rows=shard_rows)
    reducer_dir = root / "reducer"
    reducer = fit_reducer(emb, method="pca", d=d, seed=seed)
    path = reducer.save(reducer_dir)
    cards.write_card(reducer_dir, {
        "kind": "reducer", "method": "pca", "d": d, "params": {}, "seed": seed, "embedding_size": emb.shape[1],
        "teacher_card": TEACHER_CARD, "teacher_card_sha256": canonical_sha256(TEACHER_CARD),
        "hashes": {"reducer_sha256": cards.sha256_file(path)}})
    targets = root / "targets"
    apply_reducer(reducer_dir, shards, targets, **settings("reduce/apply", progress=False))
    return {"shards": shards, "reducer": reducer_dir, "targets": targets, "n": n, "d": d}


def tiny_config(data, out, **train):
    """A resolved distill config for the tiny student on ``make_dataset`` output."""
    from sea_tf import config
    from sea_tf.distill import DEFAULTS

    cfg = config.merge(DEFAULTS, {
        "shards": [str(data["shards"])], "targets": str(data["targets"]), "out": str(out), "progress": False,
        "student": {"preset": "sea-64", "overrides": dict(TINY_STUDENT, embedding_size=data["d"])},
        "data": {"valid_fraction": 0.2, "shuffle_buffer": 256, "block_rows": 32},
        "train": {"epochs": 3, "steps_per_epoch": 8, "validation_steps": None, "batch_size": 16,
                  "learning_rate": 3e-3, **train},
        "evaluate": {"downstream": False}})
    return cfg


def tree_files(root):
    """Every file under ``root`` (relative path) with its size and mtime in ns: a shared fixture's users
    compare it with the fixture's own to show that they wrote nothing there."""
    root = Path(root)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}
