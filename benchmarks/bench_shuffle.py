"""``data.shuffle: blocks`` against ``iid`` (issue #24 item 5): held-out R² at equal steps, and input rows/s.

The data (``--layout sensors``) are demo-like synthetic teacher shards with the structure that makes the two orders
differ: ``--sensors`` sensors, each with its own tones and noise level, their source files written
sensor after sensor (as teacher-embed writes sorted files), so a contiguous block holds one sensor.
The teacher is the tests' learnable random map of log band energies, φ a real PCA; the student is
the tests' tiny SEA (no ReLU head). For each seed (split, initialisation and order) both orders
train the same number of steps; the report is the kept student's held-out R² (variance-weighted).
The input rate is the training stream alone (no model), read through a BlockReader whose
``max_open_files`` is below the file count, so ``iid`` pays its reopenings.

    .venv/bin/python benchmarks/bench_shuffle.py --out /tmp/bench-shuffle
    .venv/bin/python benchmarks/bench_shuffle.py --layout fixture --out /tmp/bench-shuffle-fixture

Measured (2026-12-07, 2 shared CPU cores; 400 steps of 32 = 10 epochs of 40 steps, lr 3e-3,
block_rows 64, shuffle_buffer 256, 2,880 windows in 23 shards of 128 rows, PCA 8, validation
15 % of the source files; held-out R² of the kept epoch, seeds 1 / 2 / 3):

    layout                      blocks                   iid                      iid − blocks
    sensors (15 sensors)        0.389 0.277 0.364 (0.343)  0.637 0.516 0.585 (0.580)  +0.248 +0.240 +0.221 (+0.236)
    fixture (no structure)      0.568 0.434 0.525 (0.509)  0.517 0.445 0.579 (0.514)  −0.051 +0.010 +0.053 (+0.004)

With sensor structure iid wins by 0.236 R² (paired differences 0.221–0.248, four times the
spread of either column across seeds); without it the two are within seed noise. Hence
``data.shuffle: iid`` by default. Input stream alone, batch 64, ``max_open_files`` 16, rows/s
(block_rows 64 / shuffle_buffer 512; block_rows 256 / shuffle_buffer 4096):

    data                                    blocks          iid
    sensors, 23 shards of 128 rows          8,973 / 10,314   9,058 / 9,769
    fixture, 360 shards of 8 rows           2,765 / 3,581    880 / 2,360

iid reopens each shard a group touches (the bound evicts), so with files far beyond
``max_open_files`` and few rows per shard per group it pays about two opens a row; a larger
``shuffle_buffer`` (or ``max_open_files``) amortises them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from distill_fixtures import TEACHER_CARD, TINY_STUDENT, make_dataset, teacher_embedding  # noqa: E402
from stage_args_support import settings  # noqa: E402

from sea_tf import cards, config  # noqa: E402
from sea_tf.distill import DEFAULTS, distill, pairs as pairs_mod, pipeline  # noqa: E402
from sea_tf.reduce import apply_reducer, fit_reducer  # noqa: E402
from sea_tf.shards import canonical_sha256, write_table  # noqa: E402

SR = 8000


def sensor_audio(sensors: int, sources: int, windows: int, *, seed: int) -> tuple[npt.NDArray[np.float32], list[str]]:
    """1-s windows, sensor by sensor: each sensor's 3 tones and noise level, plus 0–2 random tones a window."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR, dtype=np.float32) / SR
    audio, names = [], []
    for s in range(sensors):
        tones, noise = rng.uniform(80, 3800, 3), 10 ** rng.uniform(-2.5, -1)
        for f in range(sources):
            gains = rng.uniform(0.05, 0.5, 3) * (rng.random(3) < 0.8)  # a source's own mix of its sensor's tones
            for _ in range(windows):
                x = sum(g * rng.uniform(0.7, 1.3) * np.sin(2 * np.pi * fr * t + rng.uniform(0, 6.3))
                        for g, fr in zip(gains, tones))
                for _ in range(rng.integers(0, 3)):
                    x = x + rng.uniform(0.02, 0.2) * np.sin(2 * np.pi * rng.uniform(80, 3800) * t)
                audio.append((x + noise * rng.standard_normal(SR)).astype(np.float32))
                names.append(f"sensor-{s:02d}/file-{f:03d}.wav")
    return np.stack(audio), names


