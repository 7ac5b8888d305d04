"""Reading one file as mono blocks, with transient errors of the operating system retried.

A file libsndfile cannot decode fails at once; an errno (a stale NFS handle, a mount not up yet)
is retried with backoff, and the file is reopened at the frame where it failed.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import numpy.typing as npt
import soundfile as sf

from sea_tf.audio.files import _check_wav_complete, _open_checked, read_block_frames
from sea_tf.errors import AudioError

#: libsndfile's error code for a failure of the operating system (open/read errno), as opposed to a
#: file it does not understand: the only libsndfile error worth retrying.
_SF_ERR_SYSTEM = 2


class TransientAudioError(AudioError):
    """The operating system failed to open or read an audio file (an errno: NFS, a mount not up yet).

    Raised by :func:`read_mono_blocks` once its retries are spent; a file libsndfile cannot
    decode raises a plain :class:`AudioError` at once instead.
    """


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system's (an errno, worth a retry) rather than the file's."""
    if isinstance(exc, sf.LibsndfileError):
        return bool(exc.code == _SF_ERR_SYSTEM)
    return isinstance(exc, OSError)


def read_mono_blocks(path: Path | str, *, block_frames: int | None = None, retries: int = 0, backoff_s: float = 0.5,
                     log: logging.Logger | None = None) -> tuple[int, Iterator[npt.NDArray[np.float32]]]:
    """Open an audio file and return its rate and an iterator over mono float32 blocks.

    Every format :func:`~sea_tf.audio.files.load_audio` reads streams (libsndfile decodes all of them sequentially),
    and the samples are those of ``to_mono(load_audio(path)[0])``. A transient failure of the
    operating system (an ``OSError`` such as a stale NFS handle or a missing mount, or libsndfile's
    "System error") is retried up to ``retries`` times per file, waiting ``backoff_s * 2**i``
    seconds before retry ``i``; the file is reopened and reading continues at the frame where it
    failed, so the blocks are the same as those of an undisturbed read. A file libsndfile cannot
    decode (or with NaN/infinite samples, or a truncated WAV) fails at once with :class:`AudioError`.

    Parameters
    ----------
    path : str or Path
    block_frames : int, optional
        Source frames per block (the last block may be shorter); default
        :func:`~sea_tf.audio.files.read_block_frames` of the file's rate and channels, so a block is bounded whatever
        the header says. The header is checked (:func:`~sea_tf.audio.files.check_file_header`) before any read.
    retries : int
        Retries of a transient error per file (0: fail at the first).
    backoff_s : float
        Seconds before the first retry; doubled for each further one.
    log : logging.Logger, optional
        Where each retry is reported (warning); the ``sea_tf.audio`` logger by default.

    Returns
    -------
    sr : int
        The file's sample rate in Hz.
    blocks : iterator of np.ndarray [shape=(<= block_frames,), dtype=float32]
        Mono samples (channel mean); at least one sample in all, else :class:`AudioError`.
    """
    path = Path(path)
    # The package's logger, named as before the package was split, so handlers attached to it still hear.
    log = log or logging.getLogger("sea_tf.audio")
    if block_frames is not None:
        block_frames = int(block_frames)
        if block_frames < 1:
            raise AudioError(f"block_frames must be a positive number of frames, got {block_frames}")
    reader = _RetryingReader(path, block_frames=block_frames, retries=retries, backoff_s=backoff_s, log=log)
    return reader.sr, reader.blocks()


_T = TypeVar("_T")


