"""TensorFlow's start-up lines: which ones a sea-tf user never needs to see, and how they are dropped.

On a machine without a GPU, ``import tensorflow`` (2.21) and its first device probe print C++
lines that no log level reaches: absl's "All log messages before absl::InitializeLog() ..." notice
and the INFO lines after it are written before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, and
"failed call to cuInit" is an ERROR line, which only level 3 (that also hides real errors) removes.
They are written from C++ straight to file descriptor 2, so :func:`quiet_stderr` points fd 2 at a
temporary file for the duration of the import and then writes back every line except the known
banner lines below. Nothing else is touched: ``TF_ENABLE_ONEDNN_OPTS`` is left as it is (it changes
numerics), Python warnings raised during the import are written back, and lines about CUDA are only
dropped when the machine has no NVIDIA driver (on a GPU machine they explain why a GPU is unused).

The same filter is put around a TFLite conversion and the first LiteRT interpreter allocation of
``sea-tf export``/``classify``, whose C++ code prints one-line notices there (patterns below).

Setting ``SEA_TF_DEBUG=1`` (what ``sea-tf ... --debug`` does) keeps every line and leaves
TensorFlow's log level at its default. This module never imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
import tempfile
from typing import Iterator

DEBUG_ENV = "SEA_TF_DEBUG"

# The prefix absl/TensorFlow C++ logging puts on a line: severity + MMDD, time (before absl is
# initialised it reads "00:00:<epoch seconds>"), thread id, file:line.
_ABSL_PREFIX = r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] "

# Harmless on every machine: absl's pre-initialisation notice, duplicate plugin registrations, and
# TensorFlow describing how it was built.
BANNER = [re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    _ABSL_PREFIX + r"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for plugin "
                   r"\w+ when one has already been registered$",
    _ABSL_PREFIX + r"computation placer already registered\. ",
    _ABSL_PREFIX + r"oneDNN custom operations are on\. ",
    _ABSL_PREFIX + r"This TensorFlow binary is optimized to use available CPU instructions in "
                   r"performance-critical operations\.$",
    r"^To enable the following instructions: .+, in other operations, rebuild TensorFlow with the "
    r"appropriate compiler flags\.$",
)]

# The TFLite converter's calibration step: its settings, printed once per int8/int16x8 conversion,
# and LiteRT's notice that it uses its default CPU delegate (once per process).
TFLITE_BANNER = [re.compile(p) for p in (
    r"^fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+$",
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$",
)]

# Only noise where there is no GPU to use: the CUDA probe failing as expected.
CPU_ONLY_BANNER = [re.compile(p) for p in (
    _ABSL_PREFIX + r"Could not find cuda drivers on your machine, GPU will not be used\.$",
    _ABSL_PREFIX + r"failed call to cuInit: ",
    r"(^|\] )TF-TRT Warning: Could not find TensorRT$",
)]


def debug_requested() -> bool:
    """Whether the user asked for every TensorFlow line (``SEA_TF_DEBUG`` set and not ``0``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def cpu_only() -> bool:
    """Whether this machine has no NVIDIA (or WSL GPU) driver, so CUDA probe failures are expected."""
    return not (os.path.exists("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia[0-9]*")
                or os.path.exists("/dev/dxg"))


def is_banner(line: str, *, no_gpu: bool) -> bool:
    """Whether ``line`` (without its newline) is a known start-up line to drop.

    Parameters
    ----------
    line : str
        One line of stderr, newline stripped.
    no_gpu : bool
        :func:`cpu_only` of this machine; CUDA lines are dropped only then.
    """
    patterns = BANNER + TFLITE_BANNER + (CPU_ONLY_BANNER if no_gpu else [])
    return any(p.search(line) for p in patterns)


def filter_banner(data: bytes, *, no_gpu: bool) -> bytes:
    """``data`` (captured stderr) without its banner lines; every other byte is kept, in order."""
    kept = [line for line in data.splitlines(keepends=True)
            if not is_banner(line.decode("utf-8", "replace").rstrip("\r\n"), no_gpu=no_gpu)]
    return b"".join(kept)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Capture fd 2 inside the block; afterwards write it back without the banner lines.

    If the block raises, everything captured is written back unfiltered (it may explain the
    failure). With ``SEA_TF_DEBUG`` set, or when fd 2 cannot be duplicated, nothing is captured.
    Only for short blocks that print no progress (importing TensorFlow, one TFLite conversion):
    what anything writes to stderr meanwhile is delayed until the block ends.
    """
    if debug_requested():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a closed stderr): nothing to filter
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as capture:
        try:
            os.dup2(capture.fileno(), 2)
            yield
            failed = False
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            data = capture.read()
            if not failed:
                data = filter_banner(data, no_gpu=cpu_only())
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(2, view):]
