"""The classify embedding cache: damaged files are recomputed, a full disk stops the run."""
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf

from sea_tf.classify.features import ClipSet, cache_file, extract_features
from sea_tf.errors import OutputError, SeaTFWarning
from classify_support import band_embedder

HOP = 0.25


@pytest.fixture
def clips(tmp_path):
    """12 one-second noisy tones at 8 kHz, in 3 folds."""
    rng = np.random.default_rng(3)
    names, paths = [], []
    for k in range(12):
        t = np.arange(8000) / 8000
        path = tmp_path / "audio" / f"clip{k:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) + 0.01 * rng.normal(size=8000)).astype(np.float32),
                 8000)
        names.append(path.name), paths.append(path)
    return ClipSet(names=names, paths=paths, folds=np.arange(12) % 3 + 1, labels=np.arange(12) % 2,
                   classes=["a", "b"], fold_ids=[1, 2, 3], kind="toy")


def test_damaged_cache_files_are_recomputed(clips, tmp_path):
    cache = tmp_path / "cache"
    first = extract_features(clips, band_embedder(), cache, hop_size=HOP, framing="centered", progress=False,
                             max_failed_fraction=0.05)
    files = [cache_file(cache, "bands", name, hop_size=HOP, framing="centered") for name in clips.names]
    files[0].write_bytes(b"")                                   # empty: np.load raises EOFError
    files[1].write_bytes(files[1].read_bytes()[:100])           # truncated: zipfile.BadZipFile
    files[2].write_bytes(b"not a zip file at all" * 10)         # garbage
    with np.load(files[3]) as data:                             # a key missing
        np.savez(files[3], **{k: data[k] for k in data.files if k != "embedding"})
    calls = []
    with pytest.warns(SeaTFWarning, match="damaged cache file") as caught:
        again = extract_features(clips, band_embedder(calls=calls), cache, hop_size=HOP, framing="centered",
                                 progress=False, max_failed_fraction=0.05)
    assert {str(f) for f in files[:4]} <= {str(w.message).split(": damaged")[0] for w in caught}
    assert again.stats["computed"] == 4 and again.stats["cached"] == 8 and not again.failed and len(calls) == 4
    np.testing.assert_array_equal(again.x, first.x)
    with warnings.catch_warnings():  # the rewritten files read back: no warning, nothing computed
        warnings.simplefilter("error", SeaTFWarning)
        assert extract_features(clips, band_embedder(), cache, hop_size=HOP, framing="centered",
                                progress=False, max_failed_fraction=0.05).stats["cached"] == 12


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB tmpfs with about three 4 KiB pages left (mounting needs root or CAP_SYS_ADMIN)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({proc.stderr.strip() or 'mount failed'}); needs root")
    try:
        (mount / "filler").write_bytes(b"\0" * (13 * 4096))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_while_caching_is_an_output_error(clips, small_disk):
    """Before: ENOSPC counted as a failed clip, and with max_failed_fraction the run went on."""
    with pytest.raises(OutputError, match=r"cannot write the embedding cache \(No space left on device\).*--cache-dir"):
        extract_features(clips, band_embedder(), small_disk / "cache", hop_size=HOP, framing="centered", progress=False,
                         max_failed_fraction=1.0)
