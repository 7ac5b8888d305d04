"""Every reader checks a file's header before it reads or resamples, and its peak memory is bounded
by its block size whatever the header says (host ``sea_tf.audio`` and board ``device.audio`` /
``device.stream``).

The files are written byte by byte (a RIFF header that declares 1 Hz, 500 kHz, a data chunk longer
than the file; a real FLAC whose STREAMINFO declares 2^36 samples), each reader runs in a child
process under an address-space limit (the old readers asked for gigabytes: a 2-KB WAV at "1 Hz"
cost +996 MiB, a 32-KB one over 6 GiB) and reports its error and its peak-RSS increase over a
warm read of a normal file.
"""
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sea_tf.audio import READ_BLOCK_FRAMES

ROOT = Path(__file__).resolve().parent.parent

#: What may be live at once beyond a warm read: one read block of ``READ_BLOCK_FRAMES`` samples
#: read, downmixed, resampled and framed (8 x 4 bytes each); 16 MiB cover the allocator's granularity.
BOUND_MB = 8 * 4 * READ_BLOCK_FRAMES / 2**20 + 16


def riff_wav(path, sr, data, channels=1, bits=16, declared=None):
    """A PCM WAV written by hand: ``declared`` data bytes in the header (default: ``len(data)``)."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * align, align, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


def flac_declaring(path, total_samples, seconds=1.0, sr=8000):
    """A real FLAC (soundfile) whose STREAMINFO's 36-bit total-samples field is rewritten."""
    rng = np.random.default_rng(0)
    sf.write(str(path), (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr, subtype="PCM_16")
    data = bytearray(Path(path).read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0           # STREAMINFO first
    field = int.from_bytes(data[18:26], "big")                   # rate, channels, bits, total samples
    field = (field & ~((1 << 36) - 1)) | total_samples
    data[18:26] = field.to_bytes(8, "big")
    Path(path).write_bytes(bytes(data))
    return Path(path)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    d = tmp_path_factory.mktemp("headers")
    pcm = (3000 * np.random.default_rng(1).standard_normal(16000)).astype("<i2").tobytes()
    sf.write(str(d / "normal.wav"), (0.1 * np.random.default_rng(2).standard_normal(80000)).astype(np.float32),
             8000, subtype="PCM_16")
    return {
        "normal": d / "normal.wav",
        "rate_1hz_2kb": riff_wav(d / "rate_1hz_2kb.wav", 1, pcm[:2000]),
        "rate_1hz_32kb": riff_wav(d / "rate_1hz_32kb.wav", 1, pcm),
        "rate_500khz": riff_wav(d / "rate_500khz.wav", 500_000, pcm[:2000]),
        "data_cut": riff_wav(d / "data_cut.wav", 8000, pcm[:2000], declared=1_000_000),
        "flac_2e36": flac_declaring(d / "flac_2e36.flac", (1 << 36) - 1),
        "k1_70s": riff_wav(d / "k1_70s.wav", 1000, (3000 * np.random.default_rng(3).standard_normal(70_000))
                           .astype("<i2").tobytes()),
    }


# The child: warm the reader on a normal file, then read the crafted one; print the error and the
# peak-RSS increase. An address-space limit of 1 GiB over the imports keeps the old readers from
# taking the machine: they fail with MemoryError instead (not the typed error the test expects).
_CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
reader, normal, path = sys.argv[2:5]

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

if reader.startswith("host"):
    import warnings
    warnings.simplefilter("ignore")
    from sea_tf import audio

    def run(p):
        if reader == "host-load":          # sea-tf embed's, classify's, export's reader: whole file at 48 kHz
            x, sr = audio.load_audio(p)
            return len(audio.prepare_frames(x, sr, 48000)[0])
        return sum(len(b.timestamps) for b in audio.stream_windows(p, [48000, 8000], block_windows=16))
else:                                      # the board: never sea_tf
    from device import audio, stream

    def run(p):
        if reader == "device-load":        # load_audio + resample to the model's rate
            x, sr = audio.load_audio(p)
            return len(audio.resample(x, sr, 8000)[0])
        if reader == "device-stream":      # device.bench --audio
            return sum(1 for _ in audio.stream_windows(audio.AudioStream(p, 8000), 8000, 800))
        src = stream.FileSource(p)         # device.listen --source FILE
        resampler = stream.StreamResampler(src.sample_rate, 8000)
        try:
            return sum(len(resampler(b.samples)) for b in src.blocks())
        finally:
            src.close()

run(normal)
limit = status("VmSize") + (1 << 30)
resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
base = status("VmHWM")
out = {"error": None, "type": None}
try:
    out["n"] = run(path)
except Exception as exc:
    out["error"], out["type"] = str(exc), type(exc).__name__
out["delta_mb"] = (status("VmHWM") - base) / 2**20
print(json.dumps(out))
"""

READERS = ("host-load", "host-stream", "device-load", "device-stream", "device-listen")
TYPED = {"host-load": "AudioError", "host-stream": "AudioError", "device-load": "AudioFileError",
         "device-stream": "AudioFileError", "device-listen": "SourceError"}


def _read(reader, crafted, name):
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), reader, str(crafted["normal"]),
                           str(crafted[name])], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name, says", [
    ("rate_1hz_2kb", "sample rate of 1 Hz, outside 1 kHz-384 kHz"),
    ("rate_1hz_32kb", "sample rate of 1 Hz, outside 1 kHz-384 kHz"),
    ("rate_500khz", "sample rate of 500000 Hz, outside 1 kHz-384 kHz"),
    ("flac_2e36", "68719476735 frames x 1 channels, more than a FLAC file of"),
    ("data_cut", "truncated WAV (header declares 1000000 data bytes"),
])
def test_a_header_that_lies_is_a_typed_error_before_any_allocation(crafted, reader, name, says):
    got = _read(reader, crafted, name)
    print(f"{reader} {name}: +{got['delta_mb']:.1f} MiB, {got['type']}")
    assert got["type"] == TYPED[reader], got
    assert got["error"].startswith(str(crafted[name])) and says in got["error"], got
    assert "\n" not in got["error"]
    assert got["delta_mb"] < BOUND_MB, got


@pytest.mark.parametrize("reader", ["host-stream", "device-stream", "device-listen"])
def test_the_lowest_rate_streams_in_blocks_bounded_in_seconds(crafted, reader):
    """70 s at 1 kHz, the lowest rate accepted: the old host reader took 65,536 frames (65 s) per
    block, 3.1 M samples at 48 kHz, 655 windows at a 0.1-s hop at each rate (+140 MiB); a block is
    now at most READ_BLOCK_FRAMES / 48,000 s of the source, so the peak is a normal file's."""
    got = _read(reader, crafted, "k1_70s")
    print(f"{reader} k1_70s: +{got['delta_mb']:.1f} MiB (bound {BOUND_MB:.1f})")
    assert got["error"] is None, got
    assert got["delta_mb"] < BOUND_MB, got
