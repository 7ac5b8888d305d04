"""What the benchmark ran on (CPU, OS, Python, interpreter), how much memory it used, and the
board's state around a measurement (:func:`board_facts`: governor, frequencies, temperatures, throttling)."""
import glob
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
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


def cpu_model(cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """A human-readable CPU name from ``cpuinfo`` (Pi boards: the ``Model`` line)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as fh:
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


def environment(interpreter_info: dict[str, Any]) -> dict[str, Any]:
    """The environment block of a benchmark report.

    Parameters
    ----------
    interpreter_info : dict
        From :func:`device.interpreter.open_interpreter` (package, module, version, xnnpack, op_resolver).

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


#: ``vcgencmd get_throttled`` bits (Raspberry Pi firmware,
#: https://www.raspberrypi.com/documentation/computers/os.html#get_throttled): bits 0-3 hold now,
#: bits 16-19 have held at some time since boot.
THROTTLE_BITS = {0: "under_voltage", 1: "arm_frequency_capped", 2: "currently_throttled", 3: "soft_temperature_limit",
                 16: "under_voltage_occurred", 17: "arm_frequency_capping_occurred", 18: "throttling_occurred",
                 19: "soft_temperature_limit_occurred"}
#: seconds ``vcgencmd`` may take (it answers in ~10 ms; a hung mailbox must not hang the bench)
VCGENCMD_TIMEOUT_S = 2.0


def board_facts(root: Path | str = "/") -> dict[str, Any]:
    """The board's state now, as the platform reports it: for every measurement, before and after.

    Only what the kernel or firmware says is reported: a current frequency below the maximum is
    no proof of throttling (an idle ``ondemand`` governor runs low too), so it is never read as one.
    Nothing here raises: a file or command that is absent or unreadable gives ``None`` and a line in
    ``notes`` saying why. Reading takes a few milliseconds (``vcgencmd`` ~10 ms on a Pi).

    Parameters
    ----------
    root : str or Path
        Where ``proc/`` and ``sys/`` are read from (``"/"``: this machine; tests pass a constructed
        tree). ``vcgencmd`` is looked up on ``PATH`` whatever the root.

    Returns
    -------
    dict
        ``time_unix`` (s), ``read_ms``, ``cpu_model``, ``cores`` (CPUs listed in sysfs),
        ``usable_cores`` (this process's affinity), ``load_avg`` ([1, 5, 15] min, or None),
        ``governor`` (str: the governors of all CPUs, "/"-joined when they differ; None),
        ``freq_mhz`` ({"cur": fastest CPU now, "min": lowest minimum, "max": highest maximum} in MHz,
        each None when unknown), ``cpus`` (per CPU: ``cpu``, ``governor``, ``cur_mhz``, ``min_mhz``,
        ``max_mhz`` (hardware limits), ``scaling_max_mhz`` (the policy's cap)), ``temperature_c`` (the
        hottest zone, °C, or None), ``thermal_zones`` (per zone: ``zone``, ``type``, ``temp_c``,
        ``trips`` [{``type``, ``temp_c``}], ``passed`` (trip types at or below ``temp_c``)),
        ``vcgencmd`` (None, or ``{"raw": "0x50005", "flags": {name: bool}}`` with the names of
        :data:`THROTTLE_BITS`) and ``notes`` (list of str).
    """
    start = time.perf_counter()
    base = Path(root)
    notes: list[str] = []
    facts: dict[str, Any] = {"time_unix": time.time()}
    try:
        cpu_dirs = sorted(glob.glob(str(base / "sys/devices/system/cpu/cpu[0-9]*")),
                          key=lambda d: int(re.sub(r"\D", "", Path(d).name) or 0))
        cpus = [_cpufreq(Path(d)) for d in cpu_dirs]
        facts.update(cpu_model=cpu_model(base / "proc/cpuinfo"), cores=len(cpu_dirs) or os.cpu_count(),
                     usable_cores=usable_cores(), load_avg=_load_avg(base / "proc/loadavg", notes))
        with_freq = [c for c in cpus if c["governor"] is not None or c["cur_mhz"] is not None]
        if not with_freq:
            notes.append("no cpufreq in sys/devices/system/cpu/cpu*/cpufreq (a VM, or a kernel without CPU frequency "
                         "scaling): governor and frequencies unknown")
        governors = sorted({c["governor"] for c in cpus if c["governor"]})
        facts.update(governor="/".join(governors) or None,
                     freq_mhz={"cur": _pick(max, cpus, "cur_mhz"), "min": _pick(min, cpus, "min_mhz"),
                               "max": _pick(max, cpus, "max_mhz")},
                     cpus=cpus)
        zones = _thermal_zones(base / "sys/class/thermal", notes)
        temps = [z["temp_c"] for z in zones if z["temp_c"] is not None]
        facts.update(temperature_c=max(temps) if temps else None, thermal_zones=zones,
                     vcgencmd=_vcgencmd_throttled(notes))
    except Exception as exc:  # noqa: BLE001 - facts accompany a measurement; they must never stop it
        notes.append(f"board facts incomplete: {type(exc).__name__}: {exc}")
    facts["notes"] = notes
    facts["read_ms"] = (time.perf_counter() - start) * 1e3
    return facts


def throttling(before: dict[str, Any], after: dict[str, Any]) -> tuple[bool | None, list[str]]:
    """Whether the platform says the board throttled during a measurement bracketed by two :func:`board_facts`.

    Throttled: ``vcgencmd`` reports a flag now (before or after: under-voltage, frequency capped,
    throttled, soft temperature limit) or a "has occurred" flag that was clear before and set after;
    or a thermal zone is at or above its ``passive`` trip (where the kernel starts cooling by
    slowing the CPU) before or after.

    Returns
    -------
    throttled : bool or None
        None when neither source exists (no ``vcgencmd``, no thermal zone with a passive trip).
    detail : list of str
        One line per finding (empty when not throttled); when ``throttled`` is None, why it is unknown.
    """
    detail: list[str] = []
    vc_before, vc_after = before.get("vcgencmd"), after.get("vcgencmd")
    for when, vc in (("before", vc_before), ("after", vc_after)):
        now = [name for bit, name in THROTTLE_BITS.items() if bit < 16 and vc and vc["flags"].get(name)]
        if vc and now:
            detail.append(f"vcgencmd {when}: {', '.join(now)} ({vc['raw']})")
    if vc_before and vc_after:
        new = [name for bit, name in THROTTLE_BITS.items()
               if bit >= 16 and vc_after["flags"].get(name) and not vc_before["flags"].get(name)]
        if new:
            detail.append(f"vcgencmd during the run: {', '.join(new)} ({vc_before['raw']} -> {vc_after['raw']})")
    passive_trips = False
    for when, facts in (("before", before), ("after", after)):
        for zone in facts.get("thermal_zones") or []:
            passive = [float(t["temp_c"]) for t in zone["trips"] if t["type"] == "passive"]
            passive_trips = passive_trips or bool(passive)
            if passive and zone["temp_c"] is not None and zone["temp_c"] >= min(passive):
                detail.append(f"{zone['zone']} ({zone['type']}) {when}: {zone['temp_c']:.1f} °C at or above "
                              f"its passive trip {min(passive):.1f} °C")
    if detail:
        return True, detail
    if not (vc_before or vc_after or passive_trips):
        return None, ["unknown: no vcgencmd and no thermal zone with a passive trip point on this machine"]
    return False, []


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _thousandths(path: Path) -> float | None:
    """An integer sysfs value over 1000 (cpufreq kHz → MHz, thermal m°C → °C); None when absent or unreadable."""
    text = _read(path)
    try:
        return int(text) / 1000 if text is not None else None
    except ValueError:
        return None


def _cpufreq(cpu_dir: Path) -> dict[str, Any]:
    freq = cpu_dir / "cpufreq"
    return {"cpu": int(re.sub(r"\D", "", cpu_dir.name) or 0), "governor": _read(freq / "scaling_governor"),
            "cur_mhz": _thousandths(freq / "scaling_cur_freq"), "min_mhz": _thousandths(freq / "cpuinfo_min_freq"),
            "max_mhz": _thousandths(freq / "cpuinfo_max_freq"), "scaling_max_mhz": _thousandths(freq / "scaling_max_freq")}


def _pick(how: Any, cpus: list[dict[str, Any]], key: str) -> float | None:
    values = [c[key] for c in cpus if c[key] is not None]
    return float(how(values)) if values else None


def _load_avg(path: Path, notes: list[str]) -> list[float] | None:
    text = _read(path)
    try:
        return [float(v) for v in (text or "").split()[:3]] if text else None
    except ValueError:
        notes.append(f"{path.name}: unreadable load average {text!r}")
        return None


def _thermal_zones(thermal: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Each ``thermal_zone*``: type, temperature and trip points (sysfs gives millidegrees Celsius)."""
    dirs = sorted(glob.glob(str(thermal / "thermal_zone[0-9]*")), key=lambda d: int(re.sub(r"\D", "", Path(d).name)))
    if not dirs:
        notes.append("no thermal zones in sys/class/thermal (a VM, or no sensor driver): temperatures unknown")
    zones: list[dict[str, Any]] = []
    for d in map(Path, dirs):
        temp = _thousandths(d / "temp")
        if temp is None:
            notes.append(f"{d.name}: temperature unreadable")
        trips: list[dict[str, Any]] = []
        for type_file in sorted(d.glob("trip_point_*_type"), key=lambda f: int(re.sub(r"\D", "", f.name) or 0)):
            trip = _thousandths(d / type_file.name.replace("_type", "_temp"))
            # x86_pkg_temp lists unset (user-programmable) passive trips at 0 °C: not a limit
            if trip is not None and trip > 0:
                trips.append({"type": _read(type_file) or "?", "temp_c": trip})
        passed = [t["type"] for t in trips if temp is not None and temp >= t["temp_c"]]
        zones.append({"zone": d.name, "type": _read(d / "type"), "temp_c": temp, "trips": trips, "passed": passed})
    return zones


def _vcgencmd_throttled(notes: list[str]) -> dict[str, Any] | None:
    """``vcgencmd get_throttled`` parsed into :data:`THROTTLE_BITS` flags; None (with a note) without it."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        notes.append("no vcgencmd on PATH (not a Raspberry Pi firmware): throttle flags unknown")
        return None
    try:
        proc = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=VCGENCMD_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        notes.append(f"vcgencmd get_throttled failed: {type(exc).__name__}: {exc}")
        return None
    found = re.search(r"throttled=(0x[0-9a-fA-F]+)", proc.stdout)
    if proc.returncode != 0 or not found:
        said = (proc.stdout + proc.stderr).strip().splitlines()
        notes.append(f"vcgencmd get_throttled exited {proc.returncode}: {said[0] if said else 'no output'}")
        return None
    value = int(found.group(1), 16)
    return {"raw": found.group(1), "flags": {name: bool(value >> bit & 1) for bit, name in THROTTLE_BITS.items()}}
