"""``python -m device.bench``: latency, memory and classifications of exported models on this machine.

Usage::

    python -m device.bench --model EMB.tflite [--classifier CLS.tflite] [--audio FILES...]
                           [--threads N] [--no-xnnpack] [--runs R] [--warmup W] [--hop-size S]
                           [--out-file OUT.json]

Latency is measured per 1-s window on a seeded noise window: W warm-up passes, then R timed passes,
with the numpy front end (which writes the model's quantized input), the network (``set_tensor`` +
``invoke()`` + dequantize), the bare ``invoke()`` and the classifier timed separately and together. Each ``--audio`` file is then framed as the
classifier was evaluated (its card's ``features.framing`` and ``hop_size``, e.g. the L3E windows of
``sea-tf classify us8k``; ``--framing`` overrides), embedded, classified (mean of window
probabilities, then argmax, as in the US8K protocol) and timed per window. A file that fails is
marked failed and the whole result is ``"status": "partial"`` (``"partial": true``); one that fails
mid-stream (a decoder error, a file cut while being read) keeps the windows done, with
``"partial": true`` in its entry. A header that cannot describe the file (a rate outside
1 kHz-384 kHz, more frames than the file holds, a truncated WAV) fails the file before any sample
is read.

``--no-xnnpack`` creates the interpreters without their default XNNPACK delegate
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``); the JSON says which in ``settings.xnnpack`` and
``environment.interpreter`` (``xnnpack``, ``op_resolver``).

The board's state brackets the measurement: ``board.before`` (read before the model is loaded) and
``board.after`` (after the last timed pass) are :func:`device.system.board_facts` (CPU, governor,
``freq_mhz``, ``temperature_c``, thermal zones and their trips, ``vcgencmd get_throttled`` flags,
``notes`` on what this machine does not report). ``board.throttled`` is true when the platform says
so (:func:`device.system.throttling`: a ``vcgencmd`` flag now, or set during the run; a thermal zone
at its passive trip), null when it has no way to say, and ``board.throttle_detail`` lists the
findings (or why it is unknown). A throttled run prints ``THROTTLED: ...`` above the table.

A model without its sidecar is refused: without it the front end, rates and classes are unknown,
and the numbers would be those of the bare network on random input. ``--no-sidecar`` runs it anyway
and says so above the table. ``--progress`` prints ``device.bench: progress ...`` lines on stderr
(what ``sea-tf device run`` shows live for each board).

Exit codes (``sea-tf device run`` tells them apart): 0 complete; 3 partial (the JSON is written);
2 an error the harness reports in one line (a model that cannot be loaded, a bad argument; no JSON);
1 a crash: an uncaught exception, with Python's traceback on stderr.
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# One window at a time: the front end's small matmuls ([50, 513] @ [513, 64]) are 20-50x slower
# when OpenBLAS spreads them over threads that compete with the interpreter (measured: 60 ms ->
# 1.2 ms per window on a loaded 2-core machine). Set before numpy is imported; the user's
# environment wins. The interpreter's own threads are --threads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from device import system  # noqa: E402
from device.audio import AudioStream, resampler_name, stream_windows  # noqa: E402
from device.errors import DeviceError  # noqa: E402
from device.runner import DEFAULT_BATCH, Artifact, load_artifact, sha256_file  # noqa: E402

if TYPE_CHECKING:
    from device.frontends import StreamingFrontend

SCHEMA = "sea-tf/device-bench/1"
#: how ``--audio`` files are cut into windows (the names of sea-tf classify's ``framing``)
FRAMINGS = ("centered", "uncentered", "l3e")
#: seconds between two progress lines (a line per window would flood a slow board's SSH channel)
PROGRESS_EVERY_S = 0.5
#: exit codes; 1 stays Python's own for an uncaught exception, so a crash is never read as a result
EXIT_COMPLETE, EXIT_ERROR, EXIT_PARTIAL = 0, 2, 3


def latency_stats(ms: npt.ArrayLike) -> dict[str, float]:
    """Summary of per-window times.

    Parameters
    ----------
    ms : sequence of float
        Times in milliseconds.

    Returns
    -------
    dict
        ``n``, ``mean``, ``std``, ``min``, ``p50``, ``p90``, ``p99``, ``max`` in ms.
    """
    times = np.asarray(ms, np.float64)
    if times.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"n": int(times.size), "mean": float(times.mean()), "std": float(times.std()), "min": float(times.min()),
            "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(times.max())}


class _Pipeline:
    """Embedding model (+ optional classifier) with every stage timed with ``perf_counter``."""

    def __init__(self, emb: Artifact, cls: Artifact | None) -> None:
        self.emb, self.cls = emb, cls
        self.interp = emb.interpreter
        self._in, self._out = emb._in, emb._out
        self.streaming: StreamingFrontend | None = None
        self._xin = np.empty(emb.input_shape, np.dtype(emb._in["dtype"]))    # the per-window model input
        if not emb.frontend_in_model and emb.frontend is not None and emb.frame_samples:
            from device.frontends import StreamingFrontend

            self.streaming = StreamingFrontend(emb.frontend, emb.frame_samples)
            self._quant = emb.input_quantization
            self._x = np.empty(emb.input_shape, self._quant[2] if self._quant else np.float32)

    def stream_window(self, samples: npt.NDArray[np.float32],
                      start: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None, dict[str, float]]:
        """One window of a stream: the streaming front end writes the model's (quantized) input
        in place, then the network and classifier; returns (embedding, probs, times in ms)."""
        clock = time.perf_counter
        t0 = clock()
        if self.streaming is not None:
            self.streaming(samples, start, quantize=self._quant, out=self._x[0])
            q = self._x
        else:
            q = self.emb.quantize_input(self.emb.batch_of_one(self.emb.features(samples[None])[0]))
        t1 = clock()
        return self._network(q, t0, t1)

    def window(self, frame: npt.NDArray[np.float32] | None, feats: npt.NDArray[np.float32] | None = None
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None, dict[str, float]]:
        """One window through the pipeline; returns (probs or embedding, times in ms)."""
        clock = time.perf_counter
        t0 = clock()
        if feats is not None:
            q = self.emb.quantize_input(self.emb.batch_of_one(feats))
        elif frame is not None:
            # the fused front end writes the model's (quantized) input codes in place
            q = self.emb.model_input(frame[None], out=self._xin)
        else:
            raise ValueError("a window needs its samples or its features")
        t1 = clock()
        return self._network(q, t0, t1)

    def _network(self, q: np.ndarray, t0: float,
                 t1: float) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None, dict[str, float]]:
        """The timed rest of a window from its model input ``q`` (front end ran from ``t0`` to ``t1``):
        network (set, bare ``invoke()``, get), classifier; returns (embedding, probs, times in ms)."""
        clock = time.perf_counter
        self.interp.set_tensor(self._in["index"], q)
        ti0 = clock()
        self.interp.invoke()
        ti1 = clock()
        embedding = self.emb.dequantize_output(self.interp.get_tensor(self._out["index"])).reshape(1, -1)
        t2 = clock()
        probs = self.cls.classify(embedding, batch=1)[0] if self.cls is not None else None
        t3 = clock()
        times = {"frontend": (t1 - t0) * 1e3, "network": (t2 - t1) * 1e3, "invoke": (ti1 - ti0) * 1e3,
                 "classifier": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return embedding[0], probs, times


class Progress:
    """``device.bench: progress <what> <done>/<total>`` lines on stderr, at most every
    :data:`PROGRESS_EVERY_S` seconds and at the end of each stage; silent when not ``enabled``.
    ``sea-tf device run`` parses them (``sea_tf.remote.ssh.PROGRESS_RE``); the total is ``?`` when unknown."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self._last = enabled, 0.0

    def __call__(self, what: str, done: int, total: int | None = None, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (final or now - self._last >= PROGRESS_EVERY_S):
            self._last = now
            print(f"device.bench: progress {what} {done}/{'?' if total is None else total}", file=sys.stderr, flush=True)


def time_synthetic(pipe: _Pipeline, *, runs: int, warmup: int, seed: int, hop_s: float = 0.1,
                   progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """Latency over ``runs`` timed passes after ``warmup`` passes on one seeded noise window."""
    emb = pipe.emb
    rng = np.random.default_rng(seed)
    frame: npt.NDArray[np.float32] | None
    feats: npt.NDArray[np.float32] | None = None
    if emb.frame_samples:
        frame = (0.1 * rng.standard_normal(emb.frame_samples)).astype(np.float32)
        if not emb.frontend_in_model and emb.frontend is None:
            frame, feats = None, rng.standard_normal(emb.input_shape[1:]).astype(np.float32)
    else:  # features model without a sidecar: time the network on random features only
        frame, feats = None, rng.standard_normal(emb.input_shape[1:]).astype(np.float32)
    for _ in range(warmup):
        pipe.window(frame, feats)
    samples: dict[str, list[float]] = {key: [] for key in ("frontend", "network", "invoke", "classifier", "total")}
    for k in range(runs):
        _, _, times = pipe.window(frame, feats)
        for key, value in times.items():
            samples[key].append(value)
        if progress is not None:
            progress("timing", k + 1, runs, final=k + 1 == runs)
    result = {key: latency_stats(values) for key, values in samples.items()}
    result["frontend_streaming"] = time_streaming_frontend(pipe, runs=runs, warmup=warmup, hop_s=hop_s, seed=seed)
    return result


def time_streaming_frontend(pipe: _Pipeline, *, runs: int, warmup: int, hop_s: float, seed: int) -> dict[str, float]:
    """The streaming front end (incl. writing the quantized input) per window of a seeded noise
    stream at ``hop_s``: what ``device.listen`` and ``--audio`` pay instead of ``frontend``."""
    if pipe.streaming is None:
        return {"n": 0}
    emb = pipe.emb
    sample_rate, frame_samples = emb.window_format()      # known: the streaming front end needs them
    hop = max(1, int(round(hop_s * sample_rate)))
    rng = np.random.default_rng(seed + 1)
    stream = (0.1 * rng.standard_normal((runs + warmup) * hop + frame_samples)).astype(np.float32)
    fe, quant, x, clock = pipe.streaming, pipe._quant, pipe._x[0], time.perf_counter
    fe.reset()
    ms: list[float] = []
    for k in range(runs + warmup):
        start = k * hop
        t0 = clock()
        fe(stream[start:start + frame_samples], start, quantize=quant, out=x)
        if k >= warmup:
            ms.append((clock() - t0) * 1e3)
    fe.reset()
    return latency_stats(ms)


def bench_file(pipe: _Pipeline, path: Path | str, hop_s: float, *, center: bool = True, batch: int = DEFAULT_BATCH,
               pad_end: bool = True, progress: Progress | None = None, label: str = "file") -> dict[str, Any]:
    """Embed and classify one audio file window by window (streaming front end); returns its result dict.

    The windows are ``device.audio.stream_windows``' (``center``; ``pad_end=False``: L3E, see
    :func:`framing_for`); each is timed as ``device.listen`` runs it. The file is then embedded
    again offline, at batch 1 and at ``batch`` windows per ``invoke()`` (when the model's batch
    dimension can be resized), for the throughput of each. ``progress(label, windows so far)``
    is told as windows are done.
    """
    emb, cls = pipe.emb, pipe.cls
    start = time.perf_counter()
    sample_rate, frame_samples = emb.window_format()
    # Read, resampled and framed block by block: memory does not grow with the file's length.
    source = AudioStream(path, sample_rate)
    sr, method = source.sr, source.method
    hop = int(round(hop_s * sample_rate))
    if pipe.streaming is not None:
        pipe.streaming.reset()
    per_window: list[dict[str, float]] = []
    probs: list[npt.NDArray[np.float32]] = []
    failure: DeviceError | str | None = None
    try:
        for begin, window in stream_windows(source, frame_samples, hop, center=center, pad_end=pad_end):
            _, p, times = pipe.stream_window(window, begin)
            per_window.append(times)
            if p is not None:
                probs.append(p)
            if progress is not None:
                progress(f"{label} windows", len(per_window))
    except (DeviceError, OSError, RuntimeError, MemoryError) as exc:
        # A source that fails mid-stream: the windows done are kept, the file marked failed and partial.
        failure = exc if isinstance(exc, DeviceError) else f"{type(exc).__name__}: {exc}"
    if progress is not None:
        progress(f"{label} windows", len(per_window), len(per_window), final=True)
    count, duration_s = len(per_window), source.n_source / sr
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {"file": str(path), "status": "ok", "duration_s": duration_s, "sample_rate": sr,
              "resampled": None if method == "none" else {"from": sr, "to": sample_rate, "method": method},
              "n_windows": count, "processing_s": elapsed,
              "real_time_factor": elapsed / duration_s if duration_s else None,
              "latency_ms": {key: latency_stats([t[key] for t in per_window])
                             for key in ("frontend", "network", "classifier", "total")},
              "window_total_ms": [round(t["total"], 4) for t in per_window]}
    if failure is not None:
        result.update(status="failed", partial=True, error=str(failure), offline=None)
        return result
    result["offline"] = offline_throughput(emb, lambda: AudioStream(path, sample_rate), hop, center=center,
                                           batch=batch, pad_end=pad_end)
    if probs:
        mean = np.mean(probs, axis=0)
        best = int(np.argmax(mean))
        names = (cls.classes if cls is not None else None) or [str(i) for i in range(len(mean))]
        result.update({"predicted_index": best, "predicted_class": names[best] if best < len(names) else str(best),
                       "confidence": float(mean[best])})
    return result


def offline_throughput(emb: Artifact, audio: npt.NDArray[np.float32] | Callable[[], Iterable[npt.NDArray[np.float32]]],
                       hop: int, *, center: bool, batch: int, pad_end: bool = True) -> dict[str, Any]:
    """Windows/s of ``Artifact.embed_audio`` (streaming front end + network) at batch 1 and ``batch``.

    ``audio``: mono samples at the model's rate, or a function returning a fresh block stream of
    them (``device.audio.AudioStream``), read once per pass. ``chosen_batch`` is what offline runs
    use on this machine (``Artifact.choose_batch``: the measured faster, cached), and
    ``windows_per_s`` the throughput at it.
    """
    fresh = audio if callable(audio) else (lambda: audio)
    clock = time.perf_counter
    t0 = clock()
    count = len(emb.embed_audio(fresh(), hop, center=center, batch=1, pad_end=pad_end))
    t1 = clock()
    out: dict[str, Any] = {"batch_1_windows_per_s": count / (t1 - t0), "batch": None, "batch_windows_per_s": None}
    batch = emb.batch_size(batch)
    if batch > 1 and emb.batched_interpreter(batch) is not None and count >= batch:
        emb.embed_audio(np.zeros(emb.window_format()[1] * 2, np.float32), hop, center=center, batch=batch)  # warm up
        t2 = clock()
        emb.embed_audio(fresh(), hop, center=center, batch=batch, pad_end=pad_end)
        out.update(batch=batch, batch_windows_per_s=count / (clock() - t2))
    chosen = emb.choose_batch(batch).batch
    out.update(chosen_batch=chosen, windows_per_s=out["batch_windows_per_s"] if chosen > 1 and out["batch"] == chosen
               else out["batch_1_windows_per_s"])
    return out


def framing_for(cls: Artifact | None, *, framing: str = "card", hop_s: float = 0.1) -> dict[str, Any]:
    """How ``--audio`` files are framed: as the classifier's card says it was evaluated, or ``framing``.

    Parameters
    ----------
    cls : Artifact or None
        The classifier; its sidecar's ``model_card.features`` (``framing``, ``hop_size``) is what
        ``sea-tf classify`` recorded.
    framing : {"card", "centered", "uncentered", "l3e"}
        ``card``: the card's framing and hop, else ``centered`` at ``hop_s`` (``sea-tf embed``'s).
    hop_s : float
        Seconds between windows when the card gives none.

    Returns
    -------
    dict
        ``name`` (one of :data:`FRAMINGS`), ``hop_s``, ``source`` (where they came from).
    """
    if framing != "card":
        return {"name": framing, "hop_s": hop_s, "source": "--framing"}
    card = (cls.meta or {}).get("model_card") if cls is not None else None
    features = card.get("features") if isinstance(card, dict) else None
    if cls is not None and isinstance(features, dict) and features.get("framing") in FRAMINGS:
        hop = features.get("hop_size")
        return {"name": features["framing"], "hop_s": float(hop) if hop else hop_s,
                "source": f"classifier card ({cls.path.name})"}
    return {"name": "centered", "hop_s": hop_s, "source": "default (no classifier card with features.framing)"}


def _sidecar_missing(path: Path | str, kind: str) -> DeviceError:
    return DeviceError(f"{path}: no sidecar {Path(path).with_suffix('.json').name} beside the {kind}, so its front end, "
                       "sample rate and classes are unknown and the numbers would be the bare network's on random "
                       "input; copy the sidecar that `sea-tf export` wrote, or pass --no-sidecar to time it anyway")


def run(model: Path | str, *, classifier: Path | str | None = None, audio: Sequence[Path | str] = (), threads: int = 1,
        runs: int = 100, warmup: int = 10, hop_s: float = 0.1, seed: int = 0, label: str | None = None,
        prefer: str | None = None, batch: int = DEFAULT_BATCH, framing: str = "card", no_sidecar: bool = False,
        progress: bool = False, xnnpack: bool = True) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-able result dict (see module docstring).

    ``framing``: see :func:`framing_for`. ``no_sidecar``: run a model or classifier without its
    sidecar (else a :class:`DeviceError`). ``progress``: progress lines on stderr (:class:`Progress`).
    ``xnnpack``: False creates the interpreters without the XNNPACK delegate.
    """
    board_before = system.board_facts()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peak_start = system.peak_rss_mb()
        rss_start = system.current_rss_mb()
        emb = load_artifact(model, threads=threads, kind="embedding", prefer=prefer, xnnpack=xnnpack)
        if emb.meta is None and not no_sidecar:
            raise _sidecar_missing(model, "model")
        cls = load_artifact(classifier, threads=threads, kind="classifier", prefer=prefer,
                            xnnpack=xnnpack) if classifier else None
        if cls is not None and cls.meta is None and not no_sidecar:
            raise _sidecar_missing(str(classifier), "classifier")
        if cls is not None and int(np.prod(cls.input_shape[1:])) != emb.output_size:
            raise DeviceError(f"{classifier}: the classifier takes {int(np.prod(cls.input_shape[1:]))}-d inputs but "
                              f"{model} makes {emb.output_size}-d embeddings; pass the classifier trained on this model")
        peak_loaded = system.peak_rss_mb()
        rss_loaded = system.current_rss_mb()
        pipe = _Pipeline(emb, cls)
        report = Progress(progress)
        latency = time_synthetic(pipe, runs=runs, warmup=warmup, seed=seed, hop_s=hop_s, progress=report)
        frames = framing_for(cls, framing=framing, hop_s=hop_s)
        batch_choice = emb.choose_batch(batch).as_dict()
        files: list[dict[str, Any]] = []
        for k, path in enumerate(audio, 1):
            try:
                files.append(bench_file(pipe, path, frames["hop_s"], center=frames["name"] == "centered",
                                        pad_end=frames["name"] != "l3e", batch=batch, progress=report,
                                        label=f"file {k}/{len(audio)}"))
            except DeviceError as exc:
                files.append({"file": str(path), "status": "failed", "error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - one bad file must not hide the others
                files.append({"file": str(path), "status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        peak_end = system.peak_rss_mb()
    board_after = system.board_facts()
    throttled, throttle_detail = system.throttling(board_before, board_after)
    total_ms = latency["total"]["mean"]
    failed = [f["file"] for f in files if f["status"] != "ok"]
    env = system.environment(emb.interpreter_info)
    return {
        "schema": SCHEMA,
        "status": "partial" if failed else "complete",
        "partial": bool(failed),
        "failed_files": failed,
        "device": label or env["hostname"],
        "model": _describe(emb),
        "classifier": _describe(cls) if cls else None,
        "settings": {"threads": threads, "xnnpack": xnnpack, "runs": runs, "warmup": warmup, "hop_s": hop_s,
                     "seed": seed, "batch": batch},
        # the board's state before loading and after the last timed pass, and whether the platform says it throttled
        "board": {"before": board_before, "after": board_after, "throttled": throttled,
                  "throttle_detail": throttle_detail},
        # batch 1 against --batch-size, timed once per artifact, CPU, threads and XNNPACK setting (cached):
        # what offline runs use here
        "batch_choice": batch_choice,
        # how the --audio files were framed, and why (the classifier's card: the windows its accuracy was measured on)
        "framing": frames,
        # soxr-hq: the workstation's resampler; numpy-fft (soxr missing) changes predictions near clip edges
        "resampler": resampler_name(),
        "load_time_s": {"model": emb.load_time_s, "classifier": cls.load_time_s if cls else None},
        "latency_ms": latency,
        "throughput_windows_per_s": 1e3 / total_ms if total_ms else None,
        # compute time per second of audio when a window is run every hop_s seconds (<1: keeps up)
        "real_time_factor": (total_ms / 1e3) / hop_s if total_ms else None,
        "memory_mb": {"rss_start": rss_start, "rss_after_load": rss_loaded, "peak_start": peak_start,
                      "peak_after_load": peak_loaded, "peak": peak_end,
                      "load_increase": peak_loaded - peak_start, "run_increase": peak_end - peak_loaded},
        "files": files,
        "warnings": sorted({str(w.message) for w in caught}),
        "environment": env,
    }


def _describe(art: Artifact) -> dict[str, Any]:
    size = art.path.stat().st_size
    sidecar = art.path.with_suffix(".json")
    source = (art.meta or {}).get("source")
    return {"path": str(art.path), "name": art.name, "mode": art.mode, "kind": art.kind,
            # the identity sea-tf report joins on: this file, and the model file it was exported from
            "sha256": sha256_file(art.path),
            "source_sha256": source.get("sha256") if isinstance(source, dict) else None,
            "size_bytes": size, "sidecar_bytes": sidecar.stat().st_size if sidecar.exists() else None,
            "has_sidecar": art.meta is not None, "frontend_in_model": art.frontend_in_model,
            "frontend_type": (art.frontend or {}).get("type"), "sample_rate": art.sample_rate,
            "frame_samples": art.frame_samples, "input_shape": list(art.input_shape),
            "input_dtype": str(np.dtype(art._in["dtype"])), "output_size": art.output_size,
            "classes": art.classes}


def format_table(result: dict[str, Any]) -> str:
    """A readable plain-text summary of a result dict."""
    m, env = result["model"], result["environment"]
    bare = [d["name"] for d in (m, result["classifier"]) if d and not d["has_sidecar"]]
    lines = [f"NO SIDECAR (--no-sidecar): {', '.join(bare)} ran without its sidecar: no front end, rates or classes "
             "from the export; the numbers below are the bare network's on random input"] if bare else []
    board = result.get("board") or {}
    if board.get("throttled"):
        lines.append("THROTTLED: " + "; ".join(board["throttle_detail"]) + " (these timings are a throttled board's)")
    lines += [f"sea-tf device bench [{result['status']}] on {result['device']}: {env['cpu_model']} "
             f"({env['architecture']}, {env['cores']} cores), {env['os']}, Python {env['python']}, "
             f"{env['interpreter']['package']} {env['interpreter']['version']}, resampler {result.get('resampler')}",
             f"model      {m['name']} [{m['mode']}] {m['size_bytes'] / 1024:.1f} KiB, load {result['load_time_s']['model'] * 1e3:.1f} ms, "
             f"front end {'in model' if m['frontend_in_model'] else 'numpy'}"]
    if result["classifier"]:
        c = result["classifier"]
        lines.append(f"classifier {c['name']} [{c['mode']}] {c['size_bytes'] / 1024:.1f} KiB, "
                     f"load {result['load_time_s']['classifier'] * 1e3:.1f} ms, {c['output_size']} classes")
    if board:
        lines.append(board_line(board))
    s = result["settings"]
    xnnpack = "XNNPACK" if s.get("xnnpack", True) else "no XNNPACK"
    lines += ["", f"per-window latency (ms), {s['runs']} runs after {s['warmup']} warm-ups, {s['threads']} thread(s), "
                  f"{xnnpack}",
              f"  {'stage':<11}{'mean':>9}{'std':>9}{'p50':>9}{'p90':>9}{'p99':>9}"]
    for key in ("frontend", "frontend_streaming", "network", "invoke", "classifier", "total"):
        st = result["latency_ms"].get(key, {})
        if st.get("n"):
            lines.append(f"  {key[:11]:<11}" + "".join(f"{st[k]:>9.3f}" for k in ("mean", "std", "p50", "p90", "p99")))
    choice = result.get("batch_choice") or {}
    if len(choice.get("ms_per_window", {})) > 1:
        timed = ", ".join(f"batch {b}: {ms:.3f} ms/window" for b, ms in choice["ms_per_window"].items())
        lines.append(f"offline batch {choice['batch']} ({choice['source']}; {timed})")
    mem = result["memory_mb"]
    lines += ["", f"throughput {result['throughput_windows_per_s']:.1f} windows/s; real-time factor "
                  f"{result['real_time_factor']:.3f} at a {s['hop_s']} s hop",
              f"memory: peak RSS {mem['peak']:.1f} MiB (+{mem['load_increase']:.1f} loading, "
              f"+{mem['run_increase']:.1f} running)"]
    if result["files"]:
        fr = result.get("framing") or {}
        lines += ["", f"audio framed {fr.get('name')} every {fr.get('hop_s')} s ({fr.get('source')})",
                  f"  {'file':<40}{'windows':>8}{'ms/win':>9}{'RTF':>8}  prediction"]
        for f in result["files"]:
            name = Path(f["file"]).name[:39]
            if f["status"] != "ok":
                done = f" after {f['n_windows']} windows (kept, partial)" if f.get("partial") else ""
                lines.append(f"  {name:<40}  FAILED{done}: {f['error']}")
                continue
            pred = f"{f['predicted_class']} ({f['confidence']:.2f})" if "predicted_class" in f else "-"
            note = f" [resampled {f['resampled']['from']}->{f['resampled']['to']} Hz, {f['resampled']['method']}]" if f["resampled"] else ""
            lines.append(f"  {name:<40}{f['n_windows']:>8}{f['latency_ms']['total']['mean']:>9.3f}"
                         f"{f['real_time_factor']:>8.3f}  {pred}{note}")
            off = f["offline"]
            if off["batch"]:
                lines.append(f"  {'':<40}offline {off['batch_1_windows_per_s']:.0f} windows/s at batch 1, "
                             f"{off['batch_windows_per_s']:.0f} at batch {off['batch']}")
    for message in result["warnings"]:
        lines.append(f"warning: {message}")
    if result["status"] != "complete":
        lines.append(f"PARTIAL: {len(result['failed_files'])} file(s) failed")
    return "\n".join(lines)


def board_line(board: dict[str, Any]) -> str:
    """One line of the board's state around the run: governor, frequency, hottest temperature before -> after,
    throttling (``board``: the result's ``board`` block)."""
    before, after = board["before"], board["after"]
    freq = after.get("freq_mhz") or {}
    mhz = (f"{freq['cur']:.0f}/{freq['max']:.0f} MHz (now/max)" if freq.get("cur") is not None and freq.get("max")
           else "frequency unknown")
    temps = [f"{t:.1f}" if t is not None else "?" for t in (before.get("temperature_c"), after.get("temperature_c"))]
    temp = f"{temps[0]} -> {temps[1]} °C" if temps != ["?", "?"] else "temperature unknown"
    throttled = {True: "THROTTLED", False: "not throttled", None: "throttling unknown"}[board.get("throttled")]
    return f"board      governor {after.get('governor') or 'unknown'}, {mhz}, {temp}, {throttled}"


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temporary file + rename; ``device/`` has no ``sea_tf.atomic``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Deprecated(argparse._StoreAction):
    """A hidden old spelling that says once, on stderr, which spelling replaced it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.metavar}", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m device.bench`` argument parser (also used by tests that check documented commands)."""
    parser = argparse.ArgumentParser(prog="python -m device.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     allow_abbrev=False)  # --r would otherwise silently be --runs or --rate
    parser.add_argument("--model", required=True, metavar="X.tflite",
                        help="embedding model X.tflite (sidecar X.json beside it)")
    parser.add_argument("--classifier", help="classifier .tflite taking the embeddings")
    parser.add_argument("--audio", action="extend", nargs="+", default=[], metavar="FILE",
                        help="audio files to embed and classify (--audio A B or --audio A --audio B)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--xnnpack", action=argparse.BooleanOptionalAction, default=True,
                        help="run with the interpreter's default XNNPACK delegate (--no-xnnpack: builtin kernels only)")
    parser.add_argument("--runs", type=int, default=100, help="timed passes")
    parser.add_argument("--warmup", type=int, default=10, help="untimed passes first")
    parser.add_argument("--hop-size", dest="hop", type=float, default=0.1, help="seconds between audio windows")
    # The older spelling, hidden: sea-tf spells this idea --hop-size everywhere.
    parser.add_argument("--hop", dest="hop", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        action=_Deprecated, metavar="--hop-size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic timing window")
    parser.add_argument("--batch-size", dest="batch", type=int, default=DEFAULT_BATCH, metavar="N",
                        help="windows per invoke() for the offline throughput of --audio files (1: no batching)")
    parser.add_argument("--batch", dest="batch", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        action=_Deprecated, metavar="--batch-size")
    parser.add_argument("--framing", choices=["card", *FRAMINGS], default="card",
                        help="how --audio files are cut into windows; card: as the classifier's card says it was "
                             "evaluated (its hop too), else centered at --hop-size")
    parser.add_argument("--no-sidecar", action="store_true",
                        help="run a model without its X.json sidecar (no front end: the bare network's numbers)")
    parser.add_argument("--progress", action="store_true", help="progress lines on stderr (for sea-tf device run)")
    parser.add_argument("--label", help="device name in the report (default: hostname)")
    parser.add_argument("--interpreter", choices=["ai-edge-litert", "tflite-runtime", "tensorflow"],
                        help="interpreter package to try first")
    # --out-file, as every sea-tf option naming a file written (`sea-tf models list --json` prints JSON).
    parser.add_argument("--out-file", dest="json", metavar="FILE.json", help="write the result here as JSON")
    parser.add_argument("--json", dest="json", default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        action=_Deprecated, metavar="--out-file")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 (complete), 3 (partial) or 2 (error); see the module docstring."""
    args = build_parser().parse_args(argv)
    try:
        if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.hop <= 0 or args.batch < 1:
            raise DeviceError("--runs, --threads and --batch-size must be >= 1, --warmup >= 0 and --hop-size > 0")
        result = run(args.model, classifier=args.classifier, audio=args.audio, threads=args.threads, runs=args.runs,
                     warmup=args.warmup, hop_s=args.hop, seed=args.seed, label=args.label,
                     prefer=args.interpreter, batch=args.batch, framing=args.framing,
                     no_sidecar=args.no_sidecar, progress=args.progress, xnnpack=args.xnnpack)
        if args.json:
            write_json(args.json, result)
    except DeviceError as exc:
        print(f"device.bench: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"device.bench: error: {exc}; check the paths and free disk space", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(format_table(result))
    if result["status"] != "complete":
        print(f"device.bench: {len(result['failed_files'])} audio file(s) failed; the result is partial",
              file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_COMPLETE


if __name__ == "__main__":
    sys.exit(main())
