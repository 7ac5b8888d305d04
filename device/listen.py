"""``python -m device.listen``: an exported model on a live audio source, window by window, in real time.

Usage::

    python -m device.listen --model EMB.tflite [--classifier C.tflite] [--source SRC] [--hop-size 0.1]
                            [--duration S] [--realtime] [--jsonl OUT.jsonl] [--embeddings OUT.npy]
                            [--threads N] [--trigger CLASS:P[:N]] [--rate HZ --channels N]

``SRC`` is ``default`` (the default microphone), a PortAudio device name or index (``pulse``,
``hw:1,0``, ``2``), a WAV/FLAC file (as fast as possible, or paced with ``--realtime``) or ``-``
(raw 16-bit little-endian PCM on stdin, with ``--rate`` and ``--channels``). The audio is
downmixed, resampled to the model's rate and cut into windows k = ``[k*hop, k*hop + 1 s)`` of the
stream, each run as soon as its last sample arrives (no centring: the windows of
``sea-tf embed --no-centering --hop-size H`` on the whole file). The front end, when it is not in
the model, is ``device.frontends.StreamingFrontend`` (frames shared by consecutive windows are
computed once) writing the model's quantized input directly.

Output: per window a JSON line ``{"t": end of the window in s, "top": [[class, p], ...],
"latency_ms": capture to result, "compute_ms": front end + networks}`` (``"embedding"`` with
``--with-embedding``); ``--trigger`` adds ``{"event": "onset"|"offset", ...}`` lines; the last line is
``{"event": "summary", ...}`` (windows, real-time factor, latency percentiles, overruns, dropped
samples, peak RSS, CPU %), also printed as text on stderr. A live status line is shown on stderr
when it is a terminal. Ctrl-C or SIGTERM stops cleanly with the summary. Exit codes: 0 done,
1 the source failed mid-stream or ended before ``--duration`` (the summary of what was processed,
``"partial": true``; ``--embeddings`` holds the windows done, under its own name), 2 nothing
could start (bad model, source or arguments).

Reading order: :class:`Trigger` (onset/offset events), :class:`Listener` (the models on one
window), :class:`ListenSession` (one session: its :meth:`~ListenSession.emit`,
:meth:`~ListenSession.status` and :meth:`~ListenSession.summary`), :func:`main` (arguments, signals,
exit codes).
"""
import argparse
import array
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TextIO

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # see device/bench.py
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from device import system  # noqa: E402
from device.errors import ArtifactError, DeviceError, SourceError  # noqa: E402
from device.runner import Artifact, load_artifact  # noqa: E402
from device.stream import Source, StreamResampler, WindowRing, open_source  # noqa: E402

if TYPE_CHECKING:
    from device.frontends import StreamingFrontend

SCHEMA = "sea-tf/device-listen/1"
STATUS_EVERY_S = 0.25


class _Stop(Exception):
    """Raised in the main thread by a second Ctrl-C / SIGTERM: stop now."""


#: Set by the first Ctrl-C / SIGTERM (or the end of stdin with --until-stdin-closes): the stream
#: stops at the next block, so no JSON line is cut in half, and the summary is written.
STOP = threading.Event()
_SOURCES: list[Source] = []


def parse_trigger(text: str, classes: Sequence[str] | None) -> tuple[int, str, float, int]:
    """``CLASS:P[:N]`` → (class index, class name, threshold P, windows N)."""
    parts = str(text).rsplit(":", 2) if str(text).count(":") >= 2 else str(text).rsplit(":", 1)
    try:
        name, p = parts[0], float(parts[1])
        n = int(parts[2]) if len(parts) > 2 else 1
    except (IndexError, ValueError):
        raise DeviceError(f"--trigger {text}: expected CLASS:P[:N], e.g. dog_bark:0.6:3") from None
    if not 0.0 < p < 1.0 or n < 1:
        raise DeviceError(f"--trigger {text}: P must lie in (0, 1) and N be >= 1")
    if not classes:
        raise DeviceError(f"--trigger {text}: a trigger needs --classifier (class probabilities)")
    if name in classes:
        return classes.index(name), name, p, n
    if name.isdigit() and int(name) < len(classes):
        return int(name), classes[int(name)], p, n
    raise DeviceError(f"--trigger {text}: unknown class {name!r}; the classifier's classes are {', '.join(classes)}")


