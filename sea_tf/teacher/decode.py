"""Decoding ahead of inference: each file's windows at both rates, block by block, on worker threads.

:func:`_decode` reads one file (:func:`sea_tf.audio.stream_windows`); :class:`_Prefetcher` runs it
on ``workers`` threads, at most ``depth`` blocks ahead of the consumer, and hands the blocks back in
file order. A file that cannot be read becomes an ``"error"`` event with its :func:`failure_kind`.
"""
from __future__ import annotations

import collections
import logging
import threading
import warnings
from typing import TYPE_CHECKING, Callable, Iterator, NotRequired, TypedDict, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sea_tf.teacher.inputs import InputFile

#: The stage's one logger (retries of transient reads, skipped files): :mod:`extract` logs through
#: it too, so one handler on ``sea_tf.teacher`` sees everything the stage reports.
log = logging.getLogger("sea_tf.teacher")


class _Block(TypedDict):
    """Consecutive windows of one file at both rates (``b`` windows)."""
    start: int                                # index of the block's first window in the file
    teacher: npt.NDArray[np.float32]          # [b, teacher_sr]
    audio: npt.NDArray[np.float32]            # [b, student_sr]
    timestamp: npt.NDArray[np.float64]        # [b], s
    loudness_db: npt.NDArray[np.float32]      # [b], unweighted RMS level of the teacher window, dBFS
    dBA: npt.NDArray[np.float32]              # [b], its A-weighted level (sea_tf.audio.weighting.window_dba)
    last: NotRequired[bool]                   # True on the file's last block (:class:`_Prefetcher`)


#: ``"block"``: a :class:`_Block`; ``"done"``: None; ``"error"``: ``(message, failure kind)``.
_Payload = Union[_Block, tuple[str, str], None]


def _decode(item: InputFile, teacher_sr: int, student_sr: int, *, hop_size: float, center: bool,
            resampler: str, block_windows: int, read_retries: int, read_backoff_s: float) -> Iterator[_Block]:
    """One file's windows at both rates, block by block (iterated on a worker thread).

    Yields dicts ``start`` (index of the block's first window), ``teacher`` float32 [b, teacher_sr],
    ``audio`` float32 [b, student_sr], ``timestamp`` float64 [b], ``loudness_db`` and ``dBA`` float32 [b]:
    :func:`sea_tf.audio.stream_windows`, so memory does not grow with the file's length and the
    windows are those of framing the whole file (the smaller of the two rates' window counts).
    """
    from sea_tf.audio import stream_windows
    from sea_tf.audio.weighting import window_dba

    for block in stream_windows(item.path, [teacher_sr, student_sr], hop_size=hop_size, center=center,
                                block_windows=block_windows, resampler=resampler, retries=read_retries,
                                backoff_s=read_backoff_s, log=log):
        teacher, student = block.frames
        yield {"start": block.start, "teacher": teacher, "audio": student, "timestamp": block.timestamps,
               "loudness_db": block.loudness_db, "dBA": window_dba(teacher, teacher_sr)}


def failure_kind(exc: BaseException) -> str:
    """``"transient"`` for a failure of the operating system (I/O, timeouts), else ``"permanent"``.

    A transient failure may be gone by the next run (a mount that was down), so a resume retries
    it; a permanent one (a malformed file) fails the same way every time.
    """
    from sea_tf.audio import TransientAudioError

    return "transient" if isinstance(exc, (TransientAudioError, OSError)) else "permanent"


class _Prefetcher:
    """Decode files ``start..`` on ``workers`` threads into window blocks, at most ``depth`` blocks ahead.

    Iterating yields ``(pos, kind, payload)`` in file order: ``("block", dict)`` for each block of
    file ``pos`` (the file's last block has ``"last": True``), then ``("done", None)`` or
    ``("error", (message, failure kind))``. Memory is bounded by blocks, not files, so an hour-long recording costs
    what a short clip does. The file being consumed may always take the last free place, so the
    files further ahead can never fill every place while the consumer waits for it.
    """

    def __init__(self, files: list[InputFile], start: int, workers: int, depth: int,
                 decode: Callable[[InputFile], Iterator[_Block]]) -> None:
        self.files, self.decode, self.depth = files, decode, max(2, depth)
        self.start = start
        self.cond = threading.Condition()
        self.queues: dict[int, collections.deque[tuple[str, _Payload]]] = {}  # pos -> (kind, payload)
        self.head = start             # the file the consumer reads
        self.held = 0                 # blocks waiting, all files
        self.next_pos = start
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, name=f"decode-{i}", daemon=True)
                        for i in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    def _put(self, pos: int, kind: str, payload: _Payload) -> bool:
        with self.cond:
            if kind == "block":
                while not self.stopping and not (self.held < self.depth - (0 if pos == self.head else 1)):
                    self.cond.wait()
                if self.stopping:
                    return False
                self.held += 1
            self.queues[pos].append((kind, payload))
            self.cond.notify_all()
            return True

    def _work(self) -> None:
        while True:
            with self.cond:
                if self.stopping or self.next_pos >= len(self.files):
                    return
                pos = self.next_pos
                self.next_pos += 1
                self.queues[pos] = collections.deque()
            blocks = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # short/silent files are still embedded; nothing to act on
                    blocks = self.decode(self.files[pos])
                    held: _Block | None = None   # one block held back, to mark the file's last one
                    for block in blocks:
                        if held is not None and not self._put(pos, "block", held):
                            return
                        held = block
                    if held is not None:
                        held["last"] = True
                        if not self._put(pos, "block", held):
                            return
                self._put(pos, "done", None)
            except Exception as exc:  # noqa: BLE001 - any decoding failure skips just this file
                self._put(pos, "error", (f"{type(exc).__name__}: {exc}", failure_kind(exc)))
            finally:
                close = getattr(blocks, "close", None)
                if close is not None:
                    close()

    def __iter__(self) -> Iterator[tuple[int, str, _Payload]]:
        for pos in range(self.start, len(self.files)):
            while True:
                with self.cond:
                    while not self.queues.get(pos):
                        self.cond.wait()
                    kind, payload = self.queues[pos].popleft()
                    if kind == "block":
                        self.held -= 1
                    else:
                        del self.queues[pos]
                        self.head = pos + 1
                    self.cond.notify_all()
                yield pos, kind, payload
                if kind != "block":
                    break

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for thread in self.threads:
            thread.join()
