"""Export benchmark: SEA-64 vs the L3 teacher, fidelity and cost, measured side by side with LiteRT.

1. Exports SEA-64 (the published ``edgel3/sea-64`` when it is in the weights cache, ``sea-tf models
   import edgel3_sea_ust_audio_emb_64.h5``; else the untrained preset, with a warning) in fp32,
   dynamic, fp16 and int8, calibrated on >= 200 real windows drawn across the demo dataset's
   upstream scenes, measured on windows of the labelled demo clips
   (held out: no clip is used for calibration).
2. Exports the mel256 teacher (``l3-mel256-512``; latency does not depend on its weights) in fp32.
3. Also exports the network *bodies* alone (front end on the device) to time the bodies.
4. Times every file side by side in one fresh process without TensorFlow (like the board's
   ``python -m device.bench``; BLAS pinned to 1 thread), interleaved over ``--repeats`` rounds of
   ``--runs`` windows at 1 thread, through ``device.runner`` (the board's code path): body
   ``invoke`` and end to end (raw 1-s audio → embedding, numpy front end included where the file
   takes the dB image).

    .venv/bin/python benchmarks/bench_export.py                        # demo dataset made in a temp dir
    .venv/bin/python benchmarks/bench_export.py --data demo_out/data --repeats 5

Writes ``benchmarks/results/bench_export.json`` (medians of the per-round medians, in ms).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from device.frontends import compute_frontend, mel_filterbank
from device.runner import load_artifact
from export.fidelity import time_windows  # no TensorFlow import (export/ is lazy)
from sea_tf import atomic

RESULTS = Path(__file__).resolve().parent / "results"


def _data(path, work):
    if path:
        return Path(path)
    from sea_tf.data.demo_dataset import make_demo_dataset
    out = work / "demo-data"
    make_demo_dataset(out=out, progress=True)
    return out


def _median_ms(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def time_side_by_side(plan_path):
    """The timing phase, run in its own TensorFlow-free process; writes ``plan["out"]``."""
    plan = json.loads(Path(plan_path).read_text())
    frames = np.load(plan["frames"])
    frames8, frames48 = frames["frames8"], frames["frames48"]
    rng = np.random.default_rng(0)
    loaded = {key: load_artifact(path, threads=1) for key, path in plan["files"].items()}
    rounds = {key: [] for key in loaded}
    for _ in range(plan["repeats"]):  # interleaved, so drifting machine load hits every file alike
        for key, art in loaded.items():
            teacher = key.startswith("teacher")
            windows = frames48 if teacher else frames8
            runs = max(3, plan["runs"] // 5) if teacher else plan["runs"]
            rounds[key].append(time_windows(art, windows[rng.permutation(len(windows))], runs=runs, warmup=2))
    latency = {key: {m: float(np.median([r[m] for r in rs])) for m in ("invoke_ms", "frontend_ms", "end_to_end_ms")}
               for key, rs in rounds.items()}
    spec = loaded["sea64-body.int8"].frontend
    with threadpool_limits(limits=1):
        numpy_frontend = {
            "compute_frontend": _median_ms(lambda: compute_frontend(frames8[:1], spec), 300),
            "rfft_stft_only": _median_ms(lambda: np.fft.rfft(np.lib.stride_tricks.sliding_window_view(
                np.pad(frames8[0], 432), 1024)[::160][:50] * np.hanning(1024), axis=-1), 300),
            "mel_filterbank_build": _median_ms(lambda: mel_filterbank(8000, 1024, 64, fmin=0.0, fmax=4000.0, htk=True, norm="slaney"), 300)}
    atomic.write_json(plan["out"], {"latency_ms": latency, "numpy_frontend_ms": numpy_frontend,
                                    "process": {"tensorflow_imported": "tensorflow" in sys.modules,
                                                "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="demo dataset root (default: generate one in a temp dir)")
    parser.add_argument("--student", help="SEA-64 spec (default: edgel3/sea-64 from the weights cache, else the "
                                          "untrained sea-64 preset)")
    parser.add_argument("--teacher", default="l3-mel256-512")
    parser.add_argument("--calibration-windows", type=int, default=400)
    parser.add_argument("--held-out-windows", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=50, help="windows per round (teacher: a fifth of it)")
    parser.add_argument("--out", default=str(RESULTS / "bench_export.json"))
    parser.add_argument("--timing", metavar="PLAN.json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.timing:
        return time_side_by_side(args.timing)
    from export.pipeline import export_file
    from sea_tf.weights import is_cached

    student = args.student or ("edgel3/sea-64" if is_cached("edgel3/sea-64") else "sea-64")
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    data = _data(args.data, work)
    cfg = {"calibration": {"sources": [], "windows": args.calibration_windows, "hop_size": 0.5, "seed": 0},
           "held_out": {"sources": [], "windows": args.held_out_windows, "hop_size": 0.5, "seed": 1},
           "latency": {"runs": 5, "warmup": 1, "threads": 1}}
    cal, held = [data / "upstream"], [data / "audio"]

    start = time.perf_counter()
    s_full = export_file(student, work / "sea64", modes="fp32,dynamic,fp16,int8", calibration=cal, held_out=held,
                         cfg=cfg, progress=True, log=print)
    s_body = export_file(student, work / "sea64-body", modes="fp32,int8", calibration=cal, held_out=held,
                         cfg={**cfg, "placement": "device", "held_out": {**cfg["held_out"], "windows": 20}},
                         progress=False)
    tcfg = {**cfg, "held_out": {**cfg["held_out"], "windows": 10}, "latency": {"runs": 2, "warmup": 1, "threads": 1}}
    t_full = export_file(args.teacher, work / "teacher", modes="fp32", held_out=held, cfg=tcfg, progress=False)
    t_body = export_file(args.teacher, work / "teacher-body", modes="fp32", held_out=held,
                         cfg={**tcfg, "placement": "device"}, progress=False)
    export_s = time.perf_counter() - start

    files = {f"sea64.{a['mode']}": a for a in s_full["artifacts"]}
    files.update({f"sea64-body.{a['mode']}": a for a in s_body["artifacts"]})
    files["teacher.fp32"] = t_full["artifacts"][0]
    files["teacher-body.fp32"] = t_body["artifacts"][0]

    from export.calibration import draw_windows
    frames8, _ = draw_windows(held, 8000, 64, seed=2, hop_size=0.5, allow_partial=False)
    frames48, _ = draw_windows(held, 48000, 16, seed=2, hop_size=0.5, allow_partial=False)
    plan = work / "timing-plan.json"
    atomic.save_npz(work / "frames.npz", frames8=frames8, frames48=frames48)
    atomic.write_json(plan, {"files": {k: a["path"] for k, a in files.items()}, "frames": str(work / "frames.npz"),
                             "repeats": args.repeats, "runs": args.runs, "out": str(work / "timing.json")})
    # Timed in a fresh process that imports neither TensorFlow nor tf_keras, like the board
    # (python -m device.bench): TensorFlow's own thread pools would otherwise share the CPU.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    subprocess.run([sys.executable, __file__, "--timing", str(plan)], check=True, env=env)
    timing = json.loads((work / "timing.json").read_text())
    latency, numpy_frontend = timing["latency_ms"], timing["numpy_frontend_ms"]

    def fid(key):
        a = files[key]
        return {k: a.get(k) for k in ("cosine_mean", "cosine_p5", "cosine_worst", "max_abs_error", "rel_max_abs_error",
                                      "n_windows", "size_bytes", "gzip_bytes", "input_kind")}

    result = {
        "student": student, "student_weights": s_full["model_card"]["weights"]["source"], "teacher": args.teacher,
        "data": str(data),
        "calibration": s_full["calibration"], "held_out": s_full["held_out"],
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "interpreter": s_full["interpreter"], "threads": 1},
        "repeats": args.repeats, "runs": args.runs, "export_wall_s": round(export_s, 1),
        "fidelity": {key: fid(key) for key in files},
        "latency_ms": latency,
        "numpy_frontend_ms": numpy_frontend, "timing_process": timing["process"],
        "targets": {
            "teacher_body_fp32_ms": latency["teacher-body.fp32"]["invoke_ms"],
            "sea64_body_fp32_ms": latency["sea64-body.fp32"]["invoke_ms"],
            "sea64_body_int8_ms": latency["sea64-body.int8"]["invoke_ms"],
            "body_ratio_teacher_fp32_over_sea64_int8": latency["teacher-body.fp32"]["invoke_ms"]
            / latency["sea64-body.int8"]["invoke_ms"],
            "sea64_int8_cosine_mean": files["sea64.int8"]["cosine_mean"],
            "sea64_int8_cosine_p5": files["sea64.int8"]["cosine_p5"],
            "sea64_int8_cosine_worst": files["sea64.int8"]["cosine_worst"],
            "int8_size_over_fp32": files["sea64.int8"]["size_bytes"] / files["sea64.fp32"]["size_bytes"],
            "int8_body_size_over_fp32_body": files["sea64-body.int8"]["size_bytes"]
            / files["sea64-body.fp32"]["size_bytes"],
            "sea64_int8_end_to_end_ms": latency["sea64.int8"]["end_to_end_ms"],
            "teacher_fp32_end_to_end_ms": latency["teacher.fp32"]["end_to_end_ms"],
            "end_to_end_ratio_teacher_fp32_over_sea64_int8": latency["teacher.fp32"]["end_to_end_ms"]
            / latency["sea64.int8"]["end_to_end_ms"],
        },
    }
    atomic.write_json(args.out, result)
    for key, value in result["targets"].items():
        print(f"{key:50s} {value:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