class Trigger:
    """Onset when a class's probability stays >= P for N windows; offset after N windows below P."""

    def __init__(self, index: int, name: str, threshold: float, windows: int) -> None:
        self.index, self.name, self.threshold, self.windows = index, name, threshold, windows
        self.active, self.run, self.peak = False, 0, 0.0
        self.since = 0.0          # end time of the first window of the current run (set as a run begins)

    def update(self, t: float, probs: npt.NDArray[np.float32]) -> dict[str, Any] | None:
        """Feed one window (end time ``t`` s); returns an event dict or None."""
        p = float(probs[self.index])
        above = p >= self.threshold
        if above != self.active:
            self.run += 1
            if self.run == 1:
                self.since = t
        else:
            self.run = 0
        if self.active:
            self.peak = max(self.peak, p)
        if self.run < self.windows:
            return None
        self.active, self.run = above, 0
        event = {"event": "onset" if above else "offset", "class": self.name, "t": round(t, 4),
                 "since": round(self.since, 4), "p": round(p, 4), "threshold": self.threshold}
        if not above:
            event["peak"] = round(self.peak, 4)
        self.peak = p if above else 0.0
        return event

    def close(self, t: float) -> dict[str, Any] | None:
        """The offset of an event still open when the stream ends (None if none is)."""
        if not self.active:
            return None
        self.active = False
        return {"event": "offset", "class": self.name, "t": round(t, 4), "since": round(t, 4), "p": None,
                "threshold": self.threshold, "peak": round(self.peak, 4), "end_of_stream": True}


