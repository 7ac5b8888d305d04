"""``sea-tf models fetch`` against a local HTTP server: fetch → cache → load, and every failure
leaving nothing complete-looking in the cache."""
import gzip
import json
import socket
import time

import numpy as np
import pytest

from sea_tf.cards import sha256_file
from sea_tf.errors import WeightsError
from sea_tf.weights import cache
from sea_tf.weights.fetch import fetch
from weights_support import FileServer, first_kernel, gzip_bytes, run_cli, write_openl3
from weights_support import home  # noqa: F401  (the empty-cache fixture)

SEA64_SHA = "e8cd0eaac5d444c231d81940e30dc904ffed5cdafa632f7a5547142dc8283912"
SEA64_GZ = "edgel3_sea_ust_audio_emb_64.h5.gz"
TEACHER_GZ = "openl3_audio_mel256_env-v0_4_0.h5.gz"
FAST = dict(timeout=(2.0, 2.0), retries=1, progress=False)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Two synthetic mel256 v0_4_0 teachers (seeds 0 and 1): paths and gzipped bytes."""
    folder = tmp_path_factory.mktemp("teachers")
    out = {}
    for seed in (0, 1):
        path = write_openl3(folder / f"teacher{seed}.h5", "mel256", "v0_4_0", seed=seed)
        out[seed] = (path, gzip_bytes(path))
    return out


@pytest.fixture(scope="module")
def sea64_gz(sea64_h5):
    return gzip_bytes(sea64_h5)


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()



def leftovers(home):
    """Everything in the weights directory (hidden temporaries included), registry aside."""
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir() if p.name not in (cache.REGISTRY_NAME, cache.LOCK_NAME)) \
        if folder.exists() else []


def test_fetch_verifies_the_known_hash_and_loads_through_the_resolver(home, server, sea64_gz, chirp_wav):
    server.routes[SEA64_GZ] = (sea64_gz, "ok")
    result = fetch("edgel3/sea-64", base_url=server.url, **FAST)
    assert (result.status, result.hash_source, result.sha256) == ("downloaded", "catalogue", SEA64_SHA)
    assert result.size == 6025848 and leftovers(home) == ["edgel3_sea_ust_audio_emb_64.h5"]
    assert result.path.stat().st_mode & 0o777 == 0o644
    assert cache.resolve_name("edgel3/sea-64") == result.path
    # cached: verified again, not downloaded again
    assert fetch("edgel3/sea-64", base_url=server.url, **FAST).status == "cached"
    assert server.hits[SEA64_GZ] == 1

    from sea_tf.audio import load_audio, prepare_frames
    from sea_tf.models import load_model
    model = load_model("edgel3/sea-64")
    assert model.card["weights"]["sha256"] == SEA64_SHA
    wav, ref = chirp_wav
    audio, sr = load_audio(wav)
    frames, _ = prepare_frames(audio, sr, model.sample_rate, center=False)
    emb = model.embed_frames(frames)
    expected = np.load(ref)["emb_center_False"]
    assert emb.shape == (1, 64)
    np.testing.assert_allclose(emb[0, :6], [5.00926, 45.16308, 7.64448, 0.13048, 0, 23.49066], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(emb, expected, rtol=1e-3, atol=2e-3)


def test_first_download_records_the_hash_and_a_changed_upstream_is_refused(home, server, teachers):
    (path0, gz0), (_, gz1) = teachers[0], teachers[1]
    server.routes[TEACHER_GZ] = (gz0, "ok")
    result = fetch("openl3/mel256-env", base_url=server.url, **FAST)
    assert (result.status, result.hash_source) == ("downloaded", "new")
    assert result.sha256 == sha256_file(path0)
    registry = json.loads((home / "weights" / "registry.json").read_text())["files"]
    assert registry["openl3/mel256-env"]["sha256"] == result.sha256
    assert registry["openl3/mel256-env"]["source"] == f"{server.url}/{TEACHER_GZ}"

    from sea_tf.models import load_model
    model = load_model("openl3/mel256-env")
    assert model.card["weights"]["source"] == "published" and model.embedding_size == 512
    kernel = next(layer for layer in model.network().layers if layer.weights and "conv" in layer.name).get_weights()[0]
    np.testing.assert_array_equal(kernel, first_kernel(path0))

    server.routes[TEACHER_GZ] = (gz1, "ok")  # same layout, other numbers: only the hash can tell
    with pytest.raises(WeightsError, match="does not match the recorded hash"):
        fetch("openl3/mel256-env", base_url=server.url, force=True, **FAST)
    assert sha256_file(result.path) == result.sha256
    assert leftovers(home) == ["openl3_audio_mel256_env-v0_4_0.h5"]


def test_known_hash_mismatch_is_refused_and_cleaned(home, server, teachers):
    server.routes[SEA64_GZ] = (teachers[0][1], "ok")
    with pytest.raises(WeightsError, match="does not match the catalogue hash e8cd0eaac5d444c2"):
        fetch("edgel3/sea-64", base_url=server.url, **FAST)
    assert leftovers(home) == [] and not cache.is_cached("edgel3/sea-64")


def test_file_with_the_wrong_layers_is_refused(home, server, sea64_gz):
    server.routes["edgel3_sea_ust_audio_emb_128.h5.gz"] = (sea64_gz, "ok")
    with pytest.raises(WeightsError, match="does not have the layers of 'edgel3/sea-128'"):
        fetch("edgel3/sea-128", base_url=server.url, **FAST)
    assert leftovers(home) == []


@pytest.mark.parametrize("mode, message", [
    ("truncate", "transfer failed 2 time"),                      # Content-Length announced, body cut
    ("truncate-nolength", "not a complete gzip file"),           # no length: the .gz itself is short
])
def test_interrupted_transfer_leaves_nothing(home, server, teachers, mode, message):
    server.routes[TEACHER_GZ] = (teachers[0][1], mode)
    with pytest.raises(WeightsError, match=message) as info:
        fetch("openl3/mel256-env", base_url=server.url, **FAST)
    assert "sea-tf models import PATH --name openl3/mel256-env" in str(info.value)
    assert leftovers(home) == [] and not cache.is_cached("openl3/mel256-env")
    assert server.hits[TEACHER_GZ] == (2 if mode == "truncate" else 1)


def test_corrupt_gz_and_http_errors(home, server, teachers):
    server.routes[TEACHER_GZ] = (b"\x1f\x8b" + b"garbage" * 100, "ok")
    with pytest.raises(WeightsError, match="not a complete gzip file"):
        fetch("openl3/mel256-env", base_url=server.url, **FAST)
    with pytest.raises(WeightsError, match="HTTP 404.*sea-tf models import"):
        fetch("openl3/mel128-env", base_url=server.url, **FAST)
    assert server.hits["openl3_audio_mel128_env-v0_4_0.h5.gz"] == 1  # a 404 is not retried
    assert leftovers(home) == []
    server.hits.clear()
    server.routes[TEACHER_GZ] = (teachers[0][1], "500-once")  # a 500 is
    assert fetch("openl3/mel256-env", base_url=server.url, **FAST).status == "downloaded"
    assert server.hits[TEACHER_GZ] == 2


def test_full_disk_leaves_nothing(home, server, teachers, monkeypatch):
    import errno
    from sea_tf.weights import fetch as fetch_module

    def full_disk(gz_path, out_path, url, entry, max_unpacked_mb):
        out_path.write_bytes(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fetch_module, "_gunzip", full_disk)
    server.routes[TEACHER_GZ] = (teachers[0][1], "ok")
    with pytest.raises(WeightsError, match="No space left on device; free some space"):
        fetch("openl3/mel256-env", base_url=server.url, **FAST)
    assert leftovers(home) == []


def test_unreachable_server_fails_fast_with_the_import_hint(home):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        fetch("edgel3/sea-64", base_url=f"http://127.0.0.1:{port}/w", timeout=(3.0, 3.0), retries=3, progress=False)
    assert time.monotonic() - start < 3.0  # refused: no retries, no waiting
    message = str(info.value)
    assert f"cannot reach http://127.0.0.1:{port}/w/{SEA64_GZ}" in message
    assert "`sea-tf models import PATH --name edgel3/sea-64`" in message
    assert leftovers(home) == []


def test_silent_server_times_out(home):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        start = time.monotonic()
        with pytest.raises(WeightsError, match="transfer failed 1 time.*(timed out|Read timed out)"):
            fetch("edgel3/sea-64", base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
                  timeout=(1.0, 0.5), retries=0, progress=False)
        assert time.monotonic() - start < 3.0
    assert leftovers(home) == []


def test_cli_fetch_then_list(home, server, sea64_gz, capsys):
    server.routes[SEA64_GZ] = (sea64_gz, "ok")
    assert run_cli(["models", "fetch", "edgel3/sea-*4", "--base-url", server.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "edgel3/sea-64: downloaded" in out and "matches the catalogue" in out
    assert run_cli(["models", "list", "--cached", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [(r["name"], r["size"], r["sha256"]) for r in rows] == [("edgel3/sea-64", 6025848, SEA64_SHA)]
    assert run_cli(["models", "fetch", "openl3/linear-env", "--set", f"base_url={server.url}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 404" in err
    assert run_cli(["models", "remove", "edgel3/sea-64"]) == 0
    assert not cache.is_cached("edgel3/sea-64")


def test_gzip_helper_matches_the_published_packing(tmp_path, sea64_h5, sea64_gz):
    # the served bytes unpack to the exact published file: the hash test above is meaningful
    assert gzip.decompress(sea64_gz) == sea64_h5.read_bytes()
