"""What each exported file costs and loses, measured through the board's own code path.

Every ``.tflite`` is run with ``device.runner.load_artifact`` (the LiteRT interpreter
``ai_edge_litert`` plus the numpy front end when the file holds only the network body), exactly
as ``python -m device.bench`` runs it on the board; TensorFlow is not involved. Reported per file:

- size and gzip size in bytes (gzip shows what pruning buys);
- embedding fidelity vs the Keras model on held-out windows: cosine similarity (mean, 5th
  percentile, worst window) and max abs error (also relative to the largest reference value);
- latency per 1-s window at 1 thread: ``invoke`` (the network alone) and ``end_to_end`` (raw
  audio → embedding: numpy front end when needed, quantize, invoke, dequantize), medians in ms;
- for classifiers: agreement of the top class with the Keras classifier and, when the held-out
  windows have labels, clip accuracy and its change vs Keras.
"""
import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from device.runner import Artifact, load_artifact
from sea_tf import tf_logs


def file_sizes(path: Path | str) -> dict[str, int]:
    """``{"size_bytes", "gzip_bytes"}`` of a file (gzip level 9)."""
    data = Path(path).read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def cosine_rows(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise cosine similarity of ``a`` and ``b`` ``[n, d]``; two all-zero rows count as 1.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    dot = np.sum(x * y, axis=1)
    both_zero = (na == 0) & (nb == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))
    return cos


def compare(outputs: npt.ArrayLike, reference: npt.ArrayLike) -> dict[str, Any]:
    """Fidelity of ``outputs`` vs ``reference`` (both ``[n, d]``).

    Returns
    -------
    dict
        ``cosine_mean``, ``cosine_p5``, ``cosine_worst``, ``worst_window`` (row index),
        ``max_abs_error``, ``rel_max_abs_error`` (max abs error / max |reference|), ``n_windows``.
    """
    out, ref = np.asarray(outputs, np.float64), np.asarray(reference, np.float64)
    cos = cosine_rows(out, ref)
    err = np.abs(out - ref)
    scale = float(np.max(np.abs(ref))) or 1.0
    return {"n_windows": int(len(cos)), "cosine_mean": float(cos.mean()), "cosine_p5": float(np.percentile(cos, 5)),
            "cosine_worst": float(cos.min()), "worst_window": int(np.argmin(cos)),
            "max_abs_error": float(err.max()), "rel_max_abs_error": float(err.max() / scale)}


def time_windows(artifact: Artifact, frames: npt.NDArray[np.float32], *, runs: int, warmup: int) -> dict[str, Any]:
    """Median latency per window of an embedding artifact, in ms.

    Parameters
    ----------
    artifact : device.runner.Artifact
    frames : np.ndarray [shape=(n, frame_samples), dtype=float32]
        Raw 1-s windows; run ``runs`` times cycling through them.
    runs, warmup : int

    Returns
    -------
    dict
        ``invoke_ms`` (interpreter ``invoke()`` alone), ``frontend_ms`` (numpy front end, 0 when
        inside the model), ``end_to_end_ms`` (raw audio → float embedding), ``runs``.
    """
    clock = time.perf_counter
    invoke: list[float] = []
    front: list[float] = []
    total: list[float] = []
    # The numpy front end's matrix product would otherwise use every BLAS thread: "1 thread" means 1.
    with threadpool_limits(limits=artifact.threads):
        _time_loop(artifact, frames, runs, warmup, clock, invoke, front, total)
    return {"invoke_ms": float(np.median(invoke)), "frontend_ms": float(np.median(front)),
            "end_to_end_ms": float(np.median(total)), "runs": int(runs)}


def _time_loop(artifact: Artifact, frames: npt.NDArray[np.float32], runs: int, warmup: int, clock: Callable[[], float],
               invoke: list[float], front: list[float], total: list[float]) -> None:
    q = np.empty(artifact.input_shape, np.dtype(artifact._in["dtype"]))
    for i in range(warmup + runs):
        frame = frames[i % len(frames)][None]
        t0 = clock()
        artifact.model_input(frame, out=q)      # the fused front end writes the input codes (as device.bench)
        t1 = clock()
        artifact.interpreter.set_tensor(artifact._in["index"], q)
        t2 = clock()
        artifact.interpreter.invoke()
        t3 = clock()
        artifact.dequantize_output(artifact.interpreter.get_tensor(artifact._out["index"]))
        t4 = clock()
        if i >= warmup:
            front.append((t1 - t0) * 1e3 if not artifact.frontend_in_model else 0.0)
            invoke.append((t3 - t2) * 1e3)
            total.append((t4 - t0) * 1e3)


