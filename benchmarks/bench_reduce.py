"""Benchmark ``reduce apply``: PCA and UMAP throughput on 1 M × 512 float32 teacher rows, with peak RSS.

The rows are generated shard by shard (never all in memory) as low-rank structure plus noise and
written as teacher shards. φ is fitted on a random sample (PCA: 20 000 rows; UMAP: 5 000), then
``sea_tf.reduce.apply_reducer`` runs in a *fresh child process* per method, which reports its own peak
RSS (``ru_maxrss``), so the figure is that of applying alone. UMAP's transform is far slower than
PCA's, so it is applied to the first ``--umap-rows`` rows (whole shards) and its rate extrapolated.

``pca_resume`` re-runs the PCA apply into the finished targets directory: every target is reused
after re-hashing its source shard's embeddings and its own data (``sea-tf reduce apply`` resumes only
targets whose recorded source, reducer and target sha256 match), so its rate is that of the resume
check alone.

    .venv/bin/python benchmarks/bench_reduce.py --out benchmarks/results

Needs ~2.1 GB of free disk in ``--work`` (deleted afterwards unless --keep).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sea_tf import atomic  # noqa: E402
from sea_tf.shards import job_name, new_manifest, shard_name, write_h5  # noqa: E402

CARD = {"name": "synthetic 512-d teacher (benchmark)"}


def write_rows(out_dir, n_rows, dim=512, shard_rows=8192, seed=0):
    """Teacher shards of ``n_rows`` low-rank + noise rows, generated one shard at a time."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((32, dim)).astype(np.float32)
    manifest = new_manifest(job_name(0, 1), CARD, {"benchmark": True}, dim, 1, 0.5)
    for k, a in enumerate(range(0, n_rows, shard_rows)):
        n = min(shard_rows, n_rows - a)
        emb = rng.standard_normal((n, 32), dtype=np.float32) @ basis + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
        write_h5(Path(out_dir) / shard_name("0of1", k),
                 {"embedding": emb, "audio": np.zeros((n, 1), np.float32), "timestamp": np.zeros(n),
                  "loudness_db": np.zeros(n, np.float32), "source": ["synthetic"] * n,
                  "label": np.full(n, -1, np.int32), "fold": np.full(n, -1, np.int32)})
        manifest["shards"].append({"name": shard_name("0of1", k), "rows": n})
    manifest["n_rows"], manifest["complete"] = n_rows, True
    atomic.write_json(Path(out_dir) / "manifest-0of1.json", manifest)


def child_apply(reducer, shards, out, chunk_rows):
    """Run in a fresh process: apply, then print wall time, rows and peak RSS as JSON.

    A 256-row transform first compiles UMAP's numba kernels, so the timing is the steady rate.
    """
    from sea_tf.reduce import Reducer, apply_reducer
    from sea_tf.shards import ShardSet
    start = time.perf_counter()
    Reducer.load(reducer).transform(ShardSet(shards).read_shard(0, "embedding", 0, 256))
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    card = apply_reducer(reducer, shards, out, chunk_rows=chunk_rows, progress=False, allow_partial=False)
    wall = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": card["teacher_shards"]["n_rows"], "wall_s": wall, "warmup_s": warmup,
                      "peak_rss_mb": rss_mb}))


def run_child(reducer, shards, out, chunk_rows, fresh=True):
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, "--child", str(reducer), str(shards), str(out), str(chunk_rows)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--umap-rows", type=int, default=32768, help="rows UMAP is applied to (whole shards)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--chunk-rows", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3, help="PCA apply repeats (UMAP runs once)")
    parser.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--skip-umap", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        reducer, shards, out, chunk = args.child
        child_apply(reducer, shards, out, int(chunk))
        return 0

    from sea_tf import config, reduce, sampling

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_reduce_"))
    result = {"rows": args.rows, "dim": 512, "d": args.d, "chunk_rows": args.chunk_rows, "cores": os.cpu_count()}
    try:
        start = time.perf_counter()
        write_rows(work / "shards", args.rows)
        result["generate_s"] = round(time.perf_counter() - start, 1)
        print(f"wrote {args.rows} rows in {result['generate_s']} s", flush=True)
        sampling.sample(config.load("sampling", shards=[work / "shards"], out=work / "sample_pca",
                                    m=min(20000, args.rows // 2), strategy="random", progress=False))
        start = time.perf_counter()
        reduce.fit(config.load("reduce/fit", shards=[work / "shards"], sample=work / "sample_pca", out=work / "pca",
                               method="pca", d=args.d, quality={"enabled": False}))
        result["pca_fit_s"] = round(time.perf_counter() - start, 2)
        runs = [run_child(work / "pca", work / "shards", work / "targets_pca", args.chunk_rows)
                for _ in range(args.repeats)]
        result["pca_apply"] = {"runs": runs,
                               "rows_per_s_median": round(statistics.median(r["rows"] / r["wall_s"] for r in runs)),
                               "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
                               "peak_rss_mb_max": round(max(r["peak_rss_mb"] for r in runs), 1)}
        print("pca apply", result["pca_apply"], flush=True)
        resume = [run_child(work / "pca", work / "shards", work / "targets_pca", args.chunk_rows, fresh=False)
                  for _ in range(args.repeats)]
        result["pca_resume"] = {"runs": resume,
                                "rows_per_s_median": round(statistics.median(r["rows"] / r["wall_s"] for r in resume)),
                                "wall_s_median": round(statistics.median(r["wall_s"] for r in resume), 2)}
        print("pca resume (all targets reused after the hash check)", result["pca_resume"], flush=True)
        shutil.rmtree(work / "targets_pca", ignore_errors=True)
        if not args.skip_umap:
            umap_dir = work / "shards_umap"
            write_rows(umap_dir, args.umap_rows, seed=1)
            sampling.sample(config.load("sampling", shards=[work / "shards"], out=work / "sample_umap", m=5000,
                                        strategy="random", progress=False))
            start = time.perf_counter()
            reduce.fit(config.load("reduce/fit", shards=[work / "shards"], sample=work / "sample_umap",
                                   out=work / "umap", method="umap", d=args.d,
                                   umap={"n_neighbors": 15, "min_dist": 0.3, "metric": "euclidean"},
                                   quality={"enabled": False}))
            result["umap_fit_s"] = round(time.perf_counter() - start, 2)
            r = run_child(work / "umap", umap_dir, work / "targets_umap", args.chunk_rows)
            rate = r["rows"] / r["wall_s"]
            result["umap_apply"] = {**r, "rows_per_s": round(rate, 1),
                                    "extrapolated_1M_s": round(1_000_000 / rate, 1)}
            print("umap apply", result["umap_apply"], flush=True)
        result["load_average_1min"] = os.getloadavg()[0]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    atomic.write_json(Path(args.out) / "bench_reduce.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
