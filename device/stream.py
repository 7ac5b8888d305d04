"""Live audio on the board: a source, streaming mono resampling, and 1-s windows from a ring buffer.

Reading order: :func:`open_source` gives a :class:`Source` whose :meth:`Source.blocks` yields
:class:`Block` s (float32 ``[n, channels]`` plus the time the block's last sample arrived);
:class:`StreamResampler` downmixes each block to mono and resamples it to the model's rate
(``soxr.ResampleStream``, which gives the same samples as the one-shot ``soxr.resample`` of the
whole file that ``device.bench --audio`` uses); :class:`WindowRing` keeps the last seconds and
hands out window k = stream samples ``[k*hop, k*hop + frame)`` as soon as its last sample is in.

Sources: a microphone through PortAudio (``sounddevice``), a WAV/FLAC file (as fast as it can be
read, or paced at real time), or raw 16-bit little-endian PCM on stdin. Microphone and paced-file
blocks go through a bounded queue filled by another thread: when the consumer falls more than
:data:`QUEUE_S` seconds behind, blocks are dropped and counted (overruns, dropped samples), and the
stream continues with zeros in their place so that window times stay true.
"""
import dataclasses
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from device.errors import SourceError

BLOCK_S = 0.05          # seconds of audio per block read from a file, stdin or the microphone
QUEUE_S = 2.0           # how far the consumer may fall behind a live source before audio is dropped
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".w64", ".rf64", ".caf", ".mp3")
_EOF = object()


@dataclasses.dataclass
class Block:
    """Consecutive source samples.

    Attributes
    ----------
    samples : np.ndarray [shape=(n, channels), dtype=float32]
        In [-1, 1] at the source's rate.
    arrival : float
        ``time.perf_counter()`` when the last sample was available.
    dropped : int
        Source samples lost just before this block (the consumer fell behind).
    """
    samples: np.ndarray
    arrival: float
    dropped: int = 0