def time_vectors(artifact: Artifact, vectors: npt.NDArray[np.float32], *, runs: int, warmup: int) -> dict[str, Any]:
    """Median latency per input vector of a classifier artifact (quantize, invoke, dequantize), in ms."""
    clock = time.perf_counter
    total: list[float] = []
    for i in range(warmup + runs):
        t0 = clock()
        artifact.run_one(vectors[i % len(vectors)])
        if i >= warmup:
            total.append((clock() - t0) * 1e3)
    return {"invoke_ms": float(np.median(total)), "frontend_ms": 0.0, "end_to_end_ms": float(np.median(total)),
            "runs": int(runs)}


def measure_embedding(tflite_path: Path | str, frames: npt.NDArray[np.float32], reference: np.ndarray, *, runs: int,
                      warmup: int, threads: int) -> tuple[dict[str, Any], npt.NDArray[np.float32]]:
    """Fidelity and cost of one embedding artifact.

    Parameters
    ----------
    tflite_path : str or Path
        With its sidecar.
    frames : np.ndarray [shape=(n, frame_samples), dtype=float32]
        Held-out raw windows.
    reference : np.ndarray [shape=(n, D)]
        The Keras model's embeddings of ``frames``.
    runs, warmup : int
        Latency repetitions.
    threads : int
        Interpreter threads (1 for the reported figures).

    Returns
    -------
    result : dict
        :func:`file_sizes` + :func:`compare` + :func:`time_windows` keys.
    outputs : np.ndarray [shape=(n, D), dtype=float32]
    """
    with tf_logs.quiet_stderr():  # LiteRT announces its XNNPACK delegate at the first allocation
        artifact = load_artifact(tflite_path, threads=threads)
    # batch 1 against batch N, timed once per artifact and CPU (device.batching, cached); embed_frames uses it
    batch = artifact.choose_batch().as_dict()
    outputs = artifact.embed_frames(frames)
    result = {**file_sizes(tflite_path), **compare(outputs, reference),
              **time_windows(artifact, frames, runs=runs, warmup=warmup), "interpreter": artifact.interpreter_info,
              "batch": batch}
    return result, outputs


def measure_classifier(tflite_path: Path | str, embeddings: npt.ArrayLike, reference_probs: npt.ArrayLike, *, runs: int,
                       warmup: int, threads: int, labels: npt.ArrayLike | None = None,
                       clip_ids: npt.ArrayLike | None = None,
                       reference_accuracy: float | None = None) -> tuple[dict[str, Any], npt.NDArray[np.float32]]:
    """Fidelity and cost of one classifier artifact on (already computed) embeddings.

    Parameters
    ----------
    tflite_path : str or Path
    embeddings : np.ndarray [shape=(n, D), dtype=float32]
        Inputs of the classifier (from the matching exported embedding model, or Keras).
    reference_probs : np.ndarray [shape=(n, n_classes)]
        The Keras classifier's probabilities on the Keras embeddings of the same windows.
    labels : np.ndarray [shape=(n,)], int, optional
        Class index of each window (``-1`` = unknown); with ``clip_ids``, gives clip accuracy.
    clip_ids : np.ndarray [shape=(n,)], optional
        Clip each window belongs to (the mean of its windows' probabilities classifies the clip).
    reference_accuracy : float, optional
        The Keras pipeline's clip accuracy, to report the change.

    Returns
    -------
    result : dict
    probs : np.ndarray [shape=(n, n_classes)]
    """
    with tf_logs.quiet_stderr():
        artifact = load_artifact(tflite_path, threads=threads, kind="classifier")
    probs = artifact.classify(embeddings)
    result = {**file_sizes(tflite_path), **compare(probs, reference_probs),
              "top1_agreement": float(np.mean(probs.argmax(1) == np.asarray(reference_probs).argmax(1))),
              **time_vectors(artifact, np.asarray(embeddings, np.float32), runs=runs, warmup=warmup),
              "interpreter": artifact.interpreter_info}
    if labels is not None and clip_ids is not None:
        acc = clip_accuracy(probs, labels, clip_ids)
        result["clip_accuracy"] = acc
        if acc is not None and reference_accuracy is not None:
            result["accuracy_change"] = acc - reference_accuracy
    return result, probs


def clip_accuracy(probs: npt.ArrayLike, labels: npt.ArrayLike, clip_ids: npt.ArrayLike) -> float | None:
    """Clip accuracy: mean of each clip's window probabilities, argmax, vs its label (``None`` without labels)."""
    label, clip_id = np.asarray(labels), np.asarray(clip_ids)
    known = label >= 0
    if not known.any():
        return None
    hits = []
    for clip in np.unique(clip_id[known]):
        rows = clip_id == clip
        hits.append(int(np.asarray(probs)[rows].mean(axis=0).argmax() == label[rows][0]))
    return float(np.mean(hits))
