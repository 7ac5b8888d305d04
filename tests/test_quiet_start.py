"""A quiet start: no TensorFlow/absl/CUDA start-up lines on a CPU-only machine unless --debug,
while warnings that matter to the user still show."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sea_tf import tf_logs

# Any line in absl/TensorFlow C++ log format, or absl's pre-initialisation notice: what a quiet
# start must not print, whether or not sea_tf.tf_logs knows the message.
ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |absl::InitializeLog")

# Lines TensorFlow 2.21 printed on a CPU-only x86-64 machine during `import tensorflow` and the
# first device probe, then the TFLite converter's int8 calibration and LiteRT 2.3's first
# allocation, copied verbatim.
CAPTURED = b"""\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796119375.628773    5749 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796119375.717643    5749 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796119380.626382    5749 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1730000000.000000    5749 cuda_fft.cc:485] Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered
fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
"""
KEPT = (b"/x/site.py:3: DeprecationWarning: something a user should see\n"
        b"E0000 00:00:1796119380.626382    5749 op_kernel.cc:1857] OP_REQUIRES failed at a real op\n"
        b"sea-tf embed: warning: clip.wav: every sample is zero\n"
        b"INFO: Created TensorFlow Lite GPU delegate.\n")


def test_filter_drops_banner_keeps_everything_else():
    assert tf_logs.filter_banner(CAPTURED + KEPT, no_gpu=True) == KEPT
    # Interleaved, the kept lines keep their order and bytes.
    first, rest = KEPT.split(b"\n", 1)
    mixed = first + b"\n" + CAPTURED + rest
    assert tf_logs.filter_banner(mixed, no_gpu=True) == KEPT


def test_cuda_lines_kept_where_there_is_a_gpu():
    # On a GPU machine "failed call to cuInit" explains why the GPU is unused: it must show.
    kept = tf_logs.filter_banner(CAPTURED, no_gpu=False).decode()
    assert "failed call to cuInit" in kept and "Could not find cuda drivers" in kept
    assert "absl::InitializeLog" not in kept and "Unable to register cuFFT" not in kept


def test_quiet_stderr_writes_back_unfiltered_on_error(tmp_path):
    script = ("import os\nfrom sea_tf import tf_logs\n"
              "with tf_logs.quiet_stderr():\n"
              "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
              "    os.write(2, b'still here\\n')\n"
              "    if os.environ.get('FAIL'): raise SystemExit(3)\n")
    ok = subprocess.run([sys.executable, "-c", script], capture_output=True, env=_env())
    assert ok.returncode == 0 and ok.stderr == b"still here\n"
    failed = subprocess.run([sys.executable, "-c", script], capture_output=True, env=_env(FAIL="1"))
    assert failed.returncode == 3 and b"absl::InitializeLog" in failed.stderr and b"still here" in failed.stderr


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_logs.DEBUG_ENV)}
    return {**env, **extra}


def _sea_tf(*args):
    return subprocess.run([sys.executable, "-m", "sea_tf", *args], capture_output=True, text=True, env=_env(),
                          timeout=300)


def test_help_prints_nothing_on_stderr():
    result = _sea_tf("embed", "--help")
    assert result.returncode == 0 and "--no-centering" in result.stdout
    assert result.stderr == ""


@pytest.mark.skipif(not tf_logs.cpu_only(), reason="CUDA start-up lines are shown on purpose on a GPU machine")
def test_tensorflow_command_starts_quietly_and_still_warns(tmp_path):
    # 0.4 s of audio is shorter than one window: sea-tf warns that it zero-pads, which must still show.
    sr = 8000
    t = np.arange(int(0.4 * sr)) / sr
    sf.write(tmp_path / "short.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    args = ["embed", str(tmp_path / "short.wav"), "--model", "sea-64", "--overwrite"]

    debug = _sea_tf(*args, "-o", str(tmp_path / "debug"), "--debug")
    assert debug.returncode == 0, debug.stderr
    banner = [line for line in debug.stderr.splitlines() if ABSL_LINE.search(line)]
    if not banner:
        pytest.skip("this TensorFlow build prints no start-up lines on this machine: nothing to hide")

    quiet = _sea_tf(*args, "-o", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    leaked = [line for line in quiet.stderr.splitlines() if ABSL_LINE.search(line)]
    assert not leaked, f"start-up lines printed without --debug: {leaked}"
    for out in (debug, quiet):
        assert "shorter than the 1-s window" in out.stderr
        assert "processed 1, skipped 0, failed 0" in out.stdout