class _RetryingReader:
    """One file read for :func:`read_mono_blocks`: the retry policy and a handle that a transient
    failure replaces with one reopened where it struck.

    The file is opened (under the policy) by the constructor, so a missing or undecodable file
    fails when :func:`read_mono_blocks` is called, not at the first block. Opening and every read
    draw on one budget of ``retries`` per file; retry ``i`` waits ``backoff_s * 2**i`` seconds.

    Parameters
    ----------
    path : Path
    block_frames : int or None
        Source frames per read; None: :func:`~sea_tf.audio.files.read_block_frames` of the
        file's rate and channels.
    retries : int
    backoff_s : float
    log : logging.Logger
    """

    def __init__(self, path: Path, *, block_frames: int | None, retries: int, backoff_s: float,
                 log: logging.Logger) -> None:
        self.path = path
        self.retries = int(retries)
        self.backoff_s = backoff_s
        self.log = log
        self.attempt = 0          # retries made so far, opening and reading together
        self.done = 0             # frames delivered: where a reopened file resumes
        self.handle: sf.SoundFile = self._retry("opening", self._reopen)
        self.sr = int(self.handle.samplerate)
        self.block_frames = (block_frames if block_frames is not None
                             else read_block_frames(self.sr, self.handle.channels))

    def _retry(self, what: str, fn: Callable[[], _T], error: Exception | None = None) -> _T:
        """``fn()`` under the retry policy; ``error`` is a failure that already happened (a read),
        so the first call of ``fn`` is then a retry."""
        while True:
            if error is None:
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - sorted into transient / not below
                    error = exc
            if not _is_transient(error):
                if isinstance(error, AudioError):
                    raise error
                raise AudioError(f"{self.path}: cannot read audio ({error}); is the file truncated or not "
                                 "audio?") from error
            if self.attempt >= self.retries:
                raise TransientAudioError(f"{self.path}: {what} failed {self.attempt + 1} time(s) ({error}); "
                                          "check the file system (NFS, mounts) and re-run, which resumes") from error
            wait = float(self.backoff_s) * 2 ** self.attempt
            self.log.warning("%s: %s failed (%s); retry %d of %d in %.2f s", self.path, what, error,
                             self.attempt + 1, self.retries, wait)
            self.attempt += 1
            time.sleep(wait)
            error = None

    def _reopen(self) -> sf.SoundFile:
        """A checked handle positioned at frame ``done`` (0 when the file is first opened)."""
        if not self.path.exists():
            # A file that was listed a moment ago and is gone now: a mount or NFS hiccup until the
            # retries say otherwise (ENOENT is an OSError, like any errno).
            raise FileNotFoundError(2, "No such file or directory", str(self.path))
        if not self.path.is_file():
            raise AudioError(f"{self.path}: not a regular file; pass audio files")
        _check_wav_complete(self.path)
        handle = _open_checked(self.path)
        try:
            if self.done:   # only after the first block, so block_frames is set
                if handle.seekable():
                    handle.seek(self.done)
                else:  # decoded stream without seeking: skip what was already delivered
                    left = self.done
                    while left:
                        got = len(handle.read(min(left, self.block_frames), dtype="float32", always_2d=True))
                        if not got:
                            raise OSError(f"{self.path} ended before frame {self.done} on reopening (was it "
                                          "replaced?)")
                        left -= got
        except BaseException:
            handle.close()
            raise
        return handle

    def blocks(self) -> Iterator[npt.NDArray[np.float32]]:
        """Mono float32 blocks to the end of the file; the handle is closed when they end or fail."""
        try:
            while True:
                try:
                    block = self.handle.read(self.block_frames, dtype="float32", always_2d=True)
                except Exception as exc:  # noqa: BLE001 - the retry policy sorts it
                    # Closed before the wait; should no retry succeed, closing it again below is a
                    # no-op (SoundFile.close may be called more than once).
                    self.handle.close()
                    self.handle = self._retry("reading", self._reopen, error=exc)
                    continue
                if not len(block):
                    break
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
                if not np.all(np.isfinite(mono)):
                    raise AudioError(f"{self.path}: NaN or infinite samples near {self.done / self.sr:.1f} s; "
                                     "re-encode or clean the file")
                self.done += len(block)
                yield mono
            if self.done == 0:
                raise AudioError(f"{self.path}: audio is empty (0 samples); remove it from the input")
        finally:
            self.handle.close()
