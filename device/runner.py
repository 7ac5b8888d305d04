"""Run one exported artifact (``X.tflite`` + ``X.json`` sidecar) on raw audio windows.

The sidecar (docs/ARCHITECTURE.md, "Exported artifacts") says whether the front end is inside the
model; when it is not, the numpy twin ``device.frontends.compute_frontend`` computes it here.
Input quantization and output dequantization use the interpreter's own tensor details, so an
fp32, dynamic-range or full-int8 model is used the same way.

Example
-------
>>> emb = load_artifact("out/sea-64.int8.tflite")                     # doctest: +SKIP
>>> cls = load_artifact("out/us8k-mlp.fp32.tflite")                   # doctest: +SKIP
>>> probs = cls.classify(emb.embed_frames(frames))                     # doctest: +SKIP
"""
import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from device.batching import BatchChoice, cache_key, choose_batch
from device.errors import ArtifactError, DeviceWarning, InterpreterError
from device.interpreter import open_interpreter

#: Windows per ``invoke()`` in offline runs (windows known in advance), when the model allows it
#: and it measures faster than batch 1 on this machine (``batch="auto"``, :mod:`device.batching`).
DEFAULT_BATCH = 16
#: A batch size, or ``"auto"``: the measured faster of 1 and :data:`DEFAULT_BATCH` (cached per CPU).
Batch = int | Literal["auto"]
#: A batch whose per-example tensors would exceed this is made smaller: an L3 teacher's activations
#: (tens of MB per window) times 16 would not fit a 1-4 GB board, a student's (~1 MB) do.
MAX_BATCH_BYTES = 64 << 20


def sidecar_path(tflite_path: Path | str) -> Path:
    """``X.json`` beside ``X.tflite``."""
    return Path(tflite_path).with_suffix(".json")


def sha256_file(path: Path | str, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sidecar(tflite_path: Path | str) -> dict[str, Any] | None:
    """The sidecar dict of ``tflite_path``, verified against the model's sha256.

    Returns ``None`` (with a :class:`DeviceWarning`) when there is no sidecar; raises
    :class:`ArtifactError` when it is unreadable or its checksum does not match the ``.tflite``.
    """
    path = sidecar_path(tflite_path)
    if not path.exists():
        warnings.warn(f"{tflite_path}: no metadata sidecar {path.name}; running with the model's raw "
                      "input shape (sample rate and front end are guessed; re-export to get one)",
                      DeviceWarning, stacklevel=3)
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable sidecar ({exc}); re-export the model or delete the "
                            "sidecar to run on the raw input shape") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: the sidecar must be a JSON object; re-export the model")
    expected = meta.get("sha256")
    if expected:
        actual = sha256_file(tflite_path)
        if actual != expected:
            raise ArtifactError(
                f"{tflite_path}: sha256 {actual[:12]}… does not match {expected[:12]}… in {path.name}; "
                "the model and its metadata are from different exports (or the copy is corrupt) - "
                "copy both files again from the same export")
    return meta