class Listener:
    """An embedding model (+ classifier) on consecutive windows of one stream.

    Parameters
    ----------
    emb : device.runner.Artifact
        Embedding model; its sidecar must give the front end when the model takes features.
    cls : device.runner.Artifact, optional
        Classifier taking ``emb``'s embeddings.
    """

    def __init__(self, emb: Artifact, *, cls: Artifact | None = None) -> None:
        self.sample_rate, self.frame_samples = emb.window_format()
        if not emb.frontend_in_model and emb.frontend is None:
            raise ArtifactError(f"{emb.path}: the model takes front-end features but its sidecar "
                                f"{emb.path.with_suffix('.json').name} has no 'frontend' entry, so audio cannot be turned "
                                "into its input; re-export the model with `sea-tf export`")
        if cls is not None and int(np.prod(cls.input_shape[1:])) != emb.output_size:
            raise ArtifactError(f"{cls.path}: the classifier takes {int(np.prod(cls.input_shape[1:]))}-d inputs but "
                                f"{emb.path.name} makes {emb.output_size}-d embeddings; pass the classifier trained "
                                "on this model")
        self.emb, self.cls = emb, cls
        self.frontend: StreamingFrontend | None = None
        if not emb.frontend_in_model and emb.frontend is not None:      # (None was refused above)
            from device.frontends import StreamingFrontend

            self.frontend = StreamingFrontend(emb.frontend, self.frame_samples)
            self._quant = emb.input_quantization
            dtype = self._quant[2] if self._quant else np.float32
            self._x = np.empty(emb.input_shape, dtype)            # the interpreter's input, written in place
        self.classes: list[str] | None = (cls.classes or [str(i) for i in range(cls.output_size)]) if cls is not None else None

    def window(self, samples: npt.NDArray[np.float32],
               start: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Embedding and class probabilities (None without a classifier) of one window."""
        emb = self.emb
        if self.frontend is not None:
            self.frontend(samples, start, quantize=self._quant, out=self._x[0])
            embedding = emb.run_batch(self._x)[0]
        else:
            embedding = emb.run_one(samples)
        probs = self.cls.classify(embedding[None], batch=1)[0] if self.cls is not None else None
        return embedding, probs


class _Recorder:
    """Everything a run accumulates, in fixed-size or compact storage (flat memory over hours)."""

    def __init__(self, embeddings_path: str | None, dim: int) -> None:
        self.latency, self.compute = array.array("f"), array.array("f")
        self.windows = 0
        self.rss_first_minute: float | None = None
        self._emb_path = embeddings_path
        self._emb_part: IO[bytes] | None = None
        if embeddings_path:
            sweep_stale(embeddings_path)
            # named by this process, so that a later run can tell a killed writer's rows from a live one's
            self._part = f"{embeddings_path}.{os.getpid()}.part"
            self._emb_part = open(self._part, "wb")
        self.dim = dim

    def add(self, latency_ms: float, compute_ms: float, embedding: npt.NDArray[np.float32]) -> None:
        self.latency.append(latency_ms)
        self.compute.append(compute_ms)
        self.windows += 1
        if self._emb_part is not None:
            self._emb_part.write(np.ascontiguousarray(embedding, np.float32).tobytes())

    def save_embeddings(self) -> str | None:
        """Write the ``[K, D]`` float32 ``.npy`` from the rows streamed to ``OUT.npy.<pid>.part``."""
        if self._emb_part is None or not self._emb_path:      # (both set together, or neither)
            return None
        self._emb_part.close()
        part, tmp = self._part, f"{self._emb_path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out, open(part, "rb") as rows:
            np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False,
                                                       "shape": (self.windows, self.dim)})
            while True:
                chunk = rows.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        os.replace(tmp, self._emb_path)     # a reader never sees a header without its rows
        os.unlink(part)
        return self._emb_path


def sweep_stale(path: Path | str) -> list[str]:
    """Remove ``PATH.<pid>.part`` / ``.tmp`` files left by writers that were killed (their pid is gone).

    A SIGKILL (the OOM killer, a power cut of the SSH session's process group) leaves them behind;
    a live writer's (another listen on the same output) are kept. Returns the paths removed.
    """
    import glob

    removed = []
    for stale in glob.glob(glob.escape(str(path)) + ".*.part") + glob.glob(glob.escape(str(path)) + ".*.tmp"):
        pid = stale.rsplit(".", 2)[-2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue                                   # alive (or another user's): not ours to remove
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            os.unlink(stale)
            removed.append(stale)
        except FileNotFoundError:
            pass
    if removed:
        print(f"device.listen: removed {len(removed)} temporary file(s) of killed runs: {', '.join(removed)}",
              file=sys.stderr)
    return removed


def _stats(values: array.array) -> dict[str, float]:
    from device.bench import latency_stats

    return latency_stats(np.frombuffer(values, np.float32) if len(values) else [])


class ListenSession:
    """One listening session: the models on one source, window by window, until the source ends.

    The constructor loads the models, checks the triggers and the hop, and opens the source (what
    can fail before any audio: a :class:`DeviceError` raised here means exit code 2). :meth:`run`
    streams: each block is resampled and pushed into the window ring, :meth:`emit` runs the windows
    it completes and writes their JSON lines (and trigger events), :meth:`status` keeps the live
    line on a terminal, and :meth:`summary` is the last line. A failure mid-stream ends in the
    summary too (``"partial": true``), never a traceback.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``python -m device.listen`` arguments (:func:`build_parser`).
    out : text file
        Where the JSON lines go.
    status_stream : text file, optional
        Where the live status line goes when it is a terminal (``None``: nowhere).
    """

    def __init__(self, args: argparse.Namespace, out: TextIO, *, status_stream: TextIO | None = sys.stderr) -> None:
        self.args, self.out, self.status_stream = args, out, status_stream
        self.emb = load_artifact(args.model, threads=args.threads, kind="embedding")
        self.cls = load_artifact(args.classifier, threads=args.threads, kind="classifier") if args.classifier else None
        self.listener = Listener(self.emb, cls=self.cls)
        self.triggers = [Trigger(*parse_trigger(t, self.listener.classes)) for t in args.trigger]
        self.sr, self.frame = self.listener.sample_rate, self.listener.frame_samples
        self.hop = int(round(args.hop * self.sr))
        if self.hop < 1:
            raise DeviceError(f"--hop-size {args.hop}: shorter than one sample at {self.sr} Hz")
        self.source = open_source(args.source, self.sr, rate=args.rate, channels=args.channels, realtime=args.realtime)
        _SOURCES.append(self.source)
        try:
            self.resampler = StreamResampler(self.source.sample_rate, self.sr)
        except DeviceError:
            self.source.close()
            raise
        self.ring = WindowRing(self.frame, self.hop)
        self.rec = _Recorder(args.embeddings, self.emb.output_size)
        self.code = 0
        self.error: DeviceError | None = None
        self.clock = time.perf_counter
        self.cpu0, self.wall0 = os.times(), self.clock()
        self.stop_reason = "end of source"
        self.live = status_stream is not None and status_stream.isatty()
        self.last_status = 0.0
        self.top_now = "-"
        self.gap_until = -1     # windows starting before this model-rate stream index include dropped audio
        self.processed_s = 0.0

    def run(self) -> tuple[dict[str, Any], int]:
        """Stream until the source ends, ``--duration`` is reached or a stop is asked; write the summary.

        Returns
        -------
        summary : dict
            The last JSON line (see :meth:`summary`).
        code : int
            0 done, 1 the source failed mid-stream or ended before ``--duration``.
        """
        try:
            self._stream()
        except (KeyboardInterrupt, _Stop):
            self.stop_reason = "interrupted"
        except DeviceError as exc:
            self.code, self.error = 1, exc
            self.stop_reason = "error"
        except (OSError, RuntimeError, MemoryError, ValueError) as exc:
            # Whatever stops the stream half-way (a decoder error, the disk, memory) still ends with the
            # summary and the outputs of the windows done, marked partial, never a traceback.
            self.code, self.error = 1, SourceError(f"--source {self.args.source}: the stream failed after "
                                                   f"{self.processed_s:.2f} s ({type(exc).__name__}: {exc})")
            self.stop_reason = "error"
        finally:
            self.source.close()
        if self.live and self.status_stream is not None:
            self.status_stream.write("\n")
        t_end = self.ring.next_k and ((self.ring.next_k - 1) * self.hop + self.frame) / self.sr
        for trig in self.triggers:
            event = trig.close(t_end)
            if event:
                self.out.write(json.dumps(event) + "\n")
        summary = self.summary()
        self.out.write(json.dumps(summary) + "\n")
        self.out.flush()
        return summary, self.code

    def _stream(self) -> None:
        """The blocks of the source through the resampler and the ring; the end of the stream."""
        args, sr, ring, source, resampler = self.args, self.sr, self.ring, self.source, self.resampler
        limit = int(round(args.duration * sr)) if args.duration else None
        done = False
        for block in source.blocks():
            if block.dropped:                                   # keep the time axis: zeros where audio was lost
                zeros = resampler(np.zeros((block.dropped, source.channels), np.float32))
                self.gap_until = ring.end + len(zeros) + self.frame
                self.emit(ring.push(zeros), block.arrival)
            samples = resampler(block.samples)
            if limit is not None and ring.end + len(samples) >= limit:
                samples, done = samples[:max(limit - ring.end, 0)], True
            self.processed_s = (ring.end + len(samples)) / sr
            self.emit(ring.push(samples), block.arrival)
            if done:
                self.stop_reason = "duration reached"
                break
            if STOP.is_set():
                break
        if STOP.is_set() and not done:
            self.stop_reason = "interrupted"
        elif not done:
            tail = resampler(np.zeros((0, source.channels), np.float32), last=True)
            if limit is not None:
                tail = tail[:max(limit - ring.end, 0)]
            self.emit(ring.push(tail), self.clock())
            self.processed_s = ring.end / sr
            if source.kind == "file" or limit is None:
                if ring.end:                                     # the last windows of the offline framing
                    self.emit(ring.push(np.zeros(ring.tail_padding(), np.float32)), self.clock())
            if limit is not None and self.processed_s * sr < limit:
                self.code = 1
                self.error = SourceError(f"--source {args.source}: the source ended after {self.processed_s:.2f} s "
                                         f"of the {args.duration:g} s asked (--duration)")
            elif source.kind == "microphone":
                self.code = 1
                self.error = SourceError(f"--source {args.source}: the input device stopped delivering audio; check "
                                         "that it is still connected")

    def emit(self, windows: Iterable[tuple[int, int, npt.NDArray[np.float32]]], arrival: float) -> None:
        """Run ``windows`` (``(k, start, samples)`` from the ring) and write their JSON lines and events.

        ``arrival``: ``time.perf_counter()`` when the block that completed them arrived (the start
        of each window's capture-to-result latency).
        """
        args, listener, classes, out = self.args, self.listener, self.listener.classes, self.out
        for k, start, samples in windows:
            t_end = (start + self.frame) / self.sr
            t0 = self.clock()
            embedding, probs = listener.window(samples, start)
            t1 = self.clock()
            compute_ms, latency_ms = (t1 - t0) * 1e3, (t1 - arrival) * 1e3
            self.rec.add(latency_ms, compute_ms, embedding)
            line: dict[str, Any] = {"t": round(t_end, 4), "k": k, "latency_ms": round(latency_ms, 3),
                                    "compute_ms": round(compute_ms, 3)}
            if probs is not None and classes is not None:
                best = np.argsort(probs)[::-1][:args.top]
                line["top"] = [[classes[i], round(float(probs[i]), 4)] for i in best]
                self.top_now = f"{classes[best[0]]} {probs[best[0]]:.2f}"
            if start < self.gap_until:
                line["gap"] = True
            if args.with_embedding:
                line["embedding"] = [round(float(v), 5) for v in embedding]
            out.write(json.dumps(line) + "\n")
            if probs is not None:           # triggers exist only with a classifier (parse_trigger)
                for trig in self.triggers:
                    event = trig.update(t_end, probs)
                    if event:
                        out.write(json.dumps(event) + "\n")
            out.flush()
            self.status(t1, t_end)
            if self.rec.rss_first_minute is None and t_end >= 60.0:
                self.rec.rss_first_minute = system.current_rss_mb()

    def status(self, now: float, t_end: float) -> None:
        """The live line on a terminal (time, top class, real-time factor, losses), every :data:`STATUS_EVERY_S`."""
        if not self.live or self.status_stream is None or now - self.last_status <= STATUS_EVERY_S:
            return
        self.last_status = now
        elapsed = now - self.wall0
        source = self.source
        self.status_stream.write(f"\r{t_end:8.1f} s  {self.top_now:<28} RTF "
                                 f"{sum(self.rec.compute) / 1e3 / max(self.processed_s, 1e-9):.3f}"
                                 f"  overruns {source.overruns}  dropped {source.dropped / source.sample_rate:.2f} s"
                                 f"  ({elapsed:.0f} s)   ")
        self.status_stream.flush()

    def summary(self) -> dict[str, Any]:
        """The ``{"event": "summary", ...}`` dict of the session; call once, at the end.

        It also finishes the ``--embeddings`` file (the rows streamed so far become the ``.npy``).
        """
        emb, cls, rec, source, listener, args = self.emb, self.cls, self.rec, self.source, self.listener, self.args
        error = self.error
        cpu1, wall = os.times(), self.clock() - self.wall0
        cpu0 = self.cpu0
        compute_total_s = float(np.sum(np.frombuffer(rec.compute, np.float32), dtype=np.float64)) / 1e3 if rec.windows else 0.0
        audio_s = self.processed_s
        return {
            "schema": SCHEMA, "event": "summary",
            "status": "error" if error else "complete", "stopped_by": self.stop_reason,
            "error": str(error) if error else None,
            # the outputs (JSON lines, --embeddings) cover only part of the source
            "partial": error is not None,
            "windows": rec.windows, "audio_s": round(audio_s, 4), "wall_s": round(wall, 4), "hop_s": args.hop,
            # compute per second of audio (<1: the board keeps up); wall/audio as well for paced sources
            "real_time_factor": compute_total_s / audio_s if audio_s else None,
            "wall_per_audio": wall / audio_s if audio_s else None,
            "latency_ms": {"capture_to_result": _stats(rec.latency), "compute": _stats(rec.compute)},
            "overruns": source.overruns, "dropped_samples": source.dropped,
            "dropped_s": source.dropped / source.sample_rate,
            "memory_mb": {"peak_rss": system.peak_rss_mb(), "rss_end": system.current_rss_mb(),
                          "rss_after_first_minute": rec.rss_first_minute},
            "cpu_percent": 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall if wall else None,
            "frontend": ({"type": listener.frontend.spec["type"], "streaming": True,
                          "frames_computed": listener.frontend.frames_computed,
                          "frames_reused": listener.frontend.frames_reused} if listener.frontend else {"in_model": True}),
            "source": {**source.describe(), "resampled": self.resampler.method},
            "model": {"path": str(emb.path), "name": emb.name, "mode": emb.mode, "sample_rate": self.sr,
                      "embedding_size": emb.output_size},
            "classifier": {"path": str(cls.path), "name": cls.name, "classes": listener.classes} if cls else None,
            "triggers": [{"class": t.name, "threshold": t.threshold, "windows": t.windows} for t in self.triggers],
            "embeddings": rec.save_embeddings(), "threads": args.threads,
            "interpreter": emb.interpreter_info,
        }


def listen(args: argparse.Namespace, out: TextIO, *,
           status_stream: TextIO | None = sys.stderr) -> tuple[dict[str, Any], int]:
    """Run one listening session (:class:`ListenSession`); returns (summary dict, exit code). See the module docstring."""
    return ListenSession(args, out, status_stream=status_stream).run()


def format_summary(s: dict[str, Any]) -> str:
    """A few readable lines of a summary dict."""
    lat, comp = s["latency_ms"]["capture_to_result"], s["latency_ms"]["compute"]
    lines = [f"device.listen [{s['status']}, {s['stopped_by']}]: {s['model']['name']} [{s['model']['mode']}] on "
             f"{s['source']['kind']} {s['source']['name']}: {s['windows']} windows, {s['audio_s']:.1f} s of audio in "
             f"{s['wall_s']:.1f} s"]
    if comp.get("n"):
        lines.append(f"  real-time factor {s['real_time_factor']:.3f} (compute / audio); compute per window p50/p90/p99 "
                     f"{comp['p50']:.2f}/{comp['p90']:.2f}/{comp['p99']:.2f} ms; capture to result "
                     f"{lat['p50']:.2f}/{lat['p90']:.2f}/{lat['p99']:.2f} ms")
    mem = s["memory_mb"]
    cpu = f"{s['cpu_percent']:.0f} %" if s["cpu_percent"] is not None else "?"
    lines.append(f"  overruns {s['overruns']}, dropped {s['dropped_samples']} samples ({s['dropped_s']:.2f} s); "
                 f"peak RSS {mem['peak_rss']:.1f} MiB; CPU {cpu}")
    return "\n".join(lines)


class _Deprecated(argparse._StoreAction):
    """A hidden old spelling that says once, on stderr, which spelling replaced it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.metavar}", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m device.listen", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     allow_abbrev=False)  # --r would otherwise silently be --runs or --rate
    parser.add_argument("--model", required=True, metavar="X.tflite",
                        help="embedding model X.tflite (sidecar X.json beside it)")
    parser.add_argument("--classifier", help="classifier .tflite taking the embeddings (for classes and triggers)")
    parser.add_argument("--source", default="default",
                        help="'default' or a microphone name/index, a WAV/FLAC file, or '-' (16-bit PCM on stdin)")
    parser.add_argument("--hop-size", dest="hop", type=float, default=0.1, help="seconds between window starts")
    # The spelling, hidden: sea-tf spells this idea --hop-size everywhere.
    parser.add_argument("--hop", dest="hop", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        action=_Deprecated, metavar="--hop-size")
    parser.add_argument("--duration", type=float, help="stop after this many seconds of audio")
    parser.add_argument("--realtime", action="store_true", help="pace a file source at real time")
    parser.add_argument("--rate", type=int, help="sample rate of stdin PCM (or the microphone's) in Hz")
    parser.add_argument("--channels", type=int, help="channels of stdin PCM (or the microphone's)")
    parser.add_argument("--jsonl", default="-", help="where the JSON lines go ('-': stdout)")
    parser.add_argument("--embeddings", help="save the [K, D] embeddings here (.npy) at the end")
    parser.add_argument("--with-embedding", action="store_true", help="put each window's embedding in its JSON line")
    parser.add_argument("--top", type=int, default=3, help="classes per JSON line")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--trigger", action="extend", nargs="+", default=[], metavar="CLASS:P[:N]",
                        help="onset/offset events when CLASS stays >= P for N windows (repeatable)")
    parser.add_argument("--summary-json", help="also write the summary here")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop (with the summary) when stdin reaches end of file; `sea-tf device listen` uses "
                             "this to stop the board side when the SSH session ends")
    return parser


