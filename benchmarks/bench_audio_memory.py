"""Peak memory of framing a long recording: whole-file (before) vs block streaming (after), host and board.

Each measurement runs in a fresh subprocess and reports its peak resident set (``VmHWM`` of
``/proc/self/status``) minus the peak after its imports, so only the audio path is counted:

- ``host-whole``: ``load_audio`` → ``to_mono`` → ``resample`` → ``frame_audio`` at 48 kHz and 8 kHz,
  what ``sea-tf teacher-embed`` held per file before (times ``prefetch_files``);
- ``host-stream``: :func:`sea_tf.audio.stream_windows` at 48 kHz and 8 kHz, the blocks teacher-embed
  consumes now;
- ``teacher-embed``: :func:`sea_tf.teacher.extract` end to end with an 8 kHz teacher
  (``--teacher``, default the untrained SEA-64 preset, cheap enough for an hour of audio on 2 cores);
  this counts TensorFlow's own growth over its first predict calls, which a 10-s file never makes;
- ``teacher-embed-warm``: the same after 60 predict calls on noise before the baseline, so the
  difference is the audio path and the shard buffers (``shard_rows`` rows, up to 3 shards in flight);
- ``device-whole``: ``device.audio`` ``load_audio`` → ``resample`` → ``frame_audio`` at 8 kHz, hop
  0.1 s: what ``Artifact.embed_audio`` materialised for ``device.bench --audio`` before;
- ``device-stream``: ``device.audio.AudioStream`` → ``stream_windows``, as ``device.bench`` reads now.

Files: a 10-s and a 1-hour 48 kHz recording (and a 15-min one for the flatness check), an hour at
8 kHz; generated (seeded noise, 16-bit WAV) into a temporary directory, ~0.5 GB of disk.

    .venv/bin/python benchmarks/bench_audio_memory.py --out benchmarks/results

About 8 minutes on 2 cores (the hour of teacher-embed dominates; ``--skip-embed`` leaves it out;
``--modes teacher-embed --skip-15min`` measures just the teacher-embed figure).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# What each child runs after its imports; it prints {"peak_mb", "base_mb", "windows"} as JSON.
_CHILD = r'''
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
mode, path = sys.argv[2], sys.argv[3]
warnings.simplefilter("ignore")
import numpy as np
import soundfile, soxr

def peak_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

windows = 0
if mode.startswith("host") or mode.startswith("teacher-embed"):
    from sea_tf import audio
    if mode.startswith("teacher-embed"):
        from sea_tf import config
        from sea_tf.models import load_model
        from sea_tf.teacher import extract_files
        teacher = load_model(sys.argv[4])
        cfg = config.load("teacher", hop_size=0.5, progress=False)
        if mode == "teacher-embed-warm":
            # TensorFlow's own growth over its first predict calls, with no audio at all.
            noise = np.random.default_rng(0).standard_normal((32, teacher.sample_rate)).astype(np.float32)
            for _ in range(60):
                teacher.embed_frames(noise, batch_size=32)
        base = peak_mb()
        summary = extract_files(path, sys.argv[5], teacher, **{key: value for key, value in cfg.items()
                                                               if key not in ("input", "out", "teacher")})
        windows = summary["n_rows"]
    else:
        base = peak_mb()
        if mode == "host-whole":
            x, sr = audio.load_audio(path)
            x = audio.to_mono(audio.check_audio(x))
            for rate in (48000, 8000):
                frames, _ = audio.frame_audio(audio.resample(x, sr, rate), rate, hop_size=0.5)
                windows += len(frames)
        else:
            for block in audio.stream_windows(path, [48000, 8000], hop_size=0.5):
                windows += 2 * len(block.timestamps)
else:
    from device import audio
    base = peak_mb()
    if mode == "device-whole":
        x, sr = audio.load_audio(path)
        x, _ = audio.resample(x, sr, 8000)
        windows = len(audio.frame_audio(x, 8000, 800, center=True))
    else:
        for _, window in audio.stream_windows(audio.AudioStream(path, 8000), 8000, 800, center=True):
            windows += 1
print(json.dumps({"peak_mb": peak_mb(), "base_mb": base, "windows": windows}))
'''


MODES = ("host-stream", "host-whole", "teacher-embed", "teacher-embed-warm", "device-stream", "device-whole")


def write_noise(path, seconds, sr, seed=0, chunk_s=60):
    """A seeded noise + tone recording, written a minute at a time (never held whole)."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as out:
        done = 0
        total = int(seconds * sr)
        while done < total:
            n = min(int(chunk_s * sr), total - done)
            t = (done + np.arange(n)) / sr
            out.write((0.1 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
            done += n


def measure(mode, path, *extra):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), mode, str(path), *map(str, extra)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode:
        raise SystemExit(f"{mode} on {path} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update(mode=mode, file=Path(path).name, delta_mb=round(out["peak_mb"] - out["base_mb"], 1),
               wall_s=round(time.perf_counter() - start, 2))
    print(f"{mode:14s} {Path(path).name:18s} peak {out['peak_mb']:8.1f} MB  (+{out['delta_mb']:7.1f} MB over "
          f"imports)  {out['windows']} windows  {out['wall_s']} s", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="sea-64", help="teacher for the teacher-embed rows (8 kHz is cheap)")
    parser.add_argument("--skip-embed", action="store_true", help="leave out the teacher-embed rows")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated subset of {','.join(MODES)} (e.g. teacher-embed: quicker)")
    parser.add_argument("--skip-15min", action="store_true", help="leave out the 15-min file (the flatness check)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if args.skip_embed:
        modes = [m for m in modes if not m.startswith("teacher-embed")]
    long48 = ["10s_48k"] + ([] if args.skip_15min else ["15min_48k"]) + ["1h_48k"]

    work = Path(tempfile.mkdtemp(prefix="bench_audio_memory_"))
    rows = []
    try:
        files = {"10s_48k": (10, 48000), "15min_48k": (900, 48000), "1h_48k": (3600, 48000), "1h_8k": (3600, 8000)}
        needed = set(long48) if any(not m.startswith("device") for m in modes) else set()
        needed |= {"1h_8k"} if any(m.startswith("device") for m in modes) else set()
        paths = {}
        for name, (seconds, sr) in files.items():
            if name not in needed:
                continue
            directory = work / name
            directory.mkdir()
            paths[name] = directory / f"{name}.wav"
            write_noise(paths[name], seconds, sr)
        for mode in ("host-stream", "host-whole"):
            for name in long48 if mode in modes else ():
                rows.append(measure(mode, paths[name]))
        if "teacher-embed" in modes:
            for name in long48:
                rows.append(measure("teacher-embed", paths[name].parent, args.teacher, work / f"shards_{name}"))
        if "teacher-embed-warm" in modes:
            for name in ("10s_48k", "1h_48k"):
                rows.append(measure("teacher-embed-warm", paths[name].parent, args.teacher, work / f"warm_{name}"))
        for mode in ("device-stream", "device-whole"):
            if mode in modes:
                rows.append(measure(mode, paths["1h_8k"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def delta(mode, name):
        return next((r["delta_mb"] for r in rows if r["mode"] == mode and r["file"].startswith(name)), None)

    summary = {}
    for mode in ("host-stream", "host-whole", "teacher-embed", "teacher-embed-warm"):
        if delta(mode, "1h_48k") is not None:
            summary[mode] = {"one_hour_over_10s_mb": round(delta(mode, "1h_48k") - delta(mode, "10s_48k"), 1)}
            if delta(mode, "15min_48k") is not None:
                summary[mode]["one_hour_over_15min_mb"] = round(delta(mode, "1h_48k") - delta(mode, "15min_48k"), 1)
    for mode in ("device-stream", "device-whole"):
        if delta(mode, "1h_8k") is not None:
            summary[mode] = {"one_hour_8k_mb": delta(mode, "1h_8k")}
    result = {"benchmark": "audio_memory", "cores": os.cpu_count(), "rows": rows, "summary": summary,
              "note": "delta_mb = peak RSS (VmHWM) minus the peak after imports (and model load), per subprocess",
              "targets": {"teacher-embed one hour over 10 s": "<= 100 MB"}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from sea_tf import atomic
    atomic.write_json(out / "bench_audio_memory.json", result)
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'bench_audio_memory.json'}")


if __name__ == "__main__":
    main()