class Artifact:
    """One loaded model: an embedding network or a classifier.

    Attributes
    ----------
    path : Path
    meta : dict or None
        The sidecar (``None`` when absent).
    kind : str
        ``"embedding"`` or ``"classifier"``.
    name, mode : str
        Model name (from the model card) and export mode (``fp32``, ``int8``, ...).
    sample_rate : int or None
        Audio rate in Hz the model expects (embedding models).
    frame_samples : int or None
        Samples per window (embedding models).
    frontend_in_model : bool
    frontend : dict or None
        Front-end spec for ``device.frontends.compute_frontend`` when not in the model.
    classes : list of str or None
    interpreter_info : dict
        :func:`device.interpreter.open_interpreter`'s (package, version, ``xnnpack``, ``op_resolver``).
    threads : int
    xnnpack : bool
        Whether the interpreters (batch 1 and batched) run with the default XNNPACK delegate.
    load_time_s : float
        Wall time to read, verify and allocate the model.
    """

    def __init__(self, tflite_path: Path | str, *, threads: int = 1, kind: str | None = None,
                 prefer: str | None = None, xnnpack: bool = True) -> None:
        self.path = Path(tflite_path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: model file not found; pass the .tflite written by `sea-tf export`")
        start = time.perf_counter()
        self.meta = read_sidecar(self.path)
        self.interpreter, self.interpreter_info = open_interpreter(self.path, threads=threads, prefer=prefer,
                                                                  xnnpack=xnnpack)
        self.load_time_s = time.perf_counter() - start
        self.threads, self.xnnpack = threads, xnnpack
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        self._input_shape = tuple(int(d) for d in self._in["shape"])
        self._quantize = _Quantizer(self._in)
        self.prefer = prefer
        self._batched: dict[int, Any] = {}    # batch size -> interpreter resized to it (None: not resizable)
        self._choices: dict[int, BatchChoice] = {}
        #: where batch choices are cached (None: ``device.batching.default_cache_path()``)
        self.batch_cache: Path | None = None
        self._fused: Any = None               # device.frontends.FusedFrontend, made at first use
        self._per_example_bytes: int | None = None   # activation bytes of one example (batch_size)
        scale, zero = self._out.get("quantization", (0.0, 0))
        quantized_out = scale and not np.issubdtype(np.dtype(self._out["dtype"]), np.floating)
        self._out_scale = np.float32(scale) if quantized_out else None
        self._out_zero = np.float32(zero)
        if len(self.interpreter.get_input_details()) != 1:
            raise ArtifactError(f"{self.path}: the model has several inputs; sea-tf artifacts take one tensor")
        meta = self.meta or {}
        card = meta.get("model_card") or {}
        self.frontend_in_model = bool(meta.get("frontend_in_model", len(self._in["shape"]) == 2))
        self.frontend: dict[str, Any] | None = meta.get("frontend") if not self.frontend_in_model else None
        self.classes: list[str] | None = meta.get("classes")
        self.kind = kind or ("classifier" if self.classes or card.get("kind") == "classifier" else "embedding")
        # Exported files are <name>.<mode>.tflite, and <name> may hold dots itself (sparsity_95.45).
        parts = self.path.name.rsplit(".", 2)
        self.name = card.get("name") or parts[0]
        self.mode = meta.get("mode") or (parts[1] if len(parts) == 3 else "unknown")
        self.scaler = meta.get("scaler")
        self.sample_rate: int | None = card.get("sample_rate") or (self.frontend or {}).get("sr")
        self.frame_samples: int | None = card.get("frame_samples")
        if self.kind == "embedding":
            self._guess_rates()
        if not self.frontend_in_model and self.frontend is None and self.kind == "embedding":
            warnings.warn(f"{self.path}: the model takes front-end features but no front-end spec is "
                          "known; it can be timed on random features but cannot embed audio",
                          DeviceWarning, stacklevel=2)

    def _guess_rates(self) -> None:
        shape = [int(s) for s in self._in["shape"]]
        if self.frontend_in_model and self.frame_samples is None:
            self.frame_samples = shape[-1]
        if self.frame_samples and self.sample_rate is None:
            # sea-tf windows are 1 s long (model card "frame_length_s": 1.0)
            self.sample_rate = self.frame_samples
            if self.meta is None:
                warnings.warn(f"{self.path}: assuming {self.sample_rate} Hz (1-s windows of "
                              f"{self.frame_samples} samples)", DeviceWarning, stacklevel=3)

    def window_format(self) -> tuple[int, int]:
        """``(sample_rate, frame_samples)`` of an embedding model: the audio one window holds.

        Raises :class:`ArtifactError` when neither the sidecar nor the input shape gives them.
        """
        if not self.frame_samples or not self.sample_rate:
            raise ArtifactError(f"{self.path}: the sidecar does not give the model's sample rate and window length; "
                                "re-export it with `sea-tf export`")
        return int(self.sample_rate), int(self.frame_samples)

    # -- tensors -------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example as the interpreter declares it (batch dimension first)."""
        return self._input_shape

    @property
    def output_size(self) -> int:
        """Length of one output vector (embedding dimensions or number of classes)."""
        return int(np.prod(self._out["shape"][1:]))

    def batch_of_one(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``x`` (one example) with the leading batch dimension: a view, never a copy."""
        x = np.asarray(x, np.float32)
        return x[None] if x.ndim == len(self._input_shape) - 1 else np.reshape(x, self._input_shape)

    @property
    def input_quantization(self) -> tuple[np.float32, np.float32, np.dtype[Any]] | None:
        """``(inv_scale, zero_point, dtype)`` of a quantized input tensor, ``None`` for a float input.

        What :class:`device.frontends.StreamingFrontend` takes to write the model's input codes itself.
        """
        q = self._quantize
        # a quantized input always has a scale (_Quantizer refuses one without)
        return None if q.is_float or q.inv_scale is None else (q.inv_scale, q.zero, q.dtype)

    def quantize_input(self, x: npt.ArrayLike) -> np.ndarray:
        """Float input → the interpreter's input dtype (scale/zero point from the tensor details)."""
        return self._quantize(np.asarray(x, np.float32))

    def dequantize_output(self, raw: np.ndarray) -> npt.NDArray[np.float32]:
        """The interpreter's raw output → float32 (scale/zero point from the tensor details)."""
        if self._out_scale is None:
            return raw.astype(np.float32, copy=False)
        out = raw.astype(np.float32)
        out -= self._out_zero
        out *= self._out_scale
        return out

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """Set ``x`` (already in the input dtype and shape), ``invoke()``, return the raw output."""
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def run_one(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """One example through the network: quantize, invoke, dequantize.

        Parameters
        ----------
        x : np.ndarray [shape=input_shape[1:]], float32

        Returns
        -------
        np.ndarray [shape=(output_size,), dtype=float32]
        """
        q = self.quantize_input(self.batch_of_one(x))
        return self.dequantize_output(self.invoke(q)).reshape(-1)

    def batch_size(self, batch: int) -> int:
        """``batch``, reduced so that ``batch`` examples' tensors stay under :data:`MAX_BATCH_BYTES`."""
        if self._per_example_bytes is None:
            # get_tensor_details() lists every tensor (~0.1 ms for SEA-64, as much as its front end
            # costs over a bare rFFT): summed once, not per call of embed_frames
            per_example = 0
            for t in self.interpreter.get_tensor_details():
                shape = t.get("shape")
                if shape is not None and len(shape) >= 2 and int(shape[0]) == 1:   # activations, batch first
                    per_example += int(np.prod(shape)) * np.dtype(t["dtype"]).itemsize
            self._per_example_bytes = per_example
        return max(1, min(int(batch), MAX_BATCH_BYTES // max(self._per_example_bytes, 1)))

    def batched_interpreter(self, batch: int) -> Any:
        """An interpreter of this model resized to ``batch`` examples, or ``None`` if the model's
        batch dimension is fixed (``shape_signature[0] != -1``) or the resize fails."""
        if batch not in self._batched:
            self._batched[batch] = None
            signature = self._in.get("shape_signature")
            if batch > 1 and (signature is None or len(signature) == 0 or int(signature[0]) == -1):
                from device.interpreter import construct, find_interpreter

                cls, info = find_interpreter(prefer=self.prefer)
                try:
                    interp = construct(cls, self.path, threads=self.threads, xnnpack=self.xnnpack, info=info)
                    interp.resize_tensor_input(self._in["index"], [batch, *self._input_shape[1:]])
                    interp.allocate_tensors()
                    self._batched[batch] = interp
                except (ValueError, RuntimeError, InterpreterError):
                    pass            # e.g. a reshape to a fixed batch inside the graph: stay at batch 1
        return self._batched[batch]

    def run_batch(self, q: np.ndarray, *, interpreter: Any = None) -> npt.NDArray[np.float32]:
        """Examples already in the input dtype through the network in one ``invoke()``.

        Parameters
        ----------
        q : np.ndarray [shape=(B, *input_shape[1:])]
            Quantized (or float) inputs; B must be the batch ``interpreter`` was resized to.
        interpreter : Interpreter, optional
            From :meth:`batched_interpreter`; default the batch-1 interpreter.

        Returns
        -------
        np.ndarray [shape=(B, output_size), dtype=float32]
        """
        interp = interpreter or self.interpreter
        interp.set_tensor(self._in["index"], q)
        interp.invoke()
        return self.dequantize_output(interp.get_tensor(self._out["index"])).reshape(len(q), -1)

    def choose_batch(self, batch: int = DEFAULT_BATCH, *, timer: Callable[[int], float] | None = None
                     ) -> BatchChoice:
        """The faster of batch 1 and ``batch`` on this machine (:func:`device.batching.choose_batch`).

        Measured once per artifact, CPU, threads, XNNPACK on/off and interpreter, then read from the cache.
        ``batch`` is first reduced by :meth:`batch_size`; a model whose batch dimension cannot be
        resized gets batch 1 (``source == "fixed"``). ``timer`` replaces the timing (tests).
        """
        batch = self.batch_size(batch)
        if batch <= 1 or self.batched_interpreter(batch) is None:
            return BatchChoice(1)
        choice = self._choices.get(batch)
        if choice is None:
            from device import system

            info = self.interpreter_info
            key = cache_key(sha256=self.sha256, cpu=system.cpu_model(), threads=self.threads, xnnpack=self.xnnpack,
                            batch=batch,
                            interpreter=f"{info.get('package')} {info.get('version')}")
            choice = self._choices[batch] = choose_batch(key, batch, timer or self._time_batch, cache=self.batch_cache)
        return choice

    @property
    def sha256(self) -> str:
        """sha256 of the ``.tflite`` (the sidecar's, verified at load, else computed once)."""
        digest = (self.meta or {}).get("sha256")
        if not digest:
            digest = self._sha256 = getattr(self, "_sha256", None) or sha256_file(self.path)
        return str(digest)

    def _time_batch(self, batch: int) -> float:
        """Seconds per window of ``batch`` windows (zeros in the input dtype) through the network,
        at ``batch`` per ``invoke()`` (or one at a time for 1): the timer :meth:`choose_batch` uses."""
        n = self.batch_size(DEFAULT_BATCH) if batch == 1 else batch
        q = np.zeros((batch, *self._input_shape[1:]), self._quantize.dtype)
        interp = self.batched_interpreter(batch) if batch > 1 else None
        start = time.perf_counter()
        for _ in range(max(1, n // batch)):
            self.run_batch(q, interpreter=interp)
        return (time.perf_counter() - start) / (max(1, n // batch) * batch)

    def _resolve_batch(self, batch: Batch, n: int) -> int:
        """``batch`` as a number for ``n`` examples; ``"auto"`` measures only when a batch could be filled."""
        if batch != "auto":
            return int(batch)
        if n < self.batch_size(DEFAULT_BATCH):
            return 1
        return self.choose_batch(DEFAULT_BATCH).batch

    def _run_many(self, examples: np.ndarray, batch: Batch, *, quantized: bool = False) -> npt.NDArray[np.float32]:
        """``examples`` [N, *input_shape[1:]] through the network, ``batch`` at a time.

        ``quantized``: the examples are already in the input dtype (:meth:`model_input`), else float32.
        """
        out = np.empty((len(examples), self.output_size), np.float32)
        batch = self.batch_size(self._resolve_batch(batch, len(examples)))
        interp = self.batched_interpreter(batch) if batch > 1 and len(examples) >= batch else None
        prepare = (lambda x: x) if quantized else self.quantize_input
        done = 0
        if interp is not None:
            for done in range(0, len(examples) - batch + 1, batch):
                out[done:done + batch] = self.run_batch(prepare(examples[done:done + batch]), interpreter=interp)
            done += batch
        for i in range(done, len(examples)):
            out[i] = self.run_batch(examples[i:i + 1])[0] if quantized else self.run_one(examples[i])
        return out

    # -- embedding models ----------------------------------------------------------------
    def features(self, frames: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """What the network takes for ``frames``: the frames themselves, or the numpy front end.

        Parameters
        ----------
        frames : np.ndarray [shape=(N, frame_samples), dtype=float32]

        Returns
        -------
        np.ndarray [shape=(N, *input_shape[1:]), dtype=float32]
        """
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or (self.frame_samples and frames.shape[1] != self.frame_samples):
            raise ArtifactError(f"{self.path}: expected windows of shape [N, {self.frame_samples}], got "
                                f"{list(frames.shape)}; frame the audio at {self.sample_rate} Hz")
        if self.frontend_in_model:
            return frames
        if self.frontend is None:
            raise ArtifactError(f"{self.path}: no front-end spec in the sidecar, so audio cannot be "
                                "turned into the model's input; re-export the model with its sidecar")
        return np.asarray(self._fused_frontend()(frames), np.float32)

    def _fused_frontend(self) -> Any:
        if self._fused is None:
            from device.frontends import FusedFrontend

            assert self.frontend is not None and self.frame_samples
            self._fused = FusedFrontend(self.frontend, int(self.frame_samples))
        return self._fused

    def model_input(self, frames: npt.ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
        """What the interpreter takes for ``frames``, already in its input dtype.

        With the numpy front end, the fused front end (``device.frontends.FusedFrontend``) writes
        the quantized codes itself: no float image in between, and straight into ``out`` (e.g. a
        buffer handed to ``set_tensor`` every window). The codes equal
        ``quantize_input(features(frames))``.

        Parameters
        ----------
        frames : np.ndarray [shape=(N, frame_samples), dtype=float32]
        out : np.ndarray [shape=(N, *input_shape[1:])], optional
            In the input tensor's dtype.

        Returns
        -------
        np.ndarray [shape=(N, *input_shape[1:])]
            ``out`` when given; else a new array.
        """
        fused_shape = self._fused_frontend().output_shape if self.frontend is not None and not self.frontend_in_model \
            and self.frame_samples else None
        if fused_shape is None or tuple(self._input_shape[1:]) != fused_shape:
            q = self.quantize_input(self.features(frames))
            if out is None:
                return np.array(q)
            out[...] = q
            return out
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 2 or frames.shape[1] != self.frame_samples:
            raise ArtifactError(f"{self.path}: expected windows of shape [N, {self.frame_samples}], got "
                                f"{list(frames.shape)}; frame the audio at {self.sample_rate} Hz")
        quant = self.input_quantization
        if out is None:
            out = np.empty((len(frames), *self._input_shape[1:]), self._quantize.dtype)
        return self._fused(frames, quantize=quant, out=out)

    def embed_frames(self, frames: npt.ArrayLike, *, batch: Batch = "auto") -> npt.NDArray[np.float32]:
        """Embeddings of 1-s windows.

        Parameters
        ----------
        frames : np.ndarray [shape=(N, frame_samples), dtype=float32]
            Raw audio windows at :attr:`sample_rate`.
        batch : int or "auto"
            Windows per ``invoke()`` when the model's batch dimension can be resized (else 1);
            ``"auto"``: the measured faster of 1 and :data:`DEFAULT_BATCH` (:meth:`choose_batch`).

        Returns
        -------
        np.ndarray [shape=(N, D), dtype=float32]
        """
        return self._run_many(self.model_input(frames), batch, quantized=True)

    def embed_audio(self, audio: npt.NDArray[np.float32] | Iterable[npt.NDArray[np.float32]], hop_samples: int, *,
                    center: bool = False, batch: Batch = "auto", pad_end: bool = True) -> npt.NDArray[np.float32]:
        """Embeddings of every window of a whole recording, with the streaming front end.

        The windows are those of ``device.audio.frame_audio(audio, frame_samples, hop_samples,
        center)``; consecutive windows share STFT frames (``device.frontends.StreamingFrontend``),
        and ``batch`` windows go through the network per ``invoke()``. The audio may come as
        blocks (``device.audio.read_blocks`` → ``resample_blocks``): it is framed as it arrives, so
        memory stays one block plus ``batch`` windows however long the recording.

        Parameters
        ----------
        audio : np.ndarray [shape=(n,), dtype=float32] or iterable of such blocks
            Mono samples at :attr:`sample_rate` (blocks: consecutive parts of one signal).
        hop_samples : int
        center : bool
            Window k centred on ``k * hop`` (half a window of zeros in front).
        batch : int or "auto"
            As :meth:`embed_frames` (``"auto"`` measures only for a model whose batch can be resized).
        pad_end : bool
            False: L3E framing, no windows past the end (``device.audio.stream_windows``).

        Returns
        -------
        np.ndarray [shape=(K, D), dtype=float32]
        """
        from device.audio import stream_windows

        frame_samples = self.window_format()[1]
        blocks = [audio] if isinstance(audio, np.ndarray) else audio
        windows = stream_windows(blocks, frame_samples, hop_samples, center=center, pad_end=pad_end)
        if self.frontend_in_model or self.frontend is None:
            return self._embed_window_chunks(windows, batch)
        from device.frontends import StreamingFrontend

        fe = StreamingFrontend(self.frontend, frame_samples)
        batch = self.batch_size(self.choose_batch(DEFAULT_BATCH).batch if batch == "auto" else batch)
        quant = self.input_quantization
        size = batch if batch > 1 else 1
        q = np.empty((size, *self._input_shape[1:]), self._quantize.dtype)
        interp: Any = None
        rows: list[npt.NDArray[np.float32]] = []
        n = 0
        for start, window in windows:
            fe(window, start, quantize=quant, out=q[n])
            n += 1
            if n == size and size > 1:
                # Whole batches through the batched interpreter (made at the first one: a recording
                # shorter than a batch runs at batch 1 only, as before).
                interp = interp or self.batched_interpreter(batch)
                if interp is None:
                    size = 1
                    rows.extend(np.array(self.run_batch(q[i:i + 1])) for i in range(n))
                    q = q[:1]
                else:
                    rows.append(np.array(self.run_batch(q, interpreter=interp)))
                n = 0
            elif n == size:
                rows.append(np.array(self.run_batch(q[:1])))
                n = 0
        rows.extend(np.array(self.run_batch(q[i:i + 1])) for i in range(n))   # the tail: batch 1
        return np.concatenate(rows).reshape(-1, self.output_size).astype(np.float32, copy=False)

    def _embed_window_chunks(self, windows: Iterator[tuple[int, npt.NDArray[np.float32]]],
                             batch: Batch) -> npt.NDArray[np.float32]:
        """Model-side front end: windows gathered a few batches at a time (never the whole recording).

        A chunk is a whole number of batches, so the windows meet the same batches as in one
        :meth:`_run_many` over all of them (the tail after the last whole batch runs at batch 1).
        """
        batch = self.choose_batch(DEFAULT_BATCH).batch if batch == "auto" else batch
        whole = max(1, self.batch_size(batch))
        chunk = whole * max(1, 256 // whole)
        held, out = [], []
        for _, window in windows:
            held.append(window.copy())
            if len(held) == chunk:
                out.append(self._run_many(self.features(np.stack(held)), batch))
                held = []
        if held:
            out.append(self._run_many(self.features(np.stack(held)), batch))
        return np.concatenate(out).astype(np.float32, copy=False)

    # -- classifiers ---------------------------------------------------------------------
    def classify(self, embeddings: npt.ArrayLike, *, batch: Batch = "auto") -> npt.NDArray[np.float32]:
        """Class probabilities for embeddings.

        Parameters
        ----------
        embeddings : np.ndarray [shape=(N, D), dtype=float32]

        batch : int or "auto"
            Rows per ``invoke()`` when the classifier's batch dimension can be resized (else 1);
            ``"auto"`` as :meth:`embed_frames`.

        Returns
        -------
        np.ndarray [shape=(N, n_classes), dtype=float32]
            Rows sum to 1. A ``"scaler": {"mean", "scale"}`` in the sidecar is applied first; if
            the network's outputs are not already probabilities, a softmax is applied.
        """
        x: np.ndarray = np.atleast_2d(np.asarray(embeddings, np.float32))
        if self.scaler:
            x = (x - np.asarray(self.scaler["mean"], np.float32)) / np.asarray(self.scaler["scale"], np.float32)
        return _as_probabilities(self._run_many(x, batch))


def load_artifact(tflite_path: Path | str, *, threads: int = 1, kind: str | None = None,
                  prefer: str | None = None, xnnpack: bool = True) -> Artifact:
    """Load an exported model for inference on the board.

    Parameters
    ----------
    tflite_path : str or Path
        ``X.tflite``; its sidecar ``X.json`` is read when present (missing → warning; sha256
        mismatch → :class:`ArtifactError`).
    threads : int
        Interpreter threads.
    kind : {"embedding", "classifier"}, optional
        Overrides what the sidecar says (needed for a classifier without a sidecar).
    prefer : str, optional
        Interpreter distribution to try first (see :mod:`device.interpreter`).
    xnnpack : bool
        Run with the interpreter's default XNNPACK delegate (its own default); False: builtin kernels only.

    Returns
    -------
    Artifact
    """
    return Artifact(tflite_path, threads=threads, kind=kind, prefer=prefer, xnnpack=xnnpack)


class _Quantizer:
    """Float → the input tensor's dtype, with preallocated buffers.

    Allocation-free in-place numpy ops keep the harness's own cost per window at a few µs
    (the issue's target: <= 5 % over ``invoke()``).
    """

    def __init__(self, details: dict[str, Any]) -> None:
        self.dtype = np.dtype(details["dtype"])
        scale, zero = details.get("quantization", (0.0, 0))
        self.is_float = np.issubdtype(self.dtype, np.floating)
        if not self.is_float and not scale:
            raise ArtifactError(f"input tensor {details.get('name')} is {self.dtype.name} without "
                                "quantization parameters; re-export with float or quantized I/O")
        self.inv_scale = np.float32(1.0 / scale) if scale else None
        self.zero = np.float32(zero)
        if not self.is_float:
            info = np.iinfo(self.dtype)
            self.lo, self.hi = np.float32(info.min), np.float32(info.max)
        self._buffers: dict[tuple[int, ...], tuple[npt.NDArray[np.float32], np.ndarray]] = {}  # shape -> (float32 work, output): batch 1 and batch B alternate

    def __call__(self, x: npt.NDArray[np.float32]) -> np.ndarray:
        if self.is_float:
            return x.astype(self.dtype, copy=False)
        bufs = self._buffers.get(x.shape)
        if bufs is None:
            bufs = self._buffers[x.shape] = (np.empty(x.shape, np.float32), np.empty(x.shape, self.dtype))
        buf, out = bufs
        # inv_scale is set for every quantized input (__init__ raises otherwise); no check per window
        np.multiply(x, self.inv_scale, out=buf)  # type: ignore[arg-type]
        np.add(buf, self.zero, out=buf)
        np.clip(buf, self.lo, self.hi, out=buf)
        np.rint(buf, out=out, casting="unsafe")  # round and cast in one pass
        return out


def _as_probabilities(out: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # A softmax head already gives rows in [0, 1] summing to 1 (int8 output: within a few
    # quantization steps); anything else is treated as logits.
    sums = out.sum(axis=1)
    if np.all(out >= -1e-6) and np.allclose(sums, 1.0, atol=0.02):
        return out / sums[:, None]
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