def make_data(root: Path, *, sensors: int, sources: int, windows: int, shard_rows: int, d: int) -> dict:
    audio, names = sensor_audio(sensors, sources, windows, seed=0)
    emb = teacher_embedding(audio)
    shards = root / "shards"
    write_table(shards, {"embedding": emb, "audio": audio, "source": np.array(names, dtype=object),
                         "label": np.zeros(len(audio), np.int32)}, TEACHER_CARD, shard_rows=shard_rows)
    reducer_dir = root / "reducer"
    path = fit_reducer(emb, method="pca", d=d, seed=0).save(reducer_dir)
    cards.write_card(reducer_dir, {
        "kind": "reducer", "method": "pca", "d": d, "params": {}, "seed": 0, "embedding_size": emb.shape[1],
        "teacher_card": TEACHER_CARD, "teacher_card_sha256": canonical_sha256(TEACHER_CARD),
        "hashes": {"reducer_sha256": cards.sha256_file(path)}})
    targets = root / "targets"
    apply_reducer(reducer_dir, shards, targets, **settings("reduce/apply", progress=False))
    return {"shards": shards, "targets": targets, "d": d, "n": len(audio)}


def train(data: dict, out: Path, *, shuffle: str, seed: int, args: argparse.Namespace) -> dict:
    cfg = config.merge(DEFAULTS, {
        "shards": [str(data["shards"])], "targets": str(data["targets"]), "out": str(out), "progress": False,
        "seed": seed, "student": {"preset": "sea-64", "overrides": dict(TINY_STUDENT, embedding_size=data["d"])},
        "data": {"valid_fraction": 0.15, "shuffle": shuffle, "shuffle_buffer": args.shuffle_buffer,
                 "block_rows": args.block_rows},
        "train": {"epochs": args.epochs, "steps_per_epoch": args.steps, "validation_steps": None,
                  "batch_size": args.batch, "learning_rate": 3e-3, "early_stopping": {"patience": None}},
        "evaluate": {"downstream": False}})
    start = time.perf_counter()
    report = distill(cfg, log=lambda *_: None)
    return {"r2": report["held_out"]["r2"], "mse": report["held_out"]["mse"], "kept_epoch": report["kept_epoch"],
            "seconds": round(time.perf_counter() - start, 1), "fit_windows_per_s": report["fit_windows_per_s"]}


def input_rate(data: dict, *, shuffle: str, batch: int, block_rows: int, shuffle_buffer: int,
               max_open_files: int, batches: int) -> float:
    pairs = pairs_mod.open_pairs([str(data["shards"])], str(data["targets"]), reducer_dir=None, check_rows=0, seed=0,
                                 allow_partial=False)
    split = pairs_mod.split_by_source(pairs.shards, valid_fraction=0.15, seed=0)
    blocks = pipeline.make_blocks(pairs.shards, split.train_rows, block_rows=block_rows)
    reader = pipeline.BlockReader(pairs.shards, max_open_files=max_open_files)
    ds = pipeline.train_dataset(pairs.shards, blocks, batch_size=batch, seed=0, shuffle=shuffle,
                                shuffle_buffer=shuffle_buffer, cycle_length=1, reader=reader)
    it = iter(ds)
    next(it)  # tf.data start-up
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches * batch / (time.perf_counter() - start)
    reader.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--layout", choices=["sensors", "fixture"], default="sensors",
                    help="fixture: the tests' make_dataset (every window drawn independently: no sensor structure)")
    ap.add_argument("--sensors", type=int, default=15)
    ap.add_argument("--sources", type=int, default=24, help="source files per sensor")
    ap.add_argument("--windows", type=int, default=8, help="1-s windows per source file")
    ap.add_argument("--shard-rows", type=int, default=128)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--block-rows", type=int, default=64)
    ap.add_argument("--shuffle-buffer", type=int, default=256)
    ap.add_argument("--rate-batches", type=int, default=200)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args(argv)
    data_dir = args.out / "data"
    if not (data_dir / "targets").is_dir() and args.layout == "fixture":
        data = make_dataset(data_dir, n_sources=args.sensors * args.sources, windows=args.windows, d=args.d,
                            shard_rows=args.shard_rows)
    elif not (data_dir / "targets").is_dir():
        data = make_data(data_dir, sensors=args.sensors, sources=args.sources, windows=args.windows,
                         shard_rows=args.shard_rows, d=args.d)
    else:
        data = {"shards": data_dir / "shards", "targets": data_dir / "targets", "d": args.d}
    results: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "rates": {}, "runs": []}
    for shuffle in pipeline.SHUFFLES:
        results["rates"][shuffle] = {
            name: round(input_rate(data, shuffle=shuffle, batch=64, block_rows=br, shuffle_buffer=sb, max_open_files=16,
                                   batches=args.rate_batches))
            for name, br, sb in (("block_rows=64,shuffle_buffer=512", 64, 512),
                                 ("block_rows=256,shuffle_buffer=4096", 256, 4096))}
        print(shuffle, results["rates"][shuffle], flush=True)
    if not args.skip_train:
        for seed in args.seeds:
            for shuffle in pipeline.SHUFFLES:
                run = train(data, args.out / f"{shuffle}-{seed}", shuffle=shuffle, seed=seed, args=args)
                results["runs"].append({"seed": seed, "shuffle": shuffle, **run})
                print(json.dumps(results["runs"][-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
