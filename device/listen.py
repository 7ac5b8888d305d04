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
"""
import argparse
import array
import json
import os
import signal
import sys
import threading
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):   # see device/bench.py
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from device import system  # noqa: E402
from device.errors import ArtifactError, DeviceError, SourceError  # noqa: E402
from device.runner import load_artifact  # noqa: E402
from device.stream import StreamResampler, WindowRing, open_source  # noqa: E402

SCHEMA = "sea-tf/device-listen/1"
STATUS_EVERY_S = 0.25


class _Stop(Exception):
    """Raised in the main thread by a second Ctrl-C / SIGTERM: stop now."""


#: Set by the first Ctrl-C / SIGTERM (or the end of stdin with --until-stdin-closes): the stream
#: stops at the next block, so no JSON line is cut in half, and the summary is written.
STOP = threading.Event()
_SOURCES = []


def parse_trigger(text, classes):
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

    def __init__(self, index, name, threshold, windows):
        self.index, self.name, self.threshold, self.windows = index, name, threshold, windows
        self.active, self.run, self.since, self.peak = False, 0, None, 0.0

    def update(self, t, probs):
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

    def close(self, t):
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

    def __init__(self, emb, cls=None):
        if not emb.frame_samples or not emb.sample_rate:
            raise ArtifactError(f"{emb.path}: the sidecar does not give the model's sample rate and window length; "
                                "re-export it with `sea-tf export`")
        if not emb.frontend_in_model and emb.frontend is None:
            raise ArtifactError(f"{emb.path}: the model takes front-end features but its sidecar "
                                f"{emb.path.with_suffix('.json').name} has no 'frontend' entry, so audio cannot be turned "
                                "into its input; re-export the model with `sea-tf export`")
        if cls is not None and int(np.prod(cls.input_shape[1:])) != emb.output_size:
            raise ArtifactError(f"{cls.path}: the classifier takes {int(np.prod(cls.input_shape[1:]))}-d inputs but "
                                f"{emb.path.name} makes {emb.output_size}-d embeddings; pass the classifier trained "
                                "on this model")
        self.emb, self.cls = emb, cls
        self.frontend = None
        if not emb.frontend_in_model:
            from device.frontends import StreamingFrontend

            self.frontend = StreamingFrontend(emb.frontend, emb.frame_samples)
            self._quant = emb.input_quantization
            dtype = self._quant[2] if self._quant else np.float32
            self._x = np.empty(emb.input_shape, dtype)            # the interpreter's input, written in place
        self.classes = (cls.classes or [str(i) for i in range(cls.output_size)]) if cls is not None else None

    def window(self, samples, start):
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

    def __init__(self, embeddings_path, dim):
        self.latency, self.compute = array.array("f"), array.array("f")
        self.windows = 0
        self.rss_first_minute = None
        self._emb_path = embeddings_path
        self._emb_part = None
        if embeddings_path:
            sweep_stale(embeddings_path)
            # named by this process, so that a later run can tell a killed writer's rows from a live one's
            self._part = f"{embeddings_path}.{os.getpid()}.part"
            self._emb_part = open(self._part, "wb")
        self.dim = dim

    def add(self, latency_ms, compute_ms, embedding):
        self.latency.append(latency_ms)
        self.compute.append(compute_ms)
        self.windows += 1
        if self._emb_part is not None:
            self._emb_part.write(np.ascontiguousarray(embedding, np.float32).tobytes())

    def save_embeddings(self):
        """Write the ``[K, D]`` float32 ``.npy`` from the rows streamed to ``OUT.npy.<pid>.part``."""
        if self._emb_part is None:
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


def sweep_stale(path):
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


def _stats(values):
    from device.bench import latency_stats

    return latency_stats(np.frombuffer(values, np.float32) if len(values) else [])


def listen(args, out, status_stream=sys.stderr):
    """Run one listening session; returns (summary dict, exit code). See the module docstring."""
    emb = load_artifact(args.model, threads=args.threads, kind="embedding")
    cls = load_artifact(args.classifier, threads=args.threads, kind="classifier") if args.classifier else None
    listener = Listener(emb, cls)
    triggers = [Trigger(*parse_trigger(t, listener.classes)) for t in args.trigger]
    sr, frame = int(emb.sample_rate), int(emb.frame_samples)
    hop = int(round(args.hop * sr))
    if hop < 1:
        raise DeviceError(f"--hop-size {args.hop}: shorter than one sample at {sr} Hz")
    source = open_source(args.source, sr, rate=args.rate, channels=args.channels, realtime=args.realtime)
    _SOURCES.append(source)
    try:
        resampler = StreamResampler(source.sample_rate, sr)
    except DeviceError:
        source.close()
        raise
    ring = WindowRing(frame, hop)
    rec = _Recorder(args.embeddings, emb.output_size)
    summary = {"schema": SCHEMA, "event": "summary"}
    code, error = 0, None
    clock = time.perf_counter
    cpu0, wall0 = os.times(), clock()
    stop_reason = "end of source"
    live = status_stream is not None and status_stream.isatty()
    last_status = 0.0
    top_now = "-"
    gap_until = -1          # windows starting before this model-rate stream index include dropped audio
    processed_s = 0.0
    try:
        limit = int(round(args.duration * sr)) if args.duration else None

        def emit(windows, arrival):
            nonlocal top_now, last_status
            for k, start, samples in windows:
                t_end = (start + frame) / sr
                t0 = clock()
                embedding, probs = listener.window(samples, start)
                t1 = clock()
                compute_ms, latency_ms = (t1 - t0) * 1e3, (t1 - arrival) * 1e3
                rec.add(latency_ms, compute_ms, embedding)
                line = {"t": round(t_end, 4), "k": k, "latency_ms": round(latency_ms, 3), "compute_ms": round(compute_ms, 3)}
                if probs is not None:
                    best = np.argsort(probs)[::-1][:args.top]
                    line["top"] = [[listener.classes[i], round(float(probs[i]), 4)] for i in best]
                    top_now = f"{listener.classes[best[0]]} {probs[best[0]]:.2f}"
                if start < gap_until:
                    line["gap"] = True
                if args.with_embedding:
                    line["embedding"] = [round(float(v), 5) for v in embedding]
                out.write(json.dumps(line) + "\n")
                for trig in triggers:
                    event = trig.update(t_end, probs)
                    if event:
                        out.write(json.dumps(event) + "\n")
                out.flush()
                if live and t1 - last_status > STATUS_EVERY_S:
                    last_status = t1
                    elapsed = t1 - wall0
                    status_stream.write(f"\r{t_end:8.1f} s  {top_now:<28} RTF {sum(rec.compute) / 1e3 / max(processed_s, 1e-9):.3f}"
                                        f"  overruns {source.overruns}  dropped {source.dropped / source.sample_rate:.2f} s"
                                        f"  ({elapsed:.0f} s)   ")
                    status_stream.flush()
                if rec.rss_first_minute is None and t_end >= 60.0:
                    rec.rss_first_minute = system.current_rss_mb()

        done = False
        for block in source.blocks():
            if block.dropped:                                   # keep the time axis: zeros where audio was lost
                zeros = resampler(np.zeros((block.dropped, source.channels), np.float32))
                gap_until = ring.end + len(zeros) + frame
                emit(ring.push(zeros), block.arrival)
            samples = resampler(block.samples)
            if limit is not None and ring.end + len(samples) >= limit:
                samples, done = samples[:max(limit - ring.end, 0)], True
            processed_s = (ring.end + len(samples)) / sr
            emit(ring.push(samples), block.arrival)
            if done:
                stop_reason = "duration reached"
                break
            if STOP.is_set():
                break
        if STOP.is_set() and not done:
            stop_reason = "interrupted"
        elif not done:
            tail = resampler(np.zeros((0, source.channels), np.float32), last=True)
            if limit is not None:
                tail = tail[:max(limit - ring.end, 0)]
            emit(ring.push(tail), clock())
            processed_s = ring.end / sr
            if source.kind == "file" or limit is None:
                if ring.end:                                     # the last windows of the offline framing
                    emit(ring.push(np.zeros(ring.tail_padding(), np.float32)), clock())
            if limit is not None and processed_s * sr < limit:
                code = 1
                error = SourceError(f"--source {args.source}: the source ended after {processed_s:.2f} s of the "
                                    f"{args.duration:g} s asked (--duration)")
            elif source.kind == "microphone":
                code = 1
                error = SourceError(f"--source {args.source}: the input device stopped delivering audio; check "
                                    "that it is still connected")
    except (KeyboardInterrupt, _Stop):
        stop_reason = "interrupted"
    except DeviceError as exc:
        code, error = 1, exc
        stop_reason = "error"
    except (OSError, RuntimeError, MemoryError, ValueError) as exc:
        # Whatever stops the stream half-way (a decoder error, the disk, memory) still ends with the
        # summary and the outputs of the windows done, marked partial, never a traceback.
        code, error = 1, SourceError(f"--source {args.source}: the stream failed after {processed_s:.2f} s "
                                     f"({type(exc).__name__}: {exc})")
        stop_reason = "error"
    finally:
        source.close()
    if live:
        status_stream.write("\n")
    t_end = ring.next_k and ((ring.next_k - 1) * hop + frame) / sr
    for trig in triggers:
        event = trig.close(t_end)
        if event:
            out.write(json.dumps(event) + "\n")
    cpu1, wall = os.times(), clock() - wall0
    compute_total_s = float(np.sum(np.frombuffer(rec.compute, np.float32), dtype=np.float64)) / 1e3 if rec.windows else 0.0
    audio_s = processed_s
    summary.update({
        "status": "error" if error else "complete", "stopped_by": stop_reason, "error": str(error) if error else None,
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
        "frontend": ({"type": emb.frontend["type"], "streaming": True, "frames_computed": listener.frontend.frames_computed,
                      "frames_reused": listener.frontend.frames_reused} if listener.frontend else {"in_model": True}),
        "source": {**source.describe(), "resampled": resampler.method},
        "model": {"path": str(emb.path), "name": emb.name, "mode": emb.mode, "sample_rate": sr,
                  "embedding_size": emb.output_size},
        "classifier": {"path": str(cls.path), "name": cls.name, "classes": listener.classes} if cls else None,
        "triggers": [{"class": t.name, "threshold": t.threshold, "windows": t.windows} for t in triggers],
        "embeddings": rec.save_embeddings(), "threads": args.threads,
        "interpreter": emb.interpreter_info,
    })
    out.write(json.dumps(summary) + "\n")
    out.flush()
    return summary, code


def format_summary(s):
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

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.metavar}", file=sys.stderr)
        super().__call__(parser, namespace, values, option_string)


def build_parser():
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


def _request_stop():
    STOP.set()
    for source in _SOURCES:
        source.stop.set()          # queued sources stop waiting for their next block


def _install_stop_handlers(args):
    def on_signal(signum, frame):
        if STOP.is_set():          # the second one: do not wait for the next block
            raise _Stop()
        _request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.until_stdin_closes and args.source != "-":
        main_thread = threading.main_thread()

        def watch():
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


def main(argv=None):
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
