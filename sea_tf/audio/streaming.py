"""Streaming one file block by block: read → mono → resample (soxr stream) → windows, memory flat in its length.

A long field recording framed whole costs ~1.4 GB per hour at 48 kHz and hop 0.5 s; the functions
below read, downmix, resample and frame it in blocks, so memory depends on the block size only.
soxr's streaming resampler carries its filter state across blocks and gives the very samples of the
one-shot ``soxr.resample`` (bit-identical, checked in tests/test_audio_stream.py), so a streamed file
yields exactly :func:`~sea_tf.audio.framing.frame_audio`'s windows.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Protocol, Sequence

import numpy as np
import numpy.typing as npt
import soxr

from sea_tf.audio.checks import check_audio, check_hop_size, check_sample_rate
from sea_tf.audio.files import read_block_frames, to_mono
from sea_tf.audio.framing import WindowFramer, window_loudness_db
from sea_tf.audio.reading import read_mono_blocks
from sea_tf.audio.resampling import RESAMPLERS, resample
from sea_tf.errors import AudioError, ConfigError, SeaTFWarning


class WindowBlock(NamedTuple):
    """Consecutive 1-s windows of one file, at one or several sample rates (:func:`stream_windows`).

    Attributes
    ----------
    start : int
        Index of the first window in the file (window ``start + i`` is row ``i``).
    timestamps : np.ndarray [shape=(b,), dtype=float64]
        Seconds, ``(start + arange(b)) * hop_size``, as :func:`frame_audio`'s.
    frames : tuple of np.ndarray [shape=(b, sr_j), dtype=float32]
        The windows at each requested rate, in the order asked for.
    loudness_db : np.ndarray [shape=(b,), dtype=float32]
        :func:`window_loudness_db` of ``frames[0]``.
    """
    start: int
    timestamps: npt.NDArray[np.float64]
    frames: tuple[npt.NDArray[np.float32], ...]
    loudness_db: npt.NDArray[np.float32]


class _BlockResampler(Protocol):
    """Resamples one block of a mono stream; ``last`` says the stream ends after it."""

    def __call__(self, block: npt.NDArray[np.float32], /, last: bool = False) -> npt.NDArray[np.float32]: ...


class _StreamResampler:
    """soxr's streaming resampler, or the identity when the rates agree."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.stream = None if sr_in == sr_out else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32",
                                                                       quality="HQ")

    def __call__(self, block: npt.NDArray[np.float32], /, last: bool = False) -> npt.NDArray[np.float32]:
        if self.stream is None:
            return block
        resampled: npt.NDArray[np.float32] = self.stream.resample_chunk(block, last=last)
        return resampled


def stream_windows(path: Path | str, sample_rates: Sequence[int], *, hop_size: float = 0.1, center: bool = True,
                   block_windows: int = 32, resampler: str = "soxr-hq", retries: int = 0, backoff_s: float = 0.5,
                   log: logging.Logger | None = None) -> Iterator[WindowBlock]:
    """Read, downmix, resample and frame one file in blocks: memory flat in the file's length.

    For each rate in ``sample_rates`` the windows are exactly those of
    ``prepare_frames(*load_audio(path), rate, hop_size=hop_size, center=center)`` (soxr's streaming resampler gives
    the one-shot resampler's samples bit for bit); when the rates' window counts differ (their
    resampled lengths round differently), the file has the smaller count at every rate, as
    ``sea-tf teacher-embed`` pairs them. Peak memory is a few blocks of ``block_windows`` windows
    at each rate plus one read block, whatever the file's length.

    Parameters
    ----------
    path : str or Path
        Any file :func:`load_audio` reads.
    sample_rates : sequence of int
        Rates (Hz) to frame at; the first one's loudness is returned.
    hop_size : float
        Seconds between windows.
    center : bool
        Window ``k`` centred on ``k * hop_size``.
    block_windows : int
        Windows per yielded block (the last block may be shorter).
    resampler : {"soxr-hq", "resampy-kaiser-best", "resampy-kaiser-fast"}
        resampy filters a whole signal at once and cannot stream: with them the file is read whole
        and resampled with :func:`resample` (memory grows with the file, as before), then framed in
        blocks.
    retries, backoff_s, log
        Transient read errors: see :func:`read_mono_blocks`.

    Yields
    ------
    WindowBlock
        ``start`` increasing from 0 without gaps; at least one window in all.

    Examples
    --------
    >>> for block in stream_windows("rec.wav", [48000, 8000], hop_size=0.5):   # doctest: +SKIP
    ...     teacher_windows, student_windows = block.frames
    """
    if resampler not in RESAMPLERS:
        raise ConfigError(f"resampler must be one of {', '.join(RESAMPLERS)}; got {resampler!r}")
    rates = [check_sample_rate(r, what="target sample rate") for r in sample_rates]
    if not rates:
        raise AudioError("stream_windows needs at least one sample rate")
    hop_size = check_hop_size(hop_size)
    block_windows = int(block_windows)
    if block_windows < 1:
        raise ConfigError(f"block_windows must be a positive integer, got {block_windows}")
    framers = [WindowFramer(r, hop_size=hop_size, center=center) for r in rates]
    sr, blocks = read_mono_blocks(path, retries=retries, backoff_s=backoff_s, log=log)
    return _paired_blocks(path, sr, blocks, rates, framers, hop_size, block_windows, resampler)


