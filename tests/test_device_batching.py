"""Batch only where it pays (device.batching, Artifact.choose_batch) and the fused front end's input codes.

The timing is injected (``timer``): the tests check which candidate is chosen from given times, that
the cache is reused, and that the embeddings do not depend on the batch chosen; no wall-clock asserts.
"""
import json

import numpy as np
import pytest

import device_support
from device import batching
from device import frontends as twin
from device.runner import DEFAULT_BATCH, load_artifact
from listen_support import SPEC


class FakeTimer:
    """``timer(batch)`` returning fixed seconds per window, counting its calls."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, []

    def __call__(self, batch):
        self.calls.append(batch)
        return self.seconds[batch]


def _refuse(batch):
    raise AssertionError("the cached choice must be used, not measured again")


@pytest.mark.parametrize("seconds, expected", [({1: 2e-3, 16: 1e-3}, 16), ({1: 1e-3, 16: 2e-3}, 1),
                                               ({1: 1e-3, 16: 1e-3}, 1)])   # a tie keeps batch 1
def test_the_measured_faster_is_chosen(tmp_path, seconds, expected):
    timer = FakeTimer(seconds)
    choice = batching.choose_batch("k", 16, timer, cache=tmp_path / "c.json")
    assert (choice.batch, choice.source, choice.seconds_per_window) == (expected, "measured", seconds)
    # one untimed round, then ROUNDS interleaved rounds: 1, 16, 1, 16, ...
    assert timer.calls == [1, 16] * (1 + batching.ROUNDS)
    assert choice.as_dict()["ms_per_window"] == {"1": 1e3 * seconds[1], "16": 1e3 * seconds[16]}


def test_the_median_decides_not_one_noisy_round(tmp_path):
    rounds = iter([0, 0, 1.0, 2.0, 9.0, 2.0, 1.0, 2.0, 1.0, 2.0])      # warm-up, then one outlier round of batch 1
    choice = batching.choose_batch("k", 8, lambda b: next(rounds), cache=tmp_path / "c.json")
    assert choice.batch == 1 and choice.seconds_per_window == {1: 1.0, 8: 2.0}


def test_the_cache_is_reused_and_keyed(tmp_path):
    cache = tmp_path / "sub" / "c.json"
    first = batching.choose_batch("a", 16, FakeTimer({1: 2.0, 16: 1.0}), cache=cache)
    again = batching.choose_batch("a", 16, _refuse, cache=cache)
    assert (again.batch, again.source, again.seconds_per_window) == (16, "cache", first.seconds_per_window)
    # another key (another CPU, thread count, artifact or N) is measured, and both are kept
    other = batching.choose_batch("b", 16, FakeTimer({1: 1.0, 16: 2.0}), cache=cache)
    assert other.batch == 1 and other.source == "measured"
    assert set(json.loads(cache.read_text())["choices"]) == {"a", "b"}
    key = batching.cache_key(sha256="s", cpu="Cortex-A72", threads=4, xnnpack=True, interpreter="ai-edge-litert 2.3",
                             batch=16)
    assert key != batching.cache_key(sha256="s", cpu="Cortex-A72", threads=1, xnnpack=True,
                                     interpreter="ai-edge-litert 2.3", batch=16)
    # XNNPACK off runs other kernels: its choice is measured apart
    assert key != batching.cache_key(sha256="s", cpu="Cortex-A72", threads=4, xnnpack=False,
                                     interpreter="ai-edge-litert 2.3", batch=16)


def test_an_unusable_cache_is_measured_again(tmp_path):
    cache = tmp_path / "c.json"
    cache.write_text("{not json")
    assert batching.choose_batch("a", 4, FakeTimer({1: 2.0, 4: 1.0}), cache=cache).batch == 4
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        choice = batching.choose_batch("a", 4, FakeTimer({1: 2.0, 4: 1.0}), cache=readonly / "c.json")
    finally:
        readonly.chmod(0o700)
    assert choice.batch == 4 and choice.source == "measured"
    assert batching.choose_batch("x", 1, _refuse, cache=cache).source == "fixed"


def test_default_cache_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEA_TF_DEVICE_CACHE", str(tmp_path / "x.json"))
    assert batching.default_cache_path() == tmp_path / "x.json"
    monkeypatch.delenv("SEA_TF_DEVICE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert batching.default_cache_path() == tmp_path / "sea-tf" / "device-batch.json"


@pytest.mark.parametrize("mode", ["fp32", "int8"])
@pytest.mark.parametrize("faster", [1, DEFAULT_BATCH])
def test_artifact_uses_the_faster_batch_and_results_do_not_depend_on_it(listen_artifacts, tmp_path, mode, faster):
    emb = load_artifact(listen_artifacts[mode])
    emb.batch_cache = tmp_path / "c.json"
    slower = 1 if faster != 1 else DEFAULT_BATCH
    timer = FakeTimer({faster: 1e-3, slower: 2e-3})
    choice = emb.choose_batch(DEFAULT_BATCH, timer=timer)
    assert choice.batch == faster and choice.source == "measured"
    frames = device_support.noise_frames(2 * DEFAULT_BATCH + 3, seed=4)
    sizes = []
    real = emb.run_batch

    def spy(q, **kwargs):
        sizes.append(len(q))
        return real(q, **kwargs)

    emb.run_batch = spy
    auto = emb.embed_frames(frames)
    assert (DEFAULT_BATCH in sizes) == (faster == DEFAULT_BATCH) and sum(sizes) == len(frames)
    emb.run_batch = real
    one = emb.embed_frames(frames, batch=1)
    many = emb.embed_frames(frames, batch=DEFAULT_BATCH)
    # XNNPACK computes each example's outputs with the same kernels and summation order at any
    # batch size (int8: exact integer accumulation), so the batch changes nothing.
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(auto, one)
    # a second artifact object on the same file and machine reads the cache instead of timing
    again = load_artifact(listen_artifacts[mode])
    again.batch_cache = emb.batch_cache
    assert again.choose_batch(DEFAULT_BATCH, timer=_refuse).batch == faster


def test_few_frames_are_never_timed(listen_artifacts, tmp_path):
    emb = load_artifact(listen_artifacts["int8"])
    emb.batch_cache = tmp_path / "c.json"
    emb.choose_batch = lambda *a, **k: pytest.fail("fewer windows than a batch: nothing to choose")
    assert emb.embed_frames(device_support.noise_frames(3)).shape == (3, 16)


@pytest.mark.parametrize("mode", ["fp32", "int8"])
def test_model_input_equals_the_quantized_features(listen_artifacts, mode):
    """The fused front end writes the interpreter's input codes: the same as quantizing its dB image."""
    emb = load_artifact(listen_artifacts[mode])
    frames = device_support.noise_frames(5, seed=2)
    frames[3] = 0.0                                           # an all-zero window: 0 dB everywhere
    want = emb.quantize_input(emb.features(frames)).copy()
    out = np.empty_like(want)
    assert emb.model_input(frames, out=out) is out
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(emb.model_input(frames[1:2]), want[1:2])


