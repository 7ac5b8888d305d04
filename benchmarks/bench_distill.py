"""Distillation throughput on this machine: SEA-64 training steps and the input pipeline alone.

Writes synthetic shards (noise windows at 8 kHz, random 64-d targets, the documented HDF5 layout)
and measures, each as the median of ``--repeats`` timed runs after a warm-up:

- ``pipeline_windows_per_s``: the tf.data input alone (read blocks from HDF5, interleave, shuffle,
  batch 64, prefetch), nothing consuming but the iterator;
- ``train_windows_per_s``: SEA-64 ``model.fit`` steps (Adam, MSE) fed by that pipeline;
- ``train_in_memory_windows_per_s``: the same steps fed from tensors already in memory.

The pipeline is not the bottleneck when the first is far above the second and the last two agree.

    .venv/bin/python benchmarks/bench_distill.py                # SEA-64, batch 64
    .venv/bin/python benchmarks/bench_distill.py --steps 10 --repeats 5

Writes ``benchmarks/results/bench_distill.json``.
"""
import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from sea_tf import atomic
from sea_tf.backend import keras, tf
from sea_tf.distill import pipeline, student as student_mod
from sea_tf.shards import ShardSet, write_table

RESULTS = Path(__file__).resolve().parent / "results"


def synthetic_pairs(root, n_rows, d, shard_rows=1024, seed=0):
    """Write ``root/shards`` and ``root/targets`` with ``n_rows`` random rows; returns a ShardSet."""
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal((n_rows, 8000))).astype(np.float32)
    sources = np.array([f"f{i // 20:05d}.wav" for i in range(n_rows)], dtype=object)
    write_table(root / "shards", {"embedding": rng.standard_normal((n_rows, 512)).astype(np.float32),
                                  "audio": audio, "source": sources}, {"name": "bench"}, shard_rows=shard_rows)
    shards = ShardSet(root / "shards")
    (root / "targets").mkdir(parents=True, exist_ok=True)
    for info, name in zip(shards.shards, shards.target_names()):
        (root / "targets" / name).parent.mkdir(exist_ok=True)
        with h5py.File(root / "targets" / name, "w") as fh:
            fh.create_dataset("target", data=rng.standard_normal((info.n_rows, d)).astype(np.float32))
    atomic.write_json(root / "targets" / "card.json", {"kind": "targets", "d": d, "complete": True})
    return ShardSet(root / "shards", targets=root / "targets")


def _median_rate(run, windows, repeats):
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(windows / (time.perf_counter() - start))
    return statistics.median(rates), rates


def bench(n_rows, batch, steps, repeats, work):
    shards = synthetic_pairs(work, n_rows, 64)
    blocks = pipeline.make_blocks(shards, np.arange(shards.n_rows), block_rows=256)
    ds = pipeline.train_dataset(shards, blocks, batch_size=batch, seed=0, shuffle="blocks", shuffle_buffer=4096,
                                cycle_length=4)
    iterator = iter(ds)
    for _ in range(5):  # warm-up: open files, fill the shuffle buffer
        next(iterator)
    pipe_steps = 4 * steps

    def drain():
        for _ in range(pipe_steps):
            next(iterator)

    pipe_rate, pipe_all = _median_rate(drain, pipe_steps * batch, repeats)

    student = student_mod.build("sea-64", overrides={}, head="published", d=64, frame_samples=8000, seed=0)
    model, _ = student_mod.training_model(student, mixed_precision=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse", metrics=["mae"])
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
    train_rate, train_all = _median_rate(lambda: model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0),
                                         steps * batch, repeats)
    audio, target = next(iterator)
    memory = tf.data.Dataset.from_tensors((audio, target)).repeat()
    model.fit(memory, steps_per_epoch=2, epochs=1, verbose=0)
    mem_rate, mem_all = _median_rate(lambda: model.fit(memory, steps_per_epoch=steps, epochs=1, verbose=0),
                                     steps * batch, repeats)
    return {"student": "sea-64", "macs_per_window": student.card["macs"]["total"], "batch": batch,
            "steps_per_timing": steps, "repeats": repeats, "rows": n_rows,
            "pipeline_windows_per_s": round(pipe_rate, 1), "train_windows_per_s": round(train_rate, 1),
            "train_in_memory_windows_per_s": round(mem_rate, 1),
            "pipeline_over_train": round(pipe_rate / train_rate, 1),
            "runs": {"pipeline": [round(r, 1) for r in pipe_all], "train": [round(r, 1) for r in train_all],
                     "train_in_memory": [round(r, 1) for r in mem_all]}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4096, help="synthetic windows written (default 4096)")
    parser.add_argument("--batch", type=int, default=64, help="windows per step (default 64)")
    parser.add_argument("--steps", type=int, default=6, help="training steps per timed run (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default 3)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as work:
        result = bench(args.rows, args.batch, args.steps, args.repeats, Path(work))
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "tensorflow": tf.__version__}
    atomic.write_json(RESULTS / "bench_distill.json", result)
    for key in ("pipeline_windows_per_s", "train_windows_per_s", "train_in_memory_windows_per_s"):
        print(f"{key}: {result[key]}")
    print(f"written: {RESULTS / 'bench_distill.json'}")


if __name__ == "__main__":
    main()
