"""Every sea-tf path beside its bare anchor, in one run: one JSON and the table of docs/PERFORMANCE.md (issue 23).

Each row times a sea-tf path and an anchor that does the same work with no sea-tf code around it,
in the same process tree and in interleaved rounds (sea-tf block, anchor block, order swapped every
other round), so both see the same machine load; a row's figure is the median over rounds of each
round's median, and its ratio compares the two figures. Targets are ratios, never absolute times
(but for reduce apply's rows/s, which the issue sets as an absolute goal).

(a) body ``invoke`` per export mode: ``device.runner.Artifact.run_batch`` (set, invoke, get,
    dequantize) vs a bare ``Interpreter.invoke()``; SEA-64 in every mode, the teacher in fp32 and int8.
(b) audio → embedding per mode and front-end placement: ``Artifact.embed_frames(window, batch=1)``
    vs (the fastest body's bare ``invoke`` + a bare ``np.fft.rfft`` front end written below).
(c) ``device.listen`` per window at hop 0.1 s: ``Listener.window`` vs (streaming front end + bare
    ``invoke``).
(d) teacher-embed: ``sea_tf.teacher.extract_files`` on a few files vs bare ``model.keras.predict`` on
    the same windows (windows/s).
(e) distillation: ``sea-tf distill``'s own loop (``scale_probes.train_steps``) vs a bare Keras ``fit``
    of the same model, batch and dtype on in-memory arrays (steps/s); the input pipeline's own rate
    (``scale_probes.input_pipeline``) against training's.
(f) ``reduce apply`` (512 → PCA 64, 1,024-row shards) vs a bare numpy ``(x - mean) / std @ W`` over
    the same HDF5 rows (rows/s).

The device rows (a–c) run in a child process with numpy + LiteRT only (as on a board, 1 thread,
``OPENBLAS_NUM_THREADS=1``); the models are exported here by ``export.export_file`` (the SEA-64
published weights when ``../shared/models`` or the weights cache has them, else the untrained preset:
same graph and cost). The load average is recorded before and after; when it exceeded
``--max-load`` (1.5 per 2 cores) the JSON says ``load_too_high`` and docs/PERFORMANCE.md is not
written (exit status 3).

    .venv/bin/python benchmarks/bench_all.py                       # ≈ 5 min on 2 idle cores
    .venv/bin/python benchmarks/bench_all.py --quick --out-file /tmp/b.json --docs-out /tmp/P.md --no-load-check
"""
from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SEA64_FILE = ROOT.parent / "shared" / "models" / "edgel3_sea_ust_audio_emb_64.h5"
TEACHER = "l3-mel256-512"
HOP_S = 0.1                       # device.listen's hop
LISTEN_WINDOWS = 600              # windows of the synthetic stream device.listen walks through
CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}   # as device.bench sets them

#: Per mode of run: rounds, the target length of one timed block (ms), SEA-64 export modes, and the
#: sizes of the host rows. The full run stays under ~6 min on 2 idle cores, --quick under ~1 min.
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"rounds": 9, "block_ms": 120.0, "sea_modes": ["fp32", "dynamic", "fp16", "int8", "int16x8"],
             "sea_inside": ["fp32", "fp16"], "teacher": True, "teacher_files": 3, "teacher_seconds": 5.0,
             "teacher_rounds": 3,
             "distill_rounds": 3, "distill_steps": 6, "distill_skip": 3, "distill_rows": 1024,
             "reduce_rows": 32768, "reduce_rounds": 5},
    "quick": {"rounds": 3, "block_ms": 15.0, "sea_modes": ["fp32", "int8"], "sea_inside": ["fp32"],
              "teacher": False, "teacher_files": 1, "teacher_seconds": 2.0, "teacher_rounds": 1,
              "distill_rounds": 1, "distill_steps": 2, "distill_skip": 1, "distill_rows": 320,
              "reduce_rows": 4096, "reduce_rounds": 2},
}

#: Targets (issue 23 and, for device.listen, issue 16): ratio of a row's figures, and which way.
TARGETS: dict[str, tuple[str, float, str]] = {
    "harness": ("<=", 1.05, "harness ≤ 5 % over bare invoke"),
    "end_to_end": ("<=", 1.10, "fastest path ≤ 1.10 × (fastest body + bare rFFT STFT)"),
    "listen": ("<=", 1.15, "device.listen window ≤ 1.15 × (streaming front end + bare invoke)"),
    "distill": (">=", 0.9, "distill steps/s ≥ 0.9 × bare Keras fit"),
    "pipeline": (">=", 10.0, "input pipeline ≥ 10 × training's rows/s"),
    "reduce": (">=", 0.8, "reduce apply ≥ 0.8 × bare numpy"),
    "reduce_rows": (">=", 100_000.0, "reduce apply ≥ 100 k rows/s"),
}


