"""Where the front end runs: inside the ``.tflite`` or on the device with the numpy twin.

A mode carries the front end only when it computes it with the *same* numbers as the Keras
layer. Measured on the published SEA-64 (held-out demo audio, cosine vs Keras fp32):

- ``fp32`` (1.000000) and ``fp16`` (0.999999; only the window and mel filterbank constants are
  rounded to float16, the arithmetic stays float32): inside the model.
- ``dynamic``: the hybrid FULLY_CONNECTED kernel quantizes its *input*, the power spectrum, to
  int8 per frame, which wipes out every band 24 dB (power) below the frame's loudest one:
  cosine 0.70. The body alone converts fine (0.9999), so the device computes the front end.
- ``int8`` / ``int16x8``: log, sqrt and the per-example max of the dB step have no exact integer
  kernels (cosine 0.60 when forced in): network body only.

Nothing is approximated: when the front end is not in the model, the sidecar says the input is the
dB image of ``frontend`` and the device computes it with ``device.frontends.compute_frontend``.

``placement: measure`` decides by measuring, per artifact, on the exporting machine: in an exact
mode both placements are converted and timed audio → embedding (:func:`measure_placement`, the
device side with the fused numpy front end), and the faster is kept (a tie keeps the front end
inside); the sidecar's ``placement`` entry records the choice, both timings and the CPU. Other
modes take the dB image as under ``auto``.
"""
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sea_tf.errors import ExportError
from sea_tf.models.seamodel import assemble

#: Modes whose ``.tflite`` reproduces the front end exactly (see the module docstring).
FRONTEND_EXACT_MODES = ("fp32", "fp16")
PLACEMENTS = ("auto", "device", "measure")


def frontend_in_model(mode: str, *, placement: str) -> bool:
    """Whether the ``mode`` export takes raw audio (front end inside).

    Parameters
    ----------
    mode : str
        Export mode.
    placement : {"auto", "device", "measure"}
        ``auto``: inside when the mode carries it exactly; ``device``: always on the device
        (network body only in every mode, e.g. to time the bodies alone); ``measure``: as
        ``auto``, and the caller then times both (:func:`measure_placement`) and keeps the faster.

    Returns
    -------
    bool
    """
    if placement not in PLACEMENTS:
        raise ExportError(f"front-end placement must be one of {PLACEMENTS}; got {placement!r}")
    return placement in ("auto", "measure") and mode in FRONTEND_EXACT_MODES


def export_graph(model: Any, inside: bool, *, dft: str) -> Any:
    """The Keras model to convert for one artifact.

    Parameters
    ----------
    model : sea_tf.models.SeaModel
    inside : bool
        True: raw audio ``[B, frame_samples]`` → embedding (front end rebuilt with ``dft``);
        False: front-end image ``[B, F, T, 1]`` → embedding (the network body).
    dft : {"rfft", "matmul"}
        DFT of an in-model front end. ``rfft`` converts to the builtin RFFT2D and is the fastest
        on CPU; ``matmul`` (kapre's 1024×513 kernels) is for interpreters without RFFT2D.

    Returns
    -------
    keras.Model
    """
    network = model.network()
    if not inside:
        return network
    return assemble(model.frontend, network, re.sub(r"\W", "_", model.name), dft=dft)


def measure_placement(candidates: Mapping[str, Path | str], frames: npt.NDArray[np.float32], *, threads: int,
                      rounds: int = 3, windows_per_round: int = 8, timer: Callable[[str], float] | None = None) -> dict[str, Any]:
    """Time audio → embedding per window of each placement's artifact; the faster wins.

    Parameters
    ----------
    candidates : dict
        ``{"model": X.tflite with the front end inside, "device": X.tflite of the body}``, each
        with its sidecar (:func:`write_candidates`).
    frames : np.ndarray [shape=(n, frame_samples), dtype=float32]
        Windows to time on (held-out audio).
    threads : int
        Interpreter threads, as the reported latencies use.
    rounds, windows_per_round : int
        Interleaved rounds (after one untimed), ``windows_per_round`` windows each; medians of the
        rounds.
    timer : callable, optional
        ``timer(name)`` -> seconds per window of one pass (replaces the timing in tests).

    Returns
    -------
    dict
        ``choice`` ("model" or "device"; a tie keeps "model"), ``ms_per_window`` of each,
        ``threads``, ``cpu`` and ``rule``: what the sidecar records.
    """
    from device import system

    if timer is None:
        from device.runner import load_artifact

        loaded = {name: load_artifact(path, threads=threads) for name, path in candidates.items()}

        def timer(name: str) -> float:
            art = loaded[name]
            x = np.empty(art.input_shape, np.dtype(art._in["dtype"]))
            start = time.perf_counter()
            for i in range(windows_per_round):
                art.run_batch(art.model_input(frames[i % len(frames)][None], out=x))
            return (time.perf_counter() - start) / windows_per_round

    names = list(candidates)
    for name in names:
        timer(name)                     # warm-up: the first invoke() packs the weights
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(max(1, rounds)):
        for name in names:
            samples[name].append(float(timer(name)))
    ms = {name: 1e3 * statistics.median(values) for name, values in samples.items()}
    choice = "device" if ms["device"] < ms["model"] else "model"
    return {"choice": choice, "ms_per_window": ms, "threads": int(threads), "cpu": system.cpu_model(),
            "rule": "audio -> embedding per window, interleaved medians; the faster kept, a tie keeps the model's"}


def write_candidates(folder: Path | str, *, card: dict[str, Any], frontend: dict[str, Any], mode: str,
                     inside: bytes, body: bytes) -> dict[str, Path]:
    """Both placements of one mode as artifacts in ``folder`` (a temporary one), for :func:`measure_placement`."""
    from export import metadata

    paths = {}
    for name, data, in_model in (("model", inside, True), ("device", body, False)):
        meta = metadata.build_sidecar(data, card, mode, in_model, frontend, "raw_audio" if in_model else "frontend_features",
                                      "embedding")
        paths[name] = metadata.write_artifact(Path(folder) / name, f"candidate.{mode}", data, meta)
    return paths


def measured_placement(inside: bytes, convert_body: Callable[[], bytes], *, card: dict[str, Any],
                       frontend: dict[str, Any], mode: str, frames: npt.NDArray[np.float32],
                       threads: int) -> tuple[bool, bytes, dict[str, Any]]:
    """``placement: measure`` for one exact mode: convert the body too, time both, keep the faster.

    Returns
    -------
    inside : bool
        Whether the kept artifact carries the front end.
    data : bytes
        The kept ``.tflite``.
    record : dict
        :func:`measure_placement`'s, for the sidecar's ``placement`` entry.
    """
    body = convert_body()
    with tempfile.TemporaryDirectory(prefix="sea-tf-placement-") as tmp:
        paths = write_candidates(tmp, card=card, frontend=frontend, mode=mode, inside=inside, body=body)
        record = measure_placement(paths, frames, threads=threads)
    keep_inside = record["choice"] == "model"
    return keep_inside, inside if keep_inside else body, record
