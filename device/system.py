"""What the benchmark ran on (CPU, OS, Python, interpreter) and how much memory it used."""
import os
import platform
import resource
import socket
import sys
from importlib import metadata
from typing import Any


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    ``VmHWM`` of ``/proc/self/status`` where available: unlike ``getrusage``'s ``ru_maxrss``, it
    is not inherited from a large parent (e.g. a TensorFlow process that started the bench).
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float | None:
    """Current resident set size in MiB (``/proc/self/statm``); ``None`` where unavailable."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def cpu_model() -> str:
    """A human-readable CPU name from ``/proc/cpuinfo`` (Pi boards: the ``Model`` line)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        pass
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        found = fields.get(key)
        if found and not found.isdigit():
            return found
    if fields.get("cpu part"):  # aarch64 kernels often list only implementer/part numbers
        return f"ARM implementer {fields.get('cpu implementer', '?')} part {fields['cpu part']}"
    return platform.processor() or "unknown"


#: The vector-instruction features that decide which kernels XNNPACK, oneDNN, Eigen and numpy run, as
#: ``/proc/cpuinfo`` names them (x86 ``flags``, aarch64 ``Features``), in the order they are reported.
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")


def cpu_flags() -> list[str]:
    """The :data:`KERNEL_FLAGS` this CPU has, in that order; empty where ``/proc/cpuinfo`` cannot be read."""
    present: set[str] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):  # the first CPU's line stands for all
                    present.update(value.split())
                    break
    except OSError:
        pass
    return [flag for flag in KERNEL_FLAGS if flag in present]


def usable_cores() -> int:
    """Logical CPUs this process may run on (its affinity mask: a container's or ``taskset``'s share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity call on macOS
        return os.cpu_count() or 1


def os_release() -> str:
    """``PRETTY_NAME`` from ``/etc/os-release`` (e.g. "Debian GNU/Linux 12 (bookworm)")."""
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def environment(interpreter_info: dict[str, str]) -> dict[str, Any]:
    """The environment block of a benchmark report.

    Parameters
    ----------
    interpreter_info : dict
        From :func:`device.interpreter.find_interpreter`.

    Returns
    -------
    dict
        hostname, CPU model, architecture, logical cores, OS, kernel, Python, interpreter package
        and version, numpy and soundfile versions, and where the harness was loaded from.
    """
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "architecture": platform.machine(),
        "cores": os.cpu_count(),
        "os": os_release(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "interpreter": dict(interpreter_info),
        "numpy": _version("numpy"),
        "soundfile": _version("soundfile"),
        "soxr": _version("soxr"),
        "harness_dir": os.path.dirname(os.path.abspath(__file__)),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