class Source:
    """Base of the audio sources; ``kind`` is ``file``, ``stdin`` or ``microphone``."""

    kind = "source"

    def __init__(self, name: Path | str, sample_rate: int, channels: int) -> None:
        self.name, self.sample_rate, self.channels = str(name), int(sample_rate), int(channels)
        self.overruns = 0        # times audio was lost (queue full, or PortAudio input overflow)
        self.dropped = 0         # source samples lost
        self.read_samples = 0    # source samples delivered
        self.stop = threading.Event()

    def blocks(self) -> Iterator[Block]:
        """Yield :class:`Block` s until the source ends or :meth:`close` is called."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop delivering audio and release the device or file."""
        self.stop.set()

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the summary."""
        return {"kind": self.kind, "name": self.name, "sample_rate": self.sample_rate, "channels": self.channels}


class _QueuedSource(Source):
    """A source filled by another thread (PortAudio's callback or a real-time pacer)."""

    def __init__(self, name: Path | str, sample_rate: int, channels: int) -> None:
        super().__init__(name, sample_rate, channels)
        self._queue: queue.Queue[Block | object] = queue.Queue(maxsize=max(2, math.ceil(QUEUE_S / BLOCK_S)))
        self._pending_drop = 0
        self.error: SourceError | None = None

    def _offer(self, samples: np.ndarray, arrival: float) -> None:
        # called from the producer thread: never block it (a blocked PortAudio callback drops audio itself)
        try:
            self._queue.put_nowait(Block(samples, arrival, self._pending_drop))
            self._pending_drop = 0
        except queue.Full:
            self.overruns += 1
            self.dropped += len(samples)
            self._pending_drop += len(samples)

    def _finish(self, error: SourceError | None = None) -> None:
        self.error = error
        while True:
            try:
                self._queue.put(_EOF, timeout=0.1)
                return
            except queue.Full:
                if self.stop.is_set():
                    return

    def blocks(self) -> Iterator[Block]:
        while not self.stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if not isinstance(item, Block):                # _EOF, the only other thing queued
                if self.error:
                    raise self.error
                return
            self.read_samples += len(item.samples)
            yield item


class FileSource(_QueuedSource):
    """A WAV/FLAC file, read block by block; ``realtime`` paces it like a microphone."""

    kind = "file"

    def __init__(self, path: Path | str, *, realtime: bool = False) -> None:
        from device.audio import _frames_known, open_checked

        if not os.path.isfile(path):
            raise SourceError(f"{path}: audio file not found; pass an existing WAV/FLAC file, '-' for stdin "
                              "or a microphone (default, a device name or index)")
        # The header is checked before any sample is read or resampled (rate, channels, size).
        self._file = open_checked(path, error=SourceError)
        super().__init__(path, self._file.samplerate, self._file.channels)
        self.realtime = bool(realtime)
        self.frames = self._file.frames
        self._declared = self.frames if _frames_known(self._file) else None
        self._pos = 0
        self._block = max(1, int(round(BLOCK_S * self.sample_rate)))
        if self.realtime:
            self._thread = threading.Thread(target=self._pace, name="listen-file-pacer", daemon=True)
            self._thread.start()

    def _read(self) -> np.ndarray | None:
        """The next block, or None at the end; a read that fails, or a file that ends before the
        frames its header declared (cut while being read), raises :class:`SourceError`."""
        try:
            block = self._file.read(self._block, dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - libsndfile's and the OS's errors alike end the stream
            raise SourceError(f"{self.name}: reading failed after {self._pos / self.sample_rate:.2f} s "
                              f"({type(exc).__name__}: {exc}); the outputs so far are kept, marked partial") from exc
        if len(block):
            self._pos += len(block)
            return block
        if self._declared is not None and self._pos < self._declared:
            raise SourceError(f"{self.name}: the file ended after {self._pos / self.sample_rate:.2f} s of the "
                              f"{self._declared / self.sample_rate:.2f} s its header declared (cut while being "
                              "read?); the outputs so far are kept, marked partial")
        return None

    def _pace(self) -> None:
        start, pos = time.perf_counter(), 0
        try:
            while not self.stop.is_set():
                block = self._read()
                if block is None:
                    break
                pos += len(block)
                delay = start + pos / self.sample_rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self._offer(block, time.perf_counter())
        except SourceError as exc:
            self._finish(exc)
            return
        except Exception as exc:  # noqa: BLE001 - reported by the consumer as a SourceError
            self._finish(SourceError(f"{self.name}: reading failed after {pos / self.sample_rate:.1f} s ({exc})"))
            return
        self._finish()

    def blocks(self) -> Iterator[Block]:
        if self.realtime:
            yield from super().blocks()
            return
        while not self.stop.is_set():
            block = self._read()
            if block is None:
                return
            self.read_samples += len(block)
            yield Block(block, time.perf_counter())

    def close(self) -> None:
        super().close()
        if self.realtime:
            self._thread.join(timeout=2)
        self._file.close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "realtime": self.realtime, "duration_s": self.frames / self.sample_rate}


class StdinSource(Source):
    """Raw 16-bit little-endian PCM on stdin (e.g. ``arecord -f S16_LE -r 16000 -c 1 | ...``)."""

    kind = "stdin"
    MAGIC = {b"RIFF": "a WAV file", b"fLaC": "a FLAC file", b"OggS": "an Ogg file", b"ID3": "an MP3 file",
             b"FORM": "an AIFF file"}

    def __init__(self, sample_rate: int | None, channels: int | None, *, stream: IO[bytes] | None = None) -> None:
        if not sample_rate or int(sample_rate) <= 0 or not channels or int(channels) <= 0:
            raise SourceError("--source -: raw PCM on stdin needs --rate HZ and --channels N (e.g. --rate 16000 "
                              "--channels 1)")
        from device.audio import MAX_FILE_SAMPLE_RATE, MIN_FILE_SAMPLE_RATE

        if not MIN_FILE_SAMPLE_RATE <= int(sample_rate) <= MAX_FILE_SAMPLE_RATE:
            raise SourceError(f"--rate {sample_rate}: outside 1 kHz-384 kHz; pass the rate the producer records at")
        super().__init__("-", sample_rate, channels)
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._bytes = 2 * self.channels * max(1, int(round(BLOCK_S * self.sample_rate)))

    def blocks(self) -> Iterator[Block]:
        first, leftover = True, b""
        while not self.stop.is_set():
            data = self._stream.read(self._bytes)
            if not data:
                break
            if first:
                self._check_header(data)
                first = False
            data = leftover + data
            usable = len(data) - len(data) % (2 * self.channels)
            leftover = data[usable:]
            if not usable:
                continue
            pcm = np.frombuffer(data[:usable], "<i2").reshape(-1, self.channels)
            self.read_samples += len(pcm)
            yield Block(pcm.astype(np.float32) / np.float32(32768.0), time.perf_counter())
        if leftover:
            raise SourceError(f"stdin ended {len(leftover)} byte(s) into a sample frame: this is not 16-bit PCM "
                              f"with {self.channels} channel(s); check --channels and the producer's format")

    def _check_header(self, data: bytes) -> None:
        for magic, what in self.MAGIC.items():
            if data.startswith(magic):
                raise SourceError(f"stdin holds {what}, not raw PCM; pass the file itself as --source FILE, or "
                                  "decode it to raw 16-bit PCM (sox FILE -t raw -e signed -b 16 -)")
        text = data[:4096]
        if len(text) >= 64 and all(32 <= c < 127 or c in (9, 10, 13) for c in text):
            raise SourceError("stdin looks like text, not raw 16-bit PCM; pipe audio samples "
                              "(e.g. arecord -t raw -f S16_LE) or pass a WAV/FLAC file as --source")


class MicrophoneSource(_QueuedSource):
    """A PortAudio input device through ``sounddevice`` (``default``, a name such as ``pulse``, or an index)."""

    kind = "microphone"

    def __init__(self, device: str | int | None, preferred_rate: int, *, rate: int | None = None,
                 channels: int | None = None) -> None:
        sd = _sounddevice()
        dev = None if device in (None, "", "default") else (int(device) if str(device).isdigit() else device)
        try:
            info = sd.query_devices(dev, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise SourceError(f"--source {device}: no such audio input device ({exc}); "
                              f"input devices: {list_input_devices(sd=sd)}") from None
        channels = int(channels or 1)
        if channels > info["max_input_channels"]:
            raise SourceError(f"--source {device}: {info['name']} has {info['max_input_channels']} input channel(s), "
                              f"{channels} asked; input devices: {list_input_devices(sd=sd)}")
        candidates = [int(rate)] if rate else [int(preferred_rate), int(info["default_samplerate"])]
        chosen, last = None, None
        for candidate in candidates:
            try:
                sd.check_input_settings(device=dev, channels=channels, samplerate=candidate, dtype="float32")
                chosen = candidate
                break
            except (ValueError, sd.PortAudioError) as exc:
                last = exc
        if chosen is None:
            raise SourceError(f"--source {device}: {info['name']} does not record at {' or '.join(map(str, candidates))} Hz "
                              f"({last}); pass --rate with a rate it supports; input devices: {list_input_devices(sd=sd)}")
        super().__init__(info["name"], chosen, channels)
        self._block = max(1, int(round(BLOCK_S * chosen)))

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status.input_overflow:
                self.overruns += 1
            self._offer(indata.copy(), time.perf_counter())

        try:
            self._stream = sd.InputStream(device=dev, channels=channels, samplerate=chosen, dtype="float32",
                                          blocksize=self._block, callback=callback,
                                          finished_callback=lambda: self._finish())
            self._stream.start()
        except sd.PortAudioError as exc:
            raise SourceError(f"--source {device}: cannot open {info['name']} ({exc}); it may be busy (another "
                              f"program recording?) or unplugged; input devices: {list_input_devices(sd=sd)}") from None

    def close(self) -> None:
        super().close()
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:  # noqa: BLE001 - closing a device that vanished is not worth an error
            pass


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise SourceError(f"a microphone source needs the sounddevice package and the system's PortAudio ({exc}); "
                          "install them with `pip install sounddevice` and `sudo apt install libportaudio2`, "
                          "or pass a WAV/FLAC file or '-' (PCM on stdin) as --source") from None
    return sounddevice


def list_input_devices(*, sd: Any = None) -> str:
    """``"index: name (N ch, R Hz); ..."`` of the PortAudio input devices, or why there are none."""
    try:
        sd = sd or _sounddevice()
        devices = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
    except Exception as exc:  # noqa: BLE001 - this only decorates another error message
        return f"(cannot list them: {exc})"
    if not devices:
        return "none (PortAudio sees no input device; connect a microphone or pass a file)"
    return "; ".join(f"{d['index']}: {d['name']} ({d['max_input_channels']} ch, {d['default_samplerate']:g} Hz)"
                     for d in devices)


def open_source(source: Path | str, model_rate: int, *, rate: int | None = None, channels: int | None = None,
                realtime: bool = False, stdin: IO[bytes] | None = None) -> Source:
    """The :class:`Source` named by ``--source``.

    Parameters
    ----------
    source : str
        ``-`` (raw PCM on stdin), a path to an audio file, or a microphone: ``default``, a
        PortAudio device name (``pulse``, ``hw:1,0``...) or index.
    model_rate : int
        The model's rate in Hz: a microphone is opened at it when it can be (no resampling).
    rate, channels : int, optional
        Stdin's format (required there); a microphone's rate and channels.
    realtime : bool
        Pace a file at real time (as a microphone would deliver it).
    """
    source = str(source)
    if source == "-":
        return StdinSource(rate, channels or 1, stream=stdin)
    if os.path.exists(source) or source.lower().endswith(AUDIO_SUFFIXES) or os.sep in source:
        return FileSource(source, realtime=realtime)
    return MicrophoneSource(source, model_rate, rate=rate, channels=channels)


class StreamResampler:
    """Mono downmix (mean over channels, float32) and streaming resampling to ``rate_out``."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.method = "none"
        self._stream: Any = None
        if self.rate_in != self.rate_out:
            try:
                import soxr
            except ImportError:
                raise SourceError(f"the source records at {self.rate_in} Hz and the model takes {self.rate_out} Hz, "
                                  "which needs soxr (pip install soxr, see requirements-device.txt) or a source "
                                  f"at {self.rate_out} Hz") from None
            self._stream = soxr.ResampleStream(self.rate_in, self.rate_out, 1, dtype="float32", quality="HQ")
            self.method = "soxr-hq"

    def __call__(self, samples: np.ndarray, *, last: bool = False) -> npt.NDArray[np.float32]:
        """Mono samples at ``rate_out`` for ``samples`` [n, channels] (``last`` flushes the resampler)."""
        mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else np.asarray(samples, np.float32)
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono, last=last)


class WindowRing:
    """A ring buffer of the stream that yields window k = samples ``[k*hop, k*hop + frame)``.

    Memory is ``2 * frame + hop`` samples whatever the stream length.
    """

    def __init__(self, frame_samples: int, hop_samples: int) -> None:
        if hop_samples <= 0:
            raise SourceError(f"hop of {hop_samples} samples: the hop must be positive")
        self.frame, self.hop = int(frame_samples), int(hop_samples)
        self._buf = np.zeros(2 * self.frame + self.hop, np.float32)
        self.base = 0            # stream index of _buf[0]
        self.end = 0             # stream index one past the last sample pushed
        self.next_k = 0          # the next window to hand out

    def push(self, samples: npt.ArrayLike) -> Iterator[tuple[int, int, npt.NDArray[np.float32]]]:
        """Append samples; yield ``(k, start, window)`` for every window completed by them.

        ``window`` is a read-only view into the ring, valid until the next call.
        """
        samples = np.asarray(samples, np.float32)
        while samples.size:
            if self.end - self.base == len(self._buf):
                self._compact()
            free = len(self._buf) - (self.end - self.base)
            take = min(free, samples.size)
            offset = self.end - self.base
            self._buf[offset:offset + take] = samples[:take]
            self.end += take
            samples = samples[take:]
            while self.next_k * self.hop + self.frame <= self.end:
                start = self.next_k * self.hop
                view = self._buf[start - self.base:start - self.base + self.frame]
                view.flags.writeable = False
                k = self.next_k
                self.next_k += 1
                yield k, start, view
                view.flags.writeable = True

    def _compact(self) -> None:
        keep_from = min(self.next_k * self.hop, self.end)       # samples before the next window are done
        if keep_from <= self.base:
            raise RuntimeError("window ring too small")         # cannot happen: capacity > frame
        n = self.end - keep_from
        self._buf[:n] = self._buf[keep_from - self.base:self.end - self.base]
        self.base = keep_from

    def tail_padding(self) -> int:
        """Zeros to append at the end of a file so that its last windows are those of the offline
        framing (``device.audio.frame_audio(center=False)``: padding up to a whole hop)."""
        n = self.end
        if n < self.frame:
            return self.frame - n
        extra = n - self.frame
        return math.ceil(extra / self.hop) * self.hop - extra
