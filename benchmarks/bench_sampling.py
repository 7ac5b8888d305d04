"""Benchmark the samplers: DPP time vs pool size, and the exact k-DPP target (500,000 of 5,000,000 rows).

Scaling (default): for pools of 1k–64k rows of 512-d embeddings, pick 10 % of the rows. ``dpp`` and
``dpp-quality`` work per group of ``--group-rows`` consecutive rows (linear in the pool), with the
exact sampler and with greedy MAP; ``dpp`` with a single group (``group_by="all"``) is timed up to
16k rows to show the growth it avoids. Medians over ``--repeats`` runs; data in memory.

Target (``--target``): the issue's budget is exact k-DPP sampling of 500,000 of 5,000,000 rows
(512-d, groups of ≤ 2,048) in ≤ 1 hour on 2 cores with bounded memory. This runs ``--fraction``
(default 10 %) of it — the same groups, 10 % as many — and extrapolates linearly, which holds
because groups are independent and equal in size. Rows are generated group by group (non-negative,
mutually similar, like L3 embeddings), so memory stays at one group; generation is timed apart.

    .venv/bin/python benchmarks/bench_sampling.py --out benchmarks/results
    .venv/bin/python benchmarks/bench_sampling.py --target --out benchmarks/results
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

from sea_tf import atomic, config  # noqa: E402
from sea_tf.sampling import group_bounds, select  # noqa: E402

KERNEL = {key: config.load("sampling")[key]  # as `sea-tf sample` uses them
          for key in ("dpp_kernel", "ridge", "mcmc_iterations", "mcmc_start_seed", "max_kdpp_mb")}


def timed(n, strategy, emb, loud, group_by, group_rows, repeats, solver="exact"):
    bounds = group_bounds(n, group_by=group_by, group_rows=group_rows)
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        select(n, n // 10, strategy=strategy, seed=r, bounds=bounds, loudness_db=loud[:n],
               read_embeddings=lambda a, b: emb[a:b], dpp_solver=solver, **KERNEL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def target(fraction, group_rows, strategy, out):
    """Exact k-DPP on ``fraction`` of 5,000,000 rows (m = 10 %), extrapolated to the whole pool."""
    import resource

    n_full, m_full, dims = 5_000_000, 500_000, 512
    n = int(round(n_full * fraction))
    bounds = group_bounds(n, group_by="window", group_rows=group_rows)
    common = np.abs(np.random.default_rng(0).standard_normal(dims))
    generate_s = 0.0

    def read_embeddings(a, b):
        nonlocal generate_s
        start = time.perf_counter()
        rows = np.random.default_rng(a).standard_normal((b - a, dims))
        emb = (common + 0.3 * np.abs(rows)).astype(np.float32)
        generate_s += time.perf_counter() - start
        return emb

    loud = np.random.default_rng(1).normal(-35, 8, n).astype(np.float32)
    start = time.perf_counter()
    index = select(n, int(round(m_full * fraction)), strategy=strategy, seed=20180123, bounds=bounds, loudness_db=loud,
                   read_embeddings=read_embeddings, dpp_solver="exact", **KERNEL)
    wall = time.perf_counter() - start
    sampling_s = wall - generate_s
    result = {"kind": "target", "strategy": strategy, "solver": "exact", "dim": dims, "group_rows": group_rows,
              "fraction": fraction, "rows": n, "m": int(len(index)), "groups": int(len(bounds) - 1),
              "sampling_s": round(sampling_s, 2), "generate_s": round(generate_s, 2),
              "extrapolated_full_s": round(sampling_s / fraction, 1), "budget_s": 3600,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "note": "extrapolated linearly from the fraction run (independent, equal groups); "
                      "one process, BLAS on one thread; generation of the rows excluded"}
    atomic.write_json(Path(out) / "bench_sampling_target.json", result)
    print(json.dumps(result, indent=1))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="1000,4000,16000,64000")
    parser.add_argument("--all-max", type=int, default=16000, help="largest pool timed as one group")
    parser.add_argument("--group-rows", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--target", action="store_true", help="time the 500,000-of-5,000,000 exact k-DPP target")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of the target run (extrapolated)")
    parser.add_argument("--strategy", default="dpp-quality", choices=("dpp", "dpp-quality"))
    args = parser.parse_args(argv)
    if args.target:
        return target(args.fraction, args.group_rows, args.strategy, args.out)
    pools = [int(p) for p in args.pools.split(",")]
    rng = np.random.default_rng(0)
    emb = np.abs(rng.standard_normal((max(pools), 512))).astype(np.float32)
    loud = rng.normal(-35, 8, max(pools)).astype(np.float32)
    rows = []
    for n in pools:
        row = {"pool": n, "m": n // 10}
        for strategy in ("random", "loudness", "dpp", "dpp-quality"):
            row[f"{strategy}_s"] = round(timed(n, strategy, emb, loud, "window", args.group_rows, args.repeats), 4)
        row["dpp-quality_greedy_map_s"] = round(timed(n, "dpp-quality", emb, loud, "window", args.group_rows,
                                                     args.repeats, solver="greedy-map"), 4)
        if n <= args.all_max:
            row["dpp_one_group_s"] = round(timed(n, "dpp", emb, loud, "all", None, 1), 4)  # one run: the slow reference
        rows.append(row)
        print(row, flush=True)
    result = {"dim": 512, "group_rows": args.group_rows, "repeats": args.repeats, "rows": rows,
              "note": "medians; m = pool/10; dpp = exact k-DPP sample per group of group_rows rows"}
    atomic.write_json(Path(args.out) / "bench_sampling.json", result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
