"""Benchmark ``sea-tf teacher-embed``: windows/s and CPU utilisation, against inference alone.

Writes ``--files`` synthetic 10-s recordings (44.1 kHz, so every file is resampled to 48 kHz and
8 kHz), then runs :func:`sea_tf.teacher.extract` ``--repeats`` times into fresh directories.
Reported (medians): windows/s end to end; CPU utilisation = process CPU time / wall time / cores;
the share of wall time spent inside the teacher (1.0 = decoding, resampling and writing fully
hidden; unlike CPU utilisation it does not drop when other processes share the cores);
and windows/s of ``SeaModel.embed_frames`` on already-decoded windows — when decoding, resampling
and writing overlap inference as intended, the two rates are close.

    .venv/bin/python benchmarks/bench_teacher_embed.py --out benchmarks/results

About 2 minutes on 2 idle cores with the default L3 mel256 teacher (~10 GMAC per window).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sea_tf import atomic, config  # noqa: E402
from sea_tf.audio import prepare_frames  # noqa: E402
from sea_tf.models import load_model  # noqa: E402
from sea_tf.teacher import extract_files  # noqa: E402


def make_audio(directory, n_files, seconds=10.0, sr=44100):
    rng = np.random.default_rng(0)
    for i in range(n_files):
        sf.write(directory / f"rec{i:03d}.wav", (0.05 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="l3-mel256-512", help="model spec (default: untrained L3 mel256)")
    parser.add_argument("--files", type=int, default=6, help="10-s recordings (20 windows each at hop 0.5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)

    model = load_model(args.teacher)
    work = Path(tempfile.mkdtemp(prefix="bench_teacher_"))
    try:
        audio_dir = work / "audio"
        audio_dir.mkdir()
        make_audio(audio_dir, args.files)
        x, sr = sf.read(audio_dir / "rec000.wav", dtype="float32")
        frames = prepare_frames(x, sr, model.sample_rate, hop_size=0.5)[0]
        model.embed_frames(frames[: args.batch_size], batch_size=args.batch_size)  # warm-up / tracing
        infer_rates, runs = [], []
        for r in range(args.repeats):
            start = time.perf_counter()
            model.embed_frames(frames, batch_size=args.batch_size)
            infer_rates.append(len(frames) / (time.perf_counter() - start))
            cfg = config.load("teacher", batch_size=args.batch_size, shard_rows=4 * args.batch_size, progress=False)
            summary = extract_files(audio_dir, work / f"out{r}", model, **{key: value for key, value in cfg.items()
                                                                          if key not in ("input", "out", "teacher")})
            runs.append(summary)
            print(f"run {r}: {summary['windows_per_s']} windows/s, CPU {summary['cpu_utilisation']}, "
                  f"share of wall time in inference {summary['inference_share']}, "
                  f"inference alone {infer_rates[-1]:.2f} windows/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "teacher": model.card["name"], "teacher_macs": model.card.get("macs", {}).get("total"),
        "files": args.files, "windows": runs[0]["n_rows"], "batch_size": args.batch_size, "repeats": args.repeats,
        "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
        "extract_windows_per_s_median": statistics.median(r["windows_per_s"] for r in runs),
        "cpu_utilisation_median": statistics.median(r["cpu_utilisation"] for r in runs),
        "inference_share_median": statistics.median(r["inference_share"] for r in runs),
        "inference_only_windows_per_s_median": round(statistics.median(infer_rates), 3),
        "runs": runs,
    }
    result["extract_over_inference"] = round(result["extract_windows_per_s_median"]
                                             / result["inference_only_windows_per_s_median"], 3)
    out = Path(args.out)
    atomic.write_json(out / "bench_teacher_embed.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
