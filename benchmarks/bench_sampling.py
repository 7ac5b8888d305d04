"""Benchmark the samplers: DPP time vs pool size (per-group greedy MAP vs one group), random/loudness.

For pools of 1k–64k rows of 512-d embeddings, pick 10 % of the rows. ``dpp`` and ``dpp-quality``
work per group of ``--group-rows`` consecutive rows (the default, linear in the pool); ``dpp``
with a single group (``group_by="all"``) is timed up to 16k rows to show the quadratic growth it
avoids. Medians over ``--repeats`` runs; data in memory (no disk I/O in the timings).

    .venv/bin/python benchmarks/bench_sampling.py --out benchmarks/results
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sea_tf import atomic  # noqa: E402
from sea_tf.sampling import group_bounds, select  # noqa: E402


def timed(n, strategy, emb, loud, group_by, group_rows, repeats):
    bounds = group_bounds(n, group_by=group_by, group_rows=group_rows)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        select(n, n // 10, strategy, r, bounds, loud[:n], read_embeddings=lambda a, b: emb[a:b])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="1000,4000,16000,64000")
    parser.add_argument("--all-max", type=int, default=16000, help="largest pool timed as one group")
    parser.add_argument("--group-rows", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    pools = [int(p) for p in args.pools.split(",")]
    rng = np.random.default_rng(0)
    emb = np.abs(rng.standard_normal((max(pools), 512))).astype(np.float32)
    loud = rng.normal(-35, 8, max(pools)).astype(np.float32)
    rows = []
    for n in pools:
        row = {"pool": n, "m": n // 10}
        for strategy in ("random", "loudness", "dpp", "dpp-quality"):
            row[f"{strategy}_s"] = round(timed(n, strategy, emb, loud, "window", args.group_rows, args.repeats), 4)
        if n <= args.all_max:
            row["dpp_one_group_s"] = round(timed(n, "dpp", emb, loud, "all", None, 1), 4)  # one run: the slow reference
        rows.append(row)
        print(row, flush=True)
    result = {"dim": 512, "group_rows": args.group_rows, "repeats": args.repeats, "rows": rows,
              "note": "medians; m = pool/10; dpp = greedy MAP per group of group_rows rows"}
    atomic.write_json(Path(args.out) / "bench_sampling.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