def stream_array_windows(audio: npt.ArrayLike, sr: int, sample_rate: int, *, hop_size: float = 0.1,
                         center: bool = True, block_windows: int = 32, name: str = "audio") -> Iterator[WindowBlock]:
    """:func:`stream_windows` for a signal already in memory: the windows of :func:`prepare_frames`
    in blocks, resampled block by block (soxr's streaming resampler, the one-shot's samples), so
    only the input, one block of windows and soxr's state are held, never every window at once.

    Parameters
    ----------
    audio : array_like [shape=(n,) or (n, channels)]
    sr : int
        Rate of ``audio`` in Hz.
    sample_rate : int
        The model's rate in Hz.
    hop_size, center
        As in :func:`frame_audio`.
    block_windows : int
        Windows per yielded block.
    name : str
        How to name the input in warnings and errors.

    Yields
    ------
    WindowBlock
        With one entry in ``frames``.
    """
    sr = check_sample_rate(sr)
    rate = check_sample_rate(sample_rate, what="model sample rate")
    hop_size = check_hop_size(hop_size)
    block_windows = int(block_windows)
    if block_windows < 1:
        raise ConfigError(f"block_windows must be a positive integer, got {block_windows}")
    mono = to_mono(check_audio(audio, name=name))
    step = read_block_frames(sr, 1)
    chunks = (mono[i:i + step] for i in range(0, len(mono), step))
    with warnings.catch_warnings():
        # check_audio above already warned once about all-zero input.
        warnings.filterwarnings("ignore", message=".*every sample is zero.*", category=SeaTFWarning)
        yield from _paired_blocks(name, sr, chunks, [rate], [WindowFramer(rate, hop_size=hop_size, center=center)],
                                  hop_size, block_windows, "soxr-hq")


def _paired_blocks(path: Path | str, sr: int, blocks: Iterable[npt.NDArray[np.float32]], rates: list[int],
                   framers: list[WindowFramer], hop_size: float, block_windows: int,
                   resampler: str) -> Iterator[WindowBlock]:
    """The generator behind :func:`stream_windows`: windows at every rate, paired by index."""
    resamplers: list[_BlockResampler]
    if resampler == "soxr-hq":
        resamplers = [_StreamResampler(sr, r) for r in rates]
    else:
        blocks = iter([np.concatenate(list(blocks))])
        resamplers = [lambda b, last=False, r=r: resample(b, sr, r, method=resampler) if len(b) else b
                      for r in rates]
    pending: list[list[npt.NDArray[np.float32]]] = [[] for _ in rates]   # windows produced, not yet yielded, per rate
    have = [0] * len(rates)
    start = 0

    def ready(final: bool) -> Iterator[WindowBlock]:
        nonlocal start
        common = min(have)
        while common >= block_windows or (final and common > 0):
            b = min(block_windows, common)
            parts = tuple(_pop(pending[j], b) for j in range(len(rates)))
            for j in range(len(rates)):
                have[j] -= b
            common -= b
            timestamps = (start + np.arange(b, dtype=np.float64)) * hop_size
            yield WindowBlock(start, timestamps, parts, window_loudness_db(parts[0]))
            start += b

    def add(j: int, windows: npt.NDArray[np.float32]) -> None:
        if len(windows):
            pending[j].append(windows)
            have[j] += len(windows)

    for block in blocks:
        for j in range(len(rates)):
            add(j, framers[j].push(resamplers[j](block)))
        yield from ready(final=False)
    for j in range(len(rates)):
        # soxr holds back its filter's delay until told the stream has ended.
        add(j, framers[j].push(resamplers[j](np.empty(0, np.float32), last=True)))
        add(j, framers[j].finish())
    if framers[0].n_in < framers[0].frame_len - (framers[0].frame_len // 2 if framers[0].center else 0):
        warnings.warn(f"{path}: audio is shorter than the 1-s window; zero-padding it to one window", SeaTFWarning,
                      stacklevel=2)
    yield from ready(final=True)


def _pop(parts: list[npt.NDArray[np.float32]], b: int) -> npt.NDArray[np.float32]:
    """The first ``b`` windows of a list of window arrays (removed from the list)."""
    taken: list[npt.NDArray[np.float32]] = []
    n = 0
    while n < b:
        head = parts[0]
        need = b - n
        if len(head) <= need:
            taken.append(parts.pop(0))
            n += len(head)
        else:
            taken.append(head[:need])
            parts[0] = head[need:]
            n += need
    return taken[0] if len(taken) == 1 else np.concatenate(taken)
