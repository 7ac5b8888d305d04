"""Downloads are bounded and keep secrets (issue #21, Why 8), against a real local HTTP server: a byte
cap on the download itself, an overall deadline, credentials in the address never shown or stored,
and a cache write probe that never follows a planted symlink."""
import json
import os
import time

import numpy as np
import pytest

from sea_tf.errors import WeightsError
from sea_tf.weights import cache
from sea_tf.weights.fetch import fetch, redact
from weights_support import FileServer, gzip_bytes, run_cli, write_openl3
from weights_support import home  # noqa: F401  (the empty-cache fixture)

TEACHER_GZ = "openl3_audio_mel256_env-v0_4_0.h5.gz"
FAST = dict(timeout=(2.0, 2.0), retries=0, progress=False)


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def stored(home):
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir() if p.name not in (cache.REGISTRY_NAME, cache.LOCK_NAME)) \
        if folder.exists() else []


def test_a_download_past_the_byte_cap_is_stopped_there(home, server):
    # No length announced, bytes without end: the .part used to grow until the disk was full.
    server.routes[TEACHER_GZ] = (np.random.default_rng(0).bytes(1 << 16), "endless")
    start = time.monotonic()
    with pytest.raises(WeightsError, match=rf"{TEACHER_GZ}: the download passed max_download_mb = 1 MiB and was "
                                           r"stopped and deleted.*--set max_download_mb=N"):
        fetch("openl3/mel256-env", base_url=server.url, max_download_mb=1, **FAST)
    assert time.monotonic() - start < 10 and stored(home) == []
    # An announced length over the cap is refused before a byte is written.
    server.routes[TEACHER_GZ] = (b"\x1f\x8b" + bytes(3 * 2**20), "ok")
    with pytest.raises(WeightsError, match=r"the server announces 3\.0 MiB, more than max_download_mb = 2 MiB; "
                                           "nothing was downloaded"):
        fetch("openl3/mel256-env", base_url=server.url, max_download_mb=2, **FAST)
    assert stored(home) == []


def test_a_dripping_server_meets_the_overall_deadline(home, server):
    # One byte every 50 ms: the 2-s read timeout never trips; the whole download must end in 1 s.
    server.routes[TEACHER_GZ] = (bytes(10_000), "drip")
    start = time.monotonic()
    with pytest.raises(WeightsError, match=r"did not finish within timeout\.total = 1 s.*--set timeout\.total=S"):
        fetch("openl3/mel256-env", base_url=server.url, total_timeout=1.0, **FAST)
    # Without the deadline the drip takes 10,000 x 50 ms = 500 s; 60 s leaves a loaded machine room.
    assert time.monotonic() - start < 60 and stored(home) == []


def test_cli_caps_are_config_keys(home, server, capsys):
    server.routes[TEACHER_GZ] = (b"\x1f\x8b" + bytes(2 * 2**20), "ok")
    assert run_cli(["models", "fetch", "openl3/mel256-env", "--base-url", server.url, "--no-progress",
                    "--set", "max_download_mb=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than max_download_mb = 1 MiB" in err
    server.routes[TEACHER_GZ] = (bytes(10_000), "drip")
    assert run_cli(["models", "fetch", "openl3/mel256-env", "--base-url", server.url, "--no-progress",
                    "--set", "timeout.total=0.5", "retries=0"]) == 2
    assert "did not finish within timeout.total = 0.5 s" in capsys.readouterr().err


def test_credentials_in_the_address_are_never_shown_or_stored(home, server, tmp_path, capsys, monkeypatch):
    server.credentials = ("reader", "s3cret-Pw")
    base = server.url.replace("http://", "http://reader:s3cret-Pw@")
    with pytest.raises(WeightsError) as info:  # a 404 message names the address
        fetch("openl3/mel128-env", base_url=base, **FAST)
    assert "HTTP 404" in str(info.value) and "http://***@127.0.0.1" in str(info.value)
    assert "s3cret" not in str(info.value) and "reader" not in str(info.value)
    # A hash-less first download over http warns with the address, and records its source.
    teacher = write_openl3(tmp_path / "teacher.h5", "mel256", "v0_4_0")
    server.routes[TEACHER_GZ] = (gzip_bytes(teacher), "ok")
    with pytest.warns(Warning) as warned:
        assert fetch("openl3/mel256-env", base_url=base, **FAST).status == "downloaded"  # the server checked them
    assert all("s3cret" not in str(w.message) for w in warned)
    registry = (home / "weights" / cache.REGISTRY_NAME).read_text()
    assert "s3cret" not in registry and "reader" not in registry
    assert json.loads(registry)["files"]["openl3/mel256-env"]["source"] == redact(base + "/" + TEACHER_GZ)
    # The CLI: one error line without them; `models list` shows $SEA_TF_WEIGHTS_URL redacted.
    assert run_cli(["models", "fetch", "openl3/linear-env", "--base-url", base, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3cret" not in err and "***@" in err
    monkeypatch.setenv("SEA_TF_WEIGHTS_URL", base)
    assert run_cli(["models", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "***@127.0.0.1" in out


def test_redact_hides_userinfo_and_query_values():
    assert redact("https://u:p@h.example/w/a.h5.gz?X-Amz-Signature=abc&k=v#frag") == \
        "https://***@h.example/w/a.h5.gz?X-Amz-Signature=***&k=***"
    assert redact("https://h.example/w/a.h5.gz") == "https://h.example/w/a.h5.gz"


def test_the_write_probe_never_follows_a_planted_symlink(home, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    weights = home / "weights"
    weights.mkdir(parents=True)
    planted = weights / f".write-test-{os.getpid()}"  # the name the probe used to take
    planted.symlink_to(victim)
    assert cache.ensure_weights_dir(home) == weights
    assert victim.read_text() == "precious"
    assert [p.name for p in weights.iterdir()] == [planted.name]  # nothing of the probe left
