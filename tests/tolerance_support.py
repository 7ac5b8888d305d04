"""Tolerances derived from float32 rounding, so that a test holds on every CPU and kernel path.

A test that compares a float32 computation with a float64 reference allows the worst-case
rounding error of that computation, not the difference one machine happened to produce: AVX-512,
AVX2, SSE and ARM kernels sum in different orders (oneDNN, Eigen, XNNPACK), and every order is
covered by the worst-case bound. The bounds follow Higham, *Accuracy and Stability of Numerical
Algorithms* (2nd ed., SIAM 2002): ``gamma(n)`` is his ``γ_n`` (§3.1), a dot product of length
``n`` is off by at most ``γ_n · Σ|x_i y_i|`` in any summation order (eq. 3.5), and a radix-2 FFT
of ``n`` points by at most ``log2(n) η / (1 - log2(n) η)`` in the 2-norm, relative (Thm. 24.2).
"""
import math

import numpy as np

#: Unit roundoff of float32 (round to nearest): half the machine epsilon 1.19e-7.
U32 = float(np.finfo(np.float32).eps) / 2


def gamma(n, u=U32):
    """Higham's ``γ_n = n u / (1 - n u)``: relative error bound of ``n`` rounded operations."""
    if n * u >= 1:
        raise ValueError(f"γ_{n} is undefined: {n} operations at unit roundoff {u} lose every digit")
    return n * u / (1 - n * u)


def fft_relative_error(n_dft, u=U32):
    """2-norm relative error bound of a float32 FFT of ``n_dft`` points (Higham Thm. 24.2).

    ``η = μ + γ_4 (√2 + μ)`` with twiddle factors accurate to ``μ = u``; one stage more than
    ``log2(n_dft)`` covers the butterfly that turns a half-length complex FFT into a real one.
    """
    stages = math.ceil(math.log2(n_dft)) + 1
    eta = u + gamma(4, u) * (math.sqrt(2) + u)
    return stages * eta / (1 - stages * eta)


def ulp32(magnitude):
    """Spacing of float32 numbers at ``|magnitude|`` (an upper bound on one rounding's error × 2)."""
    return float(np.spacing(np.float32(abs(magnitude))))


def db_interval(amp_lo, amp_hi, floor_db=-80.0, amin=1e-10):
    """kapre's dB image (``10 log10(max(a, amin))`` minus the example's max, floored) of an interval.

    Every step is monotone, so the image of ``[amp_lo, amp_hi]`` per element is bounded by the
    images of the ends, with the per-example max taken from the opposite end.

    Parameters
    ----------
    amp_lo, amp_hi : np.ndarray [shape=(N, ...), float64]
        Element-wise lower and upper bounds on the amplitude (≥ 0).

    Returns
    -------
    lo, hi : np.ndarray [same shape, float64]
        Bounds on the dB image, in dB (≤ 0, ≥ ``floor_db``).
    """
    log_lo = 10 * np.log10(np.maximum(amp_lo, amin))
    log_hi = 10 * np.log10(np.maximum(amp_hi, amin))
    axes = tuple(range(1, log_lo.ndim))
    lo = log_lo - log_hi.max(axis=axes, keepdims=True)
    hi = log_hi - log_lo.max(axis=axes, keepdims=True)
    return np.maximum(lo, floor_db), np.maximum(hi, floor_db)


def accumulation_length(keras_model):
    """``n`` of ``γ_n`` for one forward pass: the dot-product lengths summed along the network.

    Each Conv2D adds ``kh * kw * c_in`` terms and each Dense ``n_in``; a mel front end adds its
    filterbank's ``n_dft/2 + 1``. With errors carried from layer to layer at unit gain relative to
    the activations' scale (BN, ReLU and max pooling do not amplify it), the outputs are off by at
    most ``γ_n`` times their largest magnitude. The rFFT and the dB step before the filterbank are
    the same row by row whatever the batch, so they add nothing when only the batching differs.
    """
    n = 0
    for module in keras_model.submodules:
        kernel = getattr(module, "kernel", None)
        if kernel is not None and len(kernel.shape) in (2, 4):
            n += int(np.prod(kernel.shape[:-1]))
        spec = getattr(module, "spec", None)
        if isinstance(spec, dict) and spec.get("n_mels"):
            n += spec["n_dft"] // 2 + 1
    return n


def forward_atol(keras_model, reference):
    """Absolute tolerance between two float32 runs of ``keras_model`` whose sum orders differ.

    ``2 γ_n max|reference|`` with ``n`` from :func:`accumulation_length`: each run is off by at
    most ``γ_n`` of the output scale from the exact result.
    """
    return 2 * gamma(accumulation_length(keras_model)) * float(np.abs(reference).max())