# ---------------------------------------------------------------------------------------------
# Machine, versions, load
# ---------------------------------------------------------------------------------------------
def cpu_info() -> dict[str, Any]:
    """CPU model, core count and the SIMD flags the kernels use (from /proc/cpuinfo when present)."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in (platform.processor(), platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return {"model": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in wanted}}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": np.__version__}
    for key, dist in (("tensorflow", "tensorflow"), ("tf_keras", "tf-keras"), ("litert", "ai-edge-litert")):
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def load_limit(per_two_cores: float) -> float:
    """The 1-min load average above which figures are noise: ``per_two_cores`` on 2 cores, scaled by core count."""
    return per_two_cores * (os.cpu_count() or 2) / 2


def git_commit() -> str | None:
    """The checkout's commit, ``+`` when tracked files differ from it."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def display_path(path: Path | str) -> str:
    """``path`` relative to the repository when inside it (what the docs page names), else as given."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------------------------------------
# Interleaved rounds
# ---------------------------------------------------------------------------------------------
def calls_per_block(fn: Callable[[], object], block_ms: float) -> int:
    """How many calls of ``fn`` fill one ``block_ms`` block (after two warm-up calls), 5 to 200."""
    fn()
    start = time.perf_counter()
    fn()
    one_ms = 1e3 * (time.perf_counter() - start)
    return int(min(200, max(5, round(block_ms / max(one_ms, 1e-3)))))


def block_median_ms(fn: Callable[[], object], n: int) -> float:
    """Median wall time of ``n`` consecutive calls of ``fn``, in ms."""
    clock, times = time.perf_counter, []
    for _ in range(n):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return 1e3 * statistics.median(times)


def interleave(groups: Sequence[Sequence[tuple[str, Callable[[], object]]]], rounds: int,
               block_ms: float) -> dict[str, list[float]]:
    """Per-round medians (ms) of every timed call, the calls of a group run back to back.

    A group holds a sea-tf path and its anchor(s); within a round the group's blocks run in turn,
    in reverse order every other round, so neither side always runs first (warm caches, turbo).
    """
    sizes = {key: calls_per_block(fn, block_ms) for group in groups for key, fn in group}
    out: dict[str, list[float]] = {key: [] for key in sizes}
    for r in range(rounds):
        for group in groups:
            for key, fn in (group if r % 2 == 0 else list(reversed(group))):
                out[key].append(block_median_ms(fn, sizes[key]))
    return out


def rates_in_rounds(sides: dict[str, Callable[[], object]], rounds: int, amount: int) -> dict[str, list[float]]:
    """``amount`` / wall time (items/s) of one call of each side per round, the order reversed every other round."""
    rates: dict[str, list[float]] = {key: [] for key in sides}
    for r in range(rounds):
        for key, fn in (list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))):
            start = time.perf_counter()
            fn()
            rates[key].append(amount / (time.perf_counter() - start))
    return rates


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ---------------------------------------------------------------------------------------------
# Device side (child process: numpy + LiteRT only)
# ---------------------------------------------------------------------------------------------
def bare_rfft_frontend(spec: dict[str, Any], n_samples: int, *,
                       mel_db: bool) -> Callable[[npt.NDArray[np.float32]], np.ndarray]:
    """A front end written bare: one ``np.fft.rfft`` over all windowed frames and the power; then,
    with ``mel_db``, a dense mel matmul and the dB step.

    Without ``mel_db`` it is the issue's anchor, the bare rFFT STFT (power ``[T, n_dft/2+1]``): a
    fused front end's mel and dB steps should cost little beside it. With ``mel_db`` it computes
    the whole image (``[F, T]`` dB), as a hand-written script would, for reference. Float32
    throughout; the constants (Hann window, filterbank, padding) come from ``device.frontends`` at
    set-up only, so only the arithmetic is timed.
    """
    from device.frontends import mel_filterbank, padding_amounts, periodic_hann

    n_dft, hop = int(spec["n_dft"]), int(spec["n_hop"])
    front, back, count = padding_amounts(n_samples, n_dft, hop, spec["padding"])
    window = periodic_hann(n_dft).astype(np.float32)
    fb = mel_filterbank(int(spec["sr"]), n_dft, int(spec.get("n_mels") or 128), fmin=float(spec.get("fmin", 0.0)),
                        fmax=spec.get("fmax"), htk=bool(spec.get("htk", True)), norm=spec.get("norm", "slaney"))
    fb = np.asarray(fb, np.float32)
    padded = np.zeros(front + n_samples + back, np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_dft)[::hop][:count]

    def run(x: npt.NDArray[np.float32]) -> np.ndarray:
        padded[front:front + n_samples] = x
        spectrum = np.fft.rfft(frames * window, axis=-1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        if not mel_db:
            return power
        db = power @ fb
        np.maximum(db, np.float32(1e-20), out=db)
        np.log10(db, out=db)
        db *= np.float32(5.0)                      # 10·log10(sqrt(power @ fb))
        db -= db.max()
        np.maximum(db, np.float32(-80.0), out=db)
        return db.T

    return run


class Cycle:
    """Each call returns the next of ``items`` (first axis), round and round."""

    def __init__(self, items: np.ndarray) -> None:
        self.items, self.k = items, 0

    def __call__(self) -> np.ndarray:
        self.k = (self.k + 1) % len(self.items)
        return self.items[self.k]


def chained(outer: Callable[[Any], object], inner: Callable[[], Any]) -> Callable[[], object]:
    """``outer(inner())`` as a zero-argument call."""
    return lambda: outer(inner())


def listen_pair(art: Any, stream: npt.NDArray[np.float32], hop: int,
                key: str) -> list[tuple[str, Callable[[], object]]]:
    """``Listener.window`` and its anchor (streaming front end into the input tensor + bare ``invoke``).

    Each side walks the stream window by window at ``hop`` (so the streaming front end reuses the
    frames consecutive windows share), wrapping round after :data:`LISTEN_WINDOWS` windows.
    """
    from device.frontends import StreamingFrontend
    from device.listen import Listener

    n = art.window_format()[1]
    listener, fe = Listener(art), StreamingFrontend(art.frontend or {}, n)
    quant, x = art.input_quantization, np.empty(art.input_shape, np.dtype(art._in["dtype"]))
    interp, index = art.interpreter, art._in["index"]
    at = {"listen": 0, "anchor": 0}

    def window(side: str) -> tuple[npt.NDArray[np.float32], int]:
        k = at[side] = (at[side] + 1) % LISTEN_WINDOWS
        return stream[k * hop:k * hop + n], k * hop

    def listen_one() -> object:
        return listener.window(*window("listen"))

    def anchor_one() -> object:
        fe(*window("anchor"), quantize=quant, out=x[0])
        interp.set_tensor(index, x)
        interp.invoke()
        return x

    return [(f"{key}|window", listen_one), (f"{key}|streaming_plus_invoke", anchor_one)]


def device_groups(plan: dict[str, Any]) -> list[list[tuple[str, Callable[[], object]]]]:
    """The timed calls of rows (a)-(c), grouped sea-tf path beside its anchors."""
    from device.runner import load_artifact

    rng = np.random.default_rng(0)
    groups: list[list[tuple[str, Callable[[], object]]]] = []
    for model in plan["models"]:
        name = model["name"]
        bodies = {mode: load_artifact(path, threads=1) for mode, path in model["body"].items()}
        any_body = next(iter(bodies.values()))
        sr, n = any_body.window_format()
        windows = (0.05 * rng.standard_normal((8, n)) + 0.3 * np.sin(
            2 * np.pi * rng.uniform(100, 0.4 * sr, (8, 1)) * np.arange(n) / sr)).astype(np.float32)
        groups.append([(f"{name}|frontend|{key}", chained(bare_rfft_frontend(any_body.frontend or {}, n, mel_db=mel_db),
                                                           Cycle(windows)))
                       for key, mel_db in (("bare_rfft_stft", False), ("bare_rfft_mel_db", True))])
        for mode, art in bodies.items():                         # (a) body invoke
            q = art.quantize_input(art.features(windows[:1]))
            interp, index = art.interpreter, art._in["index"]
            interp.set_tensor(index, q)
            groups.append([(f"{name}|{mode}|body|harness", functools.partial(art.run_batch, q)),
                           (f"{name}|{mode}|body|bare", interp.invoke)])
        for placement, paths in (("device", model["body"]), ("inside", model["inside"])):   # (b) audio → embedding
            for mode, path in paths.items():
                art = bodies[mode] if placement == "device" else load_artifact(path, threads=1)
                groups.append([(f"{name}|{mode}|{placement}|end_to_end",
                                chained(functools.partial(art.embed_frames, batch=1), Cycle(windows[:, None])))])
        if not model["listen"]:
            continue
        hop = int(round(HOP_S * sr))
        stream = (0.1 * rng.standard_normal(LISTEN_WINDOWS * hop + n)).astype(np.float32)
        for mode, art in bodies.items():                         # (c) device.listen per window
            groups.append(listen_pair(art, stream, hop, f"{name}|{mode}|listen"))
    return groups


def device_child(plan_path: str) -> int:
    """Child process: run rows (a)-(c) of the plan and print their per-round medians as JSON."""
    plan = json.loads(Path(plan_path).read_text())
    rounds = interleave(device_groups(plan), plan["rounds"], plan["block_ms"])
    print(json.dumps(rounds))
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side: artifacts, host rows
# ---------------------------------------------------------------------------------------------
def sea64_model(spec: str | None) -> tuple[Any, str]:
    """``spec``; None: the published SEA-64 when its weights are here, else the untrained preset (same cost)."""
    from sea_tf.models import build_student, load_model

    if spec is not None:
        return load_model(spec), spec
    if SEA64_FILE.is_file():
        return load_model(SEA64_FILE), f"published weights ({SEA64_FILE.name})"
    try:
        return load_model("edgel3/sea-64"), "published weights (edgel3/sea-64, weights cache)"
    except Exception:  # noqa: BLE001 - not cached and no network: the preset has the same cost
        return build_student("sea-64"), "untrained preset sea-64 (same graph and cost)"


def noise_windows(model: Any, count: int, seed: int) -> npt.NDArray[np.float32]:
    """``count`` seeded windows of noise + a tone at the model's rate (calibration and held-out)."""
    rng = np.random.default_rng(seed)
    sr, n = model.sample_rate, model.frame_samples
    t = np.arange(n) / sr
    return (0.05 * rng.standard_normal((count, n))
            + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 0.4 * sr, (count, 1)) * t)).astype(np.float32)