@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_fused_frontend_equals_compute_frontend_at_any_chunk(chunk):
    frames = device_support.noise_frames(7, seed=5)
    fused = twin.FusedFrontend(SPEC, 8000, chunk=chunk)
    np.testing.assert_array_equal(fused(frames), twin.compute_frontend(frames, SPEC))
    assert fused.output_shape == (64, 50, 1)


@pytest.mark.parametrize("sr, n_dft, n_mels, fmax, htk", [(8000, 1024, 64, 4000.0, True), (48000, 2048, 256, None, False),
                                                          (48000, 2048, 128, None, True), (8000, 256, 96, None, True)])
def test_banded_filterbank_blocks_hold_every_weight(sr, n_dft, n_mels, fmax, htk):
    """The block product equals the dense one: every non-zero weight lies in its band's block."""
    fb = twin.mel_filterbank(sr, n_dft, n_mels, fmax=fmax, htk=htk).astype(np.float64)
    groups = twin._band_groups(fb)
    assert [g[2] for g in groups][0] == 0 and groups[-1][3] == n_mels
    assert all(a[3] == b[2] for a, b in zip(groups, groups[1:]))         # consecutive, no band twice
    covered = np.zeros_like(fb, bool)
    for r0, r1, m0, m1 in groups:
        covered[r0:r1, m0:m1] = True
    assert np.all(covered[fb != 0])
    # fewer multiply-adds than the dense product
    assert sum((r1 - r0) * (m1 - m0) for r0, r1, m0, m1 in groups) < fb.size