def _request_stop() -> None:
    STOP.set()
    for source in _SOURCES:
        source.stop.set()          # queued sources stop waiting for their next block


def _install_stop_handlers(args: argparse.Namespace) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        if STOP.is_set():          # the second one: do not wait for the next block
            raise _Stop()
        _request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.until_stdin_closes and args.source != "-":
        main_thread = threading.main_thread()

        def watch() -> None:
            # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a buffered
            # reader's lock makes the interpreter abort at exit
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            if main_thread.is_alive():
                _request_stop()

        threading.Thread(target=watch, name="listen-stdin-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0, 1 (source failed or ended early) or 2 (could not start)."""
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.hop <= 0 or (args.duration is not None and args.duration <= 0) or args.top < 1:
        print("device.listen: error: --threads and --top must be >= 1, --hop-size and --duration > 0", file=sys.stderr)
        return 2
    _install_stop_handlers(args)
    out = sys.stdout if args.jsonl == "-" else None
    try:
        if out is None:
            os.makedirs(os.path.dirname(os.path.abspath(args.jsonl)), exist_ok=True)
            out = open(args.jsonl, "w")
        summary, code = listen(args, out)
    except (KeyboardInterrupt, _Stop):
        print("device.listen: interrupted before the stream started", file=sys.stderr)
        return 2
    except DeviceError as exc:
        print(f"device.listen: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"device.listen: error: {exc}; check the paths and free disk space", file=sys.stderr)
        return 2
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    if args.summary_json:
        from device.bench import write_json

        write_json(args.summary_json, summary)
    if summary["error"]:
        print(f"device.listen: error: {summary['error']}", file=sys.stderr)
    print(format_summary(summary), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