def export_models(model: Any, out: Path, body_modes: Sequence[str], inside_modes: Sequence[str],
                  calibration: int) -> dict[str, dict[str, str]]:
    """``export.export_file`` twice: every mode's body (placement device), and the modes that carry the front end."""
    from export import export_file

    cal = noise_windows(model, calibration, seed=0)
    held = noise_windows(model, 2, seed=1)
    paths: dict[str, dict[str, str]] = {}
    for placement, modes, sub in (("device", body_modes, "body"), ("auto", inside_modes, "inside")):
        paths[sub] = {}
        if not modes:
            continue
        summary = export_file(model, out / sub, modes=list(modes), calibration=cal, held_out=held, progress=False,
                              cfg={"placement": placement, "latency": {"runs": 2, "warmup": 1, "threads": 1}})
        paths[sub] = {a["mode"]: a["path"] for a in summary["artifacts"]}
    return paths


def device_rows(work: Path, settings: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Export the models, then time rows (a)-(c) in a child process."""
    from sea_tf.models import load_model

    sea, sea_source = sea64_model(settings["sea64"])
    models: list[dict[str, Any]] = [{"name": "SEA-64", "source": sea_source, "listen": True,
               **export_models(sea, work / "sea64", settings["sea_modes"], settings["sea_inside"], 16)}]
    if settings["teacher"]:
        teacher = load_model(TEACHER)
        models.append({"name": "teacher mel256", "source": f"untrained preset {TEACHER} (same graph and cost)",
                       "listen": False, **export_models(teacher, work / "teacher", ["fp32", "int8"], ["fp32"], 4)})
    log(f"exported {sum(len(m['body']) + len(m['inside']) for m in models)} artifacts; timing the device rows")
    plan = {"models": models, "rounds": settings["rounds"], "block_ms": settings["block_ms"]}
    plan_path = work / "device_plan.json"
    plan_path.write_text(json.dumps(plan))
    proc = subprocess.run([sys.executable, __file__, "--device-child", str(plan_path)], cwd=ROOT, env=CHILD_ENV,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"device child failed:\n{proc.stderr[-3000:]}")
    return {"models": [{k: m[k] for k in ("name", "source")} for m in models],
            "rounds": json.loads(proc.stdout.strip().splitlines()[-1])}


def teacher_rows(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """(d) ``extract_files`` on a few files vs bare ``model.keras.predict`` on the same windows (windows/s)."""
    import soundfile as sf

    from bench_teacher_embed import make_audio
    from sea_tf import config
    from sea_tf.audio import prepare_frames
    from sea_tf.models import load_model
    from sea_tf.teacher import extract_files

    # Two instances of the same network: Keras retraces predict for every new batch shape, and the
    # stage's blocks have other shapes than the anchor's one batch; apart, each traces once, untimed.
    model, bare_model = load_model(TEACHER), load_model(TEACHER)
    audio = work / "teacher_audio"
    audio.mkdir(parents=True, exist_ok=True)
    make_audio(audio, settings["teacher_files"], seconds=settings["teacher_seconds"])
    cfg = config.load("teacher", input=str(audio), progress=False)
    frames = []
    for path in sorted(audio.glob("*.wav")):
        x, sr = sf.read(path, dtype="float32")
        frames.append(prepare_frames(x, sr, model.sample_rate, hop_size=cfg["hop_size"], center=cfg["center"])[0])
    windows = np.concatenate(frames)
    keys = ("hop_size", "center", "student_sample_rate", "shard_rows", "batch_size", "recursive", "compression",
            "decode_workers", "prefetch_blocks", "block_windows", "read_retries", "read_backoff_s", "retry_failed",
            "resampler")
    options = {k: cfg[k] for k in keys}

    def extract() -> dict[str, Any]:
        out = work / "teacher_out"
        shutil.rmtree(out, ignore_errors=True)
        return extract_files(audio, out, model, shard="0/1", progress=False, **options)

    def predict() -> object:
        return bare_model.keras.predict(windows, batch_size=cfg["batch_size"], verbose=0)

    summary = extract()                      # warm-up: traces the teacher, as the predict warm-up below
    predict()
    rates = rates_in_rounds({"extract": extract, "predict": predict}, settings["teacher_rounds"], len(windows))
    return {"teacher": TEACHER, "files": settings["teacher_files"], "seconds_per_file": settings["teacher_seconds"],
            "windows": int(len(windows)), "extract_rows": int(summary["n_rows"]), "batch_size": cfg["batch_size"],
            "rounds": rates}


def fit_pca64(shards: Path, root: Path, rows: int) -> None:
    """``sea-tf sample`` (random, half the rows) then ``sea-tf reduce fit`` (PCA 64) into ``root/reducer``."""
    from sea_tf import config
    from sea_tf.reduce import fit
    from sea_tf.sampling import sample

    sample(config.load("sampling", shards=[str(shards)], out=str(root / "sample"), m=min(20000, rows // 2),
                       strategy="random", progress=False))
    fit(config.load("reduce/fit", shards=[str(shards)], sample=str(root / "sample"), out=str(root / "reducer"), d=64,
                    progress=False, quality={"enabled": False}))


def synthetic_distill_data(work: Path, rows: int) -> SimpleNamespace:
    """Teacher shards with 1-s 8 kHz audio, a PCA 64 reducer fitted on them and its targets."""
    from bench_distill import synthetic_pairs
    from sea_tf import config
    from sea_tf.reduce import apply

    synthetic_pairs(work, rows, 64)
    fit_pca64(work / "shards", work, rows)
    apply(config.load("reduce/apply", reducer=str(work / "reducer"), shards=[str(work / "shards")],
                      out=str(work / "targets_pca"), progress=False))
    return SimpleNamespace(shards=[str(work / "shards")], targets=str(work / "targets_pca"),
                           reducer=str(work / "reducer"))


def bare_fit_steps(data: SimpleNamespace, batch: int, steps: int, skip: int) -> Callable[[], float]:
    """A callable timing a bare Keras ``fit`` of distill's training model on in-memory arrays (steps/s).

    The same network (``student.build`` + ``training_model``), optimizer, loss, batch and float32
    as ``sea-tf distill``; the rows are read from the shards once, before any timing.
    """
    import h5py

    from sea_tf.backend import keras
    from sea_tf import config
    from sea_tf.distill import student as student_mod
    from sea_tf.shards import ShardSet

    shards = ShardSet(data.shards, targets=data.targets)
    audio, target = [], []
    for i, info in enumerate(shards.shards):
        with h5py.File(info.path, "r") as fa, h5py.File(shards.target_path(i), "r") as ft:
            audio.append(fa["audio"][:])
            target.append(ft["target"][:])
    n = (skip + steps + 1) * batch
    x = np.resize(np.concatenate(audio), (n, audio[0].shape[1])).astype(np.float32)
    y = np.resize(np.concatenate(target), (n, target[0].shape[1])).astype(np.float32)
    cfg = config.load("distill", "sea-64")      # the preset scale_probes.train_steps runs
    student_cfg = cfg["student"]
    # the student's settings as distill passes them (student.head is new in session 5: absent before)
    head = {"head": student_cfg["head"]} if "head" in student_cfg else {}
    student = student_mod.build(student_cfg["preset"], overrides=student_cfg["overrides"], **head,
                                d=y.shape[1], frame_samples=x.shape[1], seed=int(cfg["seed"]))
    model, _ = student_mod.training_model(student, mixed_precision=False)
    model.compile(optimizer=keras.optimizers.Adam(float(cfg["train"]["learning_rate"])), loss="mse",
                  metrics=["mae"])

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            self.ends.append(time.perf_counter())

    def run() -> float:
        clock = Clock()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        timed = clock.ends[skip:]
        return (len(timed) - 1) / (timed[-1] - timed[0])

    return run


def distill_rows(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """(e) distill's loop vs a bare Keras fit (steps/s), and the input pipeline's rows/s."""
    from scale_probes import input_pipeline, train_steps

    data = synthetic_distill_data(work / "distill", settings["distill_rows"])
    steps, skip = settings["distill_steps"], settings["distill_skip"]
    probe = SimpleNamespace(**vars(data), d=64, steps=steps + skip + 1, skip=skip, batch_size=64)
    rounds: dict[str, list[float]] = {"distill_steps_per_s": [], "bare_fit_steps_per_s": [], "pipeline_rows_per_s": []}
    batch = 0
    bare: Callable[[], float] | None = None
    for r in range(settings["distill_rounds"]):
        probe.out = str(work / "distill" / f"run{r}")
        trained = train_steps(probe)
        batch = int(trained["global_batch"])
        bare = bare or bare_fit_steps(data, batch, steps, skip)
        if bare is not None and r == 0:
            bare()                                        # warm-up: traces the train function once
        rounds["distill_steps_per_s"].append(trained["steps_per_s"])
        rounds["bare_fit_steps_per_s"].append(bare())
        probe.batch_size = batch
        rounds["pipeline_rows_per_s"].append(input_pipeline(probe)["rows_per_s"])
    return {"student": "sea-64", "batch": batch, "dtype": "float32", "rows": settings["distill_rows"],
            "timed_steps": steps, "skipped_steps": skip, "rounds": rounds}


def reduce_rows(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """(f) ``reduce apply`` vs bare numpy ``(x - mean) / std @ W`` over the same HDF5 rows (rows/s)."""
    import h5py
    from threadpoolctl import threadpool_limits

    from bench_reduce import write_rows
    from sea_tf import config
    from sea_tf.reduce import Reducer, apply
    from sea_tf.shards import ShardSet

    root, n_rows = work / "reduce", settings["reduce_rows"]
    write_rows(root / "shards", n_rows, shard_rows=1024)
    fit_pca64(root / "shards", root, n_rows)
    reducer = Reducer.load(root / "reducer")
    scaler, pca = reducer.scaler, reducer.model
    if scaler is None or pca is None:
        raise RuntimeError(f"{root / 'reducer'}: expected a scaler + PCA reducer")
    mean, std = np.asarray(scaler.mean_, np.float32), np.asarray(scaler.scale_, np.float32)
    w = np.asarray(pca.components_.T, np.float32)
    bias = np.asarray(pca.mean_, np.float32) @ w
    paths = [info.path for info in ShardSet(root / "shards").shards]
    # Each timed call writes a fresh folder (deleting the last one's 100 files inside the timing cost
    # as much as the transform); the folders go after the rounds.
    cfgs = iter([config.load("reduce/apply", reducer=str(root / "reducer"), shards=[str(root / "shards")],
                             out=str(root / f"targets-{i}"), progress=False)
                 for i in range(settings["reduce_rounds"] + 1)])

    def sea() -> object:
        return apply(next(cfgs))

    def bare() -> object:
        # One BLAS thread, as `reduce apply` runs its product (two threads were 3x slower under load).
        with threadpool_limits(1):
            out = None
            for path in paths:
                with h5py.File(path, "r") as fh:
                    x = fh["embedding"][:]
                out = ((x - mean) / std) @ w - bias
        return out

    sea()
    bare()
    rates = rates_in_rounds({"apply": sea, "bare_numpy": bare}, settings["reduce_rounds"], n_rows)
    for folder in root.glob("targets-*"):
        shutil.rmtree(folder, ignore_errors=True)
    chunk_rows = config.load("reduce/apply")["chunk_rows"]
    return {"rows": n_rows, "dim": 512, "d": 64, "shard_rows": 1024, "chunk_rows": chunk_rows, "rounds": rates}


# ---------------------------------------------------------------------------------------------
# Rows, ratios, targets
# ---------------------------------------------------------------------------------------------
def row(section: str, what: str, sea: float, anchor: float, unit: str, anchor_what: str,
        target: str | None = None, value: float | None = None) -> dict[str, Any]:
    """One table row: medians of per-round medians, their ratio, and the target it is held to."""
    ratio = sea / anchor if anchor else float("nan")
    out: dict[str, Any] = {"section": section, "what": what, "sea_tf": round(sea, 4), "anchor": round(anchor, 4),
                           "unit": unit, "anchor_is": anchor_what, "ratio": round(ratio, 4), "target": None,
                           "met": None}
    if target is not None:
        op, bound, text = TARGETS[target]
        checked = ratio if value is None else value
        out["target"] = {"key": target, "op": op, "value": bound, "text": text}
        out["met"] = bool(checked <= bound if op == "<=" else checked >= bound)
    return out


def device_table(device: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (a)-(c) from the child's per-round medians."""
    med = {key: median(values) for key, values in device["rounds"].items()}
    rows: list[dict[str, Any]] = []
    for model in device["models"]:
        name = model["name"]
        keys = [parts for k in med if k.startswith(name + "|") and len(parts := k.split("|")) == 4]
        bare = {m: med[f"{name}|{m}|body|bare"] for _, m, kind, _ in keys if kind == "body"}
        fastest = min(bare, key=lambda m: bare[m])
        stft = med[f"{name}|frontend|bare_rfft_stft"]
        anchor = bare[fastest] + stft
        mel_db = med[f"{name}|frontend|bare_rfft_mel_db"]
        for mode in bare:
            rows.append(row("a", f"{name} body {mode}: harness vs bare invoke", med[f"{name}|{mode}|body|harness"],
                            bare[mode], "ms", "bare invoke", target="harness"))
        e2e = {(m, p): med["|".join((name, m, p, "end_to_end"))] for _, m, p, k in keys if k == "end_to_end"}
        best = min(e2e, key=lambda mp: e2e[mp])
        for (mode, placement), ms in e2e.items():
            rows.append(row("b", f"{name} audio → embedding, {mode}, front end {placement}"
                            + (" (fastest)" if (mode, placement) == best else ""), ms, anchor, "ms",
                            f"{fastest} body + bare rFFT STFT ({stft:.3f} ms; with mel + dB {mel_db:.3f})",
                            target="end_to_end" if (mode, placement) == best else None))
        for mode in bare:
            key = f"{name}|{mode}|listen|window"
            if key in med:
                rows.append(row("c", f"{name} device.listen window, {mode}", med[key],
                                med[f"{name}|{mode}|listen|streaming_plus_invoke"], "ms",
                                "streaming front end + bare invoke", target="listen"))
    return rows


def host_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "teacher_embed" in results:
        t = results["teacher_embed"]["rounds"]
        rows.append(row("d", f"teacher-embed ({results['teacher_embed']['windows']} windows)", median(t["extract"]),
                        median(t["predict"]), "windows/s", "bare model.predict"))
    if "distill" in results:
        d = results["distill"]
        s, b = median(d["rounds"]["distill_steps_per_s"]), median(d["rounds"]["bare_fit_steps_per_s"])
        rows.append(row("e", f"distill training, batch {d['batch']}", s, b, "steps/s", "bare Keras fit",
                        target="distill"))
        pipe = median(d["rounds"]["pipeline_rows_per_s"])
        rows.append(row("e", "distill input pipeline vs training", pipe, s * d["batch"], "rows/s",
                        "distill training rows/s", target="pipeline"))
    if "reduce" in results:
        r = results["reduce"]["rounds"]
        a, b = median(r["apply"]), median(r["bare_numpy"])
        rows.append(row("f", "reduce apply 512 → PCA 64", a, b, "rows/s", "bare numpy (x - mean) / std @ W",
                        target="reduce"))
        rows.append(row("f", "reduce apply rows/s (absolute goal)", a, b, "rows/s", "bare numpy",
                        target="reduce_rows", value=a))
    return rows


# ---------------------------------------------------------------------------------------------
# docs/PERFORMANCE.md
# ---------------------------------------------------------------------------------------------
def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| | path | sea-tf | anchor | unit | anchor is | ratio | target | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        target = f"{r['target']['op']} {r['target']['value']:g}" if r["target"] else "—"
        met = "—" if r["met"] is None else ("✓" if r["met"] else "✗")
        lines.append(f"| {r['section']} | {r['what']} | {r['sea_tf']:.4g} | {r['anchor']:.4g} | {r['unit']} | "
                     f"{r['anchor_is']} | {r['ratio']:.3f} | {target} | {met} |")
    return "\n".join(lines)


def render_docs(result: dict[str, Any]) -> str:
    """The whole of docs/PERFORMANCE.md from one run's JSON."""
    env, cpu = result["environment"], result["environment"]["cpu"]
    flags = ", ".join(f for f, on in cpu["flags"].items() if on) or "none of the listed"
    met = [r for r in result["rows"] if r["met"] is not None]
    missed = [r for r in met if not r["met"]]
    verdict = ("every target is met." if not missed else
               "missed: " + "; ".join(f"{r['what']} ({r['ratio']:.3f}, target {r['target']['op']} "
                                      f"{r['target']['value']:g})" if r["target"]["key"] != "reduce_rows" else
                                      f"{r['what']} ({r['sea_tf']:.0f} rows/s, target ≥ 100 k)"
                                      for r in missed) + ".")
    models = "; ".join(f"{m['name']}: {m['source']}" for m in result.get("device", {}).get("models", []))
    return f"""# Performance: each sea-tf path beside its bare anchor

Written by `benchmarks/bench_all.py` (issue 23) from `{result['out_file']}`; do not edit by hand — re-run
`.venv/bin/python benchmarks/bench_all.py` on an idle machine (it refuses to write this page when the
1-min load average exceeds {result['load']['limit']:g} on this machine's {cpu['cores']} cores).

## What is measured, and how
Every row times a sea-tf path and a bare anchor doing the same work, in one process tree and in
interleaved rounds ({result['settings']['rounds']} device rounds; the sea-tf block and the anchor block
alternate, their order swapped every other round), so both see the same load. A figure is the median
over rounds of each round's median (rows d–f: one timed pass a side a round, so the median over
rounds); the ratio is sea-tf / anchor. Targets are ratios (the issue's), never absolute times — but for
reduce apply's 100 k rows/s.

- **(a) body `invoke`**: `Artifact.run_batch` (set, invoke, get, dequantize) vs a bare
  `Interpreter.invoke()`, 1 thread, per export mode (`export.export_file`, placement `device`).
- **(b) audio → embedding**: `Artifact.embed_frames(window, batch=1)` per mode and front-end placement
  (numpy front end on the device, or inside the `.tflite`) vs the fastest body's bare `invoke` + a bare
  `np.fft.rfft` STFT written in the script (float32: all windowed frames in one rFFT, then the power);
  the same with a dense mel matmul and the dB step is shown beside it.
- **(c) `device.listen`**: `Listener.window` at hop {HOP_S} s vs the streaming front end + bare `invoke`.
- **(d) teacher-embed**: `sea_tf.teacher.extract_files` on a few files vs bare `model.keras.predict`
  on the same windows (no target: reported).
- **(e) distillation**: `sea-tf distill`'s loop (first steps skipped) vs a bare Keras `fit` of the same
  model, batch and float32 on in-memory arrays; the input pipeline's rows/s against training's.
- **(f) reduce apply** (512 → PCA 64, 1,024-row shards, {result.get('reduce', {}).get('rows', '—')} rows) vs bare
  numpy `(x - mean) / std @ W` over the same HDF5 rows (read + transform, no write).

Models: {models or 'none'}.

## Machine
{cpu['model']}, {cpu['cores']} cores; flags: {flags}. Python {env['versions']['python']}, numpy
{env['versions']['numpy']}, TensorFlow {env['versions']['tensorflow']}, LiteRT {env['versions']['litert']}.
Commit {result['commit']}, {result['started']}; {result['mode']} run, {result['wall_s']:.0f} s. Load average
(1, 5, 15 min) before {result['load']['before']}, after {result['load']['after']}.

## Results
{markdown_table(result['rows'])}

**Targets**: {verdict}

## GPU
No GPU was lent to this session: the distillation figures are CPU only; mixed-precision training on a
GPU (issue 23 item 5) is not measured here.
"""


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out-file", default=str(ROOT / "benchmarks" / "results" / "bench_all.json"))
    parser.add_argument("--docs-out", default=str(ROOT / "docs" / "PERFORMANCE.md"))
    parser.add_argument("--quick", action="store_true", help="a smoke run (≤ 1 min): fewer modes, rounds and rows")
    parser.add_argument("--rounds", type=int, help="device rounds (default 7; --quick 3)")
    parser.add_argument("--sections", default="device,teacher,distill,reduce",
                        help="comma-separated subset of device,teacher,distill,reduce")
    parser.add_argument("--max-load", type=float, default=1.5,
                        help="1-min load average per 2 cores above which docs are not written (default 1.5)")
    parser.add_argument("--no-load-check", action="store_true", help="write the docs whatever the load (tests)")
    parser.add_argument("--sea64", help="SEA-64 model spec (default: the published weights when present, else the "
                        "untrained preset sea-64)")
    parser.add_argument("--work", help="scratch directory (default: a temporary one, deleted)")
    parser.add_argument("--device-child", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device_child:
        return device_child(args.device_child)
    mode = "quick" if args.quick else "full"
    settings = {**SETTINGS[mode], **({"rounds": args.rounds} if args.rounds else {}), "sea64": args.sea64}
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    start, before = time.perf_counter(), load_average()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    result: dict[str, Any] = {"format": "sea-tf-bench-all/1", "mode": mode, "settings": settings,
                              "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
                              "out_file": display_path(args.out_file),
                              "environment": {"cpu": cpu_info(), "versions": versions(),
                                              "platform": platform.platform()}}
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_all_"))
    steps: list[tuple[str, str, str, Callable[[Path, dict[str, Any]], dict[str, Any]]]] = [
        ("device", "device", "(a-c) device rows: exporting the models", lambda w, st: device_rows(w, st, log)),
        ("teacher", "teacher_embed", "(d) teacher-embed vs bare predict", teacher_rows),
        ("distill", "distill", "(e) distill vs bare Keras fit", distill_rows),
        ("reduce", "reduce", "(f) reduce apply vs bare numpy", reduce_rows)]
    errors: dict[str, str] = {}
    try:
        for section, key, message, measure in steps:
            if section in sections:
                log(message)
                try:
                    result[key] = measure(work, settings)
                except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others' figures
                    errors[section] = f"{type(exc).__name__}: {exc}"
                    log(f"{section} failed: {errors[section]}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    result["errors"] = errors
    result["rows"] = (device_table(result["device"]) if "device" in result else []) + host_table(result)
    after = load_average()
    limit = load_limit(args.max_load)
    too_high = max(before[0], after[0]) > limit and not args.no_load_check
    result["load"] = {"before": before, "after": after, "limit": limit, "checked": not args.no_load_check}
    result["load_too_high"] = too_high
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["targets_met"] = all(r["met"] for r in result["rows"] if r["met"] is not None)
    out = Path(args.out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown_table(result["rows"]))
    log(f"wrote {out}")
    if errors:
        print(f"sections failed ({', '.join(errors)}): not writing {args.docs_out}")
        return 1
    if too_high:
        print(f"load average {max(before[0], after[0]):.2f} > {limit:g}: not writing {args.docs_out} "
              "(figures are noise)")
        return 3
    Path(args.docs_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.docs_out).write_text(render_docs(result))
    log(f"wrote {args.docs_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
