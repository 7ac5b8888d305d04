"""Benchmark the model zoo: parameters, MACs and measured windows/s of ``get_embedding`` on this CPU.

For the L3 teacher (mel256, 512-d) and every SEA preset (plus SEA-64 with the kapre matrix DFT,
and the published SEA-64 when it is in the weights cache, ``sea-tf models import``): parameters, MACs per 1-s window (front end /
network), and the median over ``--repeats`` runs of windows per second through
``sea_tf.get_embedding`` (framing, resampling and the model) at batch size 1 and 32, with the
process CPU time per window beside it (robust to other jobs sharing the cores).

    .venv/bin/python benchmarks/bench_models.py --out benchmarks/results

writes ``bench_models.json`` and ``bench_models.md``. About 2–4 minutes on 2 cores.
"""
import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sea_tf import atomic  # noqa: E402
from sea_tf.embed import get_embedding  # noqa: E402
from sea_tf.models import build_student, load_model  # noqa: E402

# (label, spec or builder, windows per timing run at batch 1, at batch 32)
CASES = [
    ("l3-mel256-512", lambda: load_model("l3-mel256-512"), 4, 32),
    ("sea-512", lambda: load_model("sea-512"), 16, 128),
    ("sea-256", lambda: load_model("sea-256"), 32, 256),
    ("sea-128", lambda: load_model("sea-128"), 32, 256),
    ("sea-64", lambda: load_model("sea-64"), 32, 256),
    ("sea-64 (matmul DFT)", lambda: build_student("sea-64", dft="matmul"), 32, 256),
]
PUBLISHED = "edgel3/sea-64"


def _audio_for(n_windows, sr, hop_size=0.1):
    """Noise whose centred framing at ``hop_size`` gives exactly ``n_windows`` windows."""
    n_samples = sr // 2 + (n_windows - 1) * int(hop_size * sr)
    return (0.1 * np.random.default_rng(0).standard_normal(n_samples)).astype(np.float32)


def measure(model, n_windows, batch_size, repeats):
    """Median windows/s (wall clock) and CPU ms per window of get_embedding over ``repeats`` runs.

    CPU time (all threads of this process) is reported beside the wall-clock rate because it is
    far less sensitive to other processes competing for the cores.
    """
    audio = _audio_for(n_windows, model.sample_rate)
    emb, _ = get_embedding(audio, model.sample_rate, model=model, batch_size=batch_size)   # warm-up
    assert emb.shape[0] == n_windows
    rates, cpu_ms = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        get_embedding(audio, model.sample_rate, model=model, batch_size=batch_size)
        rates.append(n_windows / (time.perf_counter() - start))
        cpu_ms.append(1000 * (time.process_time() - cpu) / n_windows)
    return statistics.median(rates), statistics.median(cpu_ms)


def run(out_dir, repeats, quick):
    cases = list(CASES)
    from sea_tf.weights import is_cached
    if is_cached(PUBLISHED):
        cases.append(("edgel3/sea-64 (published)", lambda: load_model(PUBLISHED), 32, 256))
    rows = []
    for label, make, n1, n32 in cases:
        if quick:
            n1, n32 = max(2, n1 // 4), max(32, n32 // 4)
        model = make()
        card = model.card
        row = {"model": label, "sample_rate": card["sample_rate"], "embedding_size": card["embedding_size"],
               "params": card["params"], "macs_frontend": card["macs"]["frontend"],
               "macs_network": card["macs"]["network"], "macs_total": card["macs"]["total"],
               }
        for batch, count in ((1, n1), (32, n32)):
            rate, cpu = measure(model, count, batch, repeats)
            row[f"windows_per_s_batch{batch}"] = round(rate, 2)
            row[f"cpu_ms_per_window_batch{batch}"] = round(cpu, 2)
        rows.append(row)
        print(f"{label:28s} {row['windows_per_s_batch1']:9.1f} win/s @1  {row['windows_per_s_batch32']:9.1f} win/s @32",
              flush=True)
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpu_count": os.cpu_count(), "python": platform.python_version()},
              "repeats": repeats, "statistic": "median", "rows": rows}
    out_dir = Path(out_dir)
    atomic.write_json(out_dir / "bench_models.json", result)
    atomic.write_text(out_dir / "bench_models.md", markdown(result))
    return result


def markdown(result):
    lines = [f"# Model zoo benchmark ({result['machine']['cpu_count']} CPU cores, "
             f"median of {result['repeats']} runs of `get_embedding`)", "",
             "| model | sr | D | params | MACs front end | MACs network | windows/s @ 1 | windows/s @ 32 "
             "| CPU ms/window @ 1 | CPU ms/window @ 32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['sample_rate']} | {r['embedding_size']} | {r['params']:,} | "
                     f"{r['macs_frontend'] / 1e6:.1f} M | {r['macs_network'] / 1e6:.1f} M | "
                     f"{r['windows_per_s_batch1']:.1f} | {r['windows_per_s_batch32']:.1f} | "
                     f"{r['cpu_ms_per_window_batch1']:.1f} | {r['cpu_ms_per_window_batch32']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output directory")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the windows (smoke test)")
    args = parser.parse_args(argv)
    result = run(args.out, args.repeats, args.quick)
    print(markdown(result))


if __name__ == "__main__":
    main()
