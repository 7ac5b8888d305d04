"""Weights cache limits: a cap on the unpacked size (refused before unpacking), a warning when a
first-use hash arrives over plain http://; real archives and a real local HTTP server."""
import gzip
import struct
import warnings

import pytest

from sea_tf.errors import SeaTFWarning, WeightsError
from sea_tf.weights import cache
from sea_tf.weights.fetch import fetch
from sea_tf.weights.importer import import_file
from weights_support import FileServer, gzip_bytes, run_cli, write_openl3
from weights_support import home  # noqa: F401  (the empty-cache fixture)

FAST = dict(timeout=(2.0, 2.0), retries=0, progress=False)
TEACHER_GZ = "openl3_audio_mel256_env-v0_4_0.h5.gz"
BOMB_MIB = 3


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A real gzip of 3 MiB of zeros (~3 KiB on disk) and a copy whose trailer claims 1 KiB."""
    folder = tmp_path_factory.mktemp("bomb")
    data = gzip.compress(b"\0" * (BOMB_MIB * 2**20), compresslevel=9)
    honest = folder / "openl3_audio_mel256_env-v0_4_0.h5.gz"
    honest.write_bytes(data)
    lying = folder / "lying" / honest.name
    lying.parent.mkdir()
    lying.write_bytes(data[:-4] + struct.pack("<I", 1024))
    return honest, lying


def stored(home):
    """Files in the weights directory, hidden temporaries included (registry and lock aside)."""
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir() if p.name not in (cache.REGISTRY_NAME, cache.LOCK_NAME)) \
        if folder.exists() else []


def test_import_refuses_an_archive_over_the_cap_before_unpacking(home, bomb):
    honest, lying = bomb
    assert honest.stat().st_size < 64 * 2**10
    with pytest.raises(WeightsError, match="unpacks to more than max_unpacked_mb = 1 MiB; nothing was unpacked"):
        import_file(honest, name="openl3/mel256-env", max_unpacked_mb=1)
    # A trailer that lies changes nothing: the stream is counted, not its trailer.
    with pytest.raises(WeightsError, match="unpacks to more than max_unpacked_mb = 1 MiB; nothing was unpacked"):
        import_file(lying, name="openl3/mel256-env", max_unpacked_mb=1)
    assert stored(home) == [] and cache.read_registry() == {}


def test_cli_import_cap_is_a_config_key(home, bomb, tmp_path, capsys):
    assert run_cli(["models", "import", str(bomb[0]), "--name", "openl3/mel256-env",
                    "--set", "max_unpacked_mb=2"]) != 0
    assert "unpacks to more than max_unpacked_mb = 2 MiB" in capsys.readouterr().err
    real = write_openl3(tmp_path / "openl3_audio_mel256_env-v0_4_0.h5", "mel256", "v0_4_0")
    assert run_cli(["models", "import", str(real), "--set", "max_unpacked_mb=1"]) != 0  # a plain .h5 too
    assert "more than max_unpacked_mb = 1 MiB" in capsys.readouterr().err
    assert run_cli(["models", "import", str(real)]) == 0  # the default cap admits a published-size file
    assert stored(home) == [real.name]


def test_fetch_refuses_an_archive_over_the_cap(home, server, bomb):
    server.routes[TEACHER_GZ] = (bomb[0].read_bytes(), "ok")
    with pytest.raises(WeightsError, match=rf"{TEACHER_GZ}: unpacks to more than max_unpacked_mb"):
        fetch("openl3/mel256-env", base_url=server.url, max_unpacked_mb=1, **FAST)
    assert stored(home) == []


def test_first_use_hash_over_plain_http_warns(home, server, tmp_path):
    teacher = write_openl3(tmp_path / "teacher.h5", "mel256", "v0_4_0")
    server.routes[TEACHER_GZ] = (gzip_bytes(teacher), "ok")
    with pytest.warns(SeaTFWarning, match=r"has no published hash and this first download came over plain http://"):
        result = fetch("openl3/mel256-env", base_url=server.url, **FAST)
    assert result.hash_source == "new"
    with warnings.catch_warnings():  # verified against the pinned hash now: no warning
        warnings.simplefilter("error", SeaTFWarning)
        assert fetch("openl3/mel256-env", base_url=server.url, force=True, **FAST).hash_source == "recorded"
