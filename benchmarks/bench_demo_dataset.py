"""How fast the demo dataset is generated and how learnable it is.

For each size, generates the labelled part of the demo dataset (no upstream) and runs a linear
probe: logistic regression on mean log-mel band energies, leave-one-fold-out over the 10 folds.
The dataset should be learnable (far above the 10 % chance) but not trivial (far below 100 %).

    .venv/bin/python benchmarks/bench_demo_dataset.py                 # sizes 8 and 40 clips per class
    .venv/bin/python benchmarks/bench_demo_dataset.py --sizes 40 --seed 1

Writes ``benchmarks/results/bench_demo_dataset.json``.
"""
import argparse
import copy
import shutil
import time
from pathlib import Path

import numpy as np

from sea_tf import atomic
from sea_tf.data import US8K
from sea_tf.data.demo_dataset import DEFAULTS, make_demo_dataset
from sea_tf.data.probe import linear_probe_accuracy, mean_logmel_features

RESULTS = Path(__file__).resolve().parent / "results"


def bench(clips_per_class, seed, work):
    cfg = copy.deepcopy(DEFAULTS)
    cfg.update(clips_per_class=clips_per_class, seed=seed)
    cfg["upstream"]["recordings"] = 0
    out = work / f"demo-{clips_per_class}-{seed}"
    start = time.perf_counter()
    cpu = time.process_time()
    card = make_demo_dataset(cfg, out=out, overwrite=True, progress=True)
    gen_wall, gen_cpu = time.perf_counter() - start, time.process_time() - cpu
    dataset = US8K(out)
    labels = np.array([c.class_id for c in dataset.clips])
    folds = np.array([c.fold for c in dataset.clips])
    feats = mean_logmel_features(dataset.clips, progress=True)
    probe = linear_probe_accuracy(feats, labels, folds, seed=seed)
    per_class = {name: round(float(np.mean(probe["predictions"][labels == k] == k)), 3)
                 for k, name in enumerate(dataset.classes)}
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, probe["predictions"]), 1)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "clips_per_class": clips_per_class, "seed": seed, "n_clips": card["n_clips"],
        "audio_s": card["clip_duration_s"]["total"],
        "generation_wall_s": round(gen_wall, 2), "generation_cpu_s": round(gen_cpu, 2),
        "mean_fold_accuracy": round(probe["mean_fold_accuracy"], 4),
        "fold_accuracy_std": round(float(np.std(list(probe["fold_accuracy"].values()))), 4),
        "pooled_accuracy": round(probe["pooled_accuracy"], 4),
        "per_class_accuracy": per_class, "confusion": confusion.tolist(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 40], help="clips per class to try (default: 8 40)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="generator seed (default: the demo's)")
    parser.add_argument("--work", type=Path, default=RESULTS / "work", help="scratch directory (deleted after)")
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        r = bench(size, args.seed, args.work)
        results.append(r)
        print(f"{size:3d} clips/class: {r['n_clips']} clips ({r['audio_s']} s audio) generated in "
              f"{r['generation_wall_s']} s wall / {r['generation_cpu_s']} s CPU; linear probe "
              f"{100 * r['mean_fold_accuracy']:.1f} ± {100 * r['fold_accuracy_std']:.1f} % mean fold accuracy "
              f"({100 * r['pooled_accuracy']:.1f} % pooled)")
        print("   per class: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["per_class_accuracy"].items()))
    shutil.rmtree(args.work, ignore_errors=True)
    atomic.write_json(RESULTS / "bench_demo_dataset.json", results)
    print(f"results: {RESULTS / 'bench_demo_dataset.json'}")


if __name__ == "__main__":
    main()
