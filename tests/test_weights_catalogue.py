"""Catalogue names and addresses, the cache's resolver (never downloads), and the ``models list`` CLI."""
import json
import socket

import pytest

from sea_tf.cards import sha256_file
from sea_tf.errors import WeightsError
from sea_tf.weights import cache, catalogue
from weights_support import run_cli
from weights_support import home  # noqa: F401  (the empty-cache fixture)

SEA64_SHA = "e8cd0eaac5d444c231d81940e30dc904ffed5cdafa632f7a5547142dc8283912"



@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the cache tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_catalogue_holds_every_published_audio_file():
    entries = list(catalogue.CATALOGUE.values())
    assert len(entries) == 32
    by_kind = {}
    for entry in entries:
        by_kind[entry.kind] = by_kind.get(entry.kind, 0) + 1
    assert by_kind == {"openl3-v0_4_0": 6, "openl3-v0_2_0": 6, "edgel3-sea": 4, "edgel3-sparse": 16}
    # 73.5, 81.0, 90.5 exist on the models branch only; edgel3's API offers the other five.
    unlisted = sorted(e.name for e in entries if not e.api_listed)
    assert unlisted == [f"edgel3/sparse-{r}-{s}" for r in ("ft", "kd") for s in ("73.5", "81.0", "90.5")]
    assert len({e.filename for e in entries}) == 32


def test_names_map_to_the_models_branch_files():
    assert catalogue.lookup("openl3/mel256-env").url() == \
        "https://raw.githubusercontent.com/marl/openl3/models/openl3_audio_mel256_env-v0_4_0.h5.gz"
    old = catalogue.lookup("openl3/mel256-env@v0_2_0")
    assert old.filename == "openl3_audio_mel256_env-v0_2_0.h5" and old.kind == "openl3-v0_2_0"
    assert catalogue.lookup("openl3/mel256-env@v0_4_0") is catalogue.lookup("openl3/mel256-env")
    sea = catalogue.lookup("edgel3/sea-64")
    assert sea.url() == "https://raw.githubusercontent.com/ksangeeta2429/edgel3/models/edgel3_sea_ust_audio_emb_64.h5.gz"
    assert (sea.sha256, sea.embedding_size, sea.sample_rate) == (SEA64_SHA, 64, 8000)
    sparse = catalogue.lookup("edgel3/sparse-kd-95.45")
    assert (sparse.filename, sparse.kind, sparse.input_repr, sparse.embedding_size) == \
        ("edgel3_kd_audio_sparsity_95.45.h5", "edgel3-sparse", "mel256", 512)
    assert catalogue.lookup("edgel3/sparse-ft-87.0").filename == "edgel3_ft_audio_sparsity_87.0.h5"
    assert catalogue.lookup("openl3/linear-music").input_repr == "linear"
    assert catalogue.by_filename("edgel3_sea_ust_audio_emb_64.h5.gz") is sea


def test_base_address_is_configurable(monkeypatch):
    entry = catalogue.lookup("edgel3/sea-64")
    assert entry.url("http://127.0.0.1:9/mirror/") == "http://127.0.0.1:9/mirror/edgel3_sea_ust_audio_emb_64.h5.gz"
    monkeypatch.setenv("SEA_TF_WEIGHTS_URL", "http://mirror.example/w")
    assert catalogue.lookup("openl3/mel128-music@v0_2_0").url() == \
        "http://mirror.example/w/openl3_audio_mel128_music-v0_2_0.h5.gz"


def test_unknown_names_and_patterns():
    with pytest.raises(WeightsError, match="did you mean openl3/mel256-env"):
        catalogue.lookup("openl3/mel256-envv")
    assert [e.name for e in catalogue.select(["edgel3/sea-*"])] == [f"edgel3/sea-{d}" for d in (64, 128, 256, 512)]
    assert len(catalogue.select(["openl3/*@v0_2_0", "openl3/mel256-env@v0_2_0"])) == 6
    with pytest.raises(WeightsError, match="matches no published model"):
        catalogue.select(["edgel3/sea-1*0"])
    assert catalogue.is_catalogue_name("edgel3/sea-64") and not catalogue.is_catalogue_name("sea-64")


def test_resolve_never_downloads_and_says_how_to_get_the_file(home, no_network):
    assert not cache.is_cached("openl3/mel256-env")
    with pytest.raises(WeightsError) as info:
        cache.resolve_name("openl3/mel256-env")
    message = str(info.value)
    assert "\n" not in message
    assert "`sea-tf models fetch openl3/mel256-env`" in message
    assert "`sea-tf models import PATH --name openl3/mel256-env`" in message
    assert not (home / "weights").exists()


def test_registered_file_resolves_and_a_changed_file_is_refused(home, no_network):
    path = cache.cached_path("openl3/mel128-env")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"pretend weights")
    with pytest.raises(WeightsError, match="an unregistered file is at"):
        cache.resolve_name("openl3/mel128-env")
    cache.record("openl3/mel128-env", sha256_file(path), path.stat().st_size, "import", "test")
    assert cache.is_cached("openl3/mel128-env@v0_4_0")
    assert cache.resolve_name("openl3/mel128-env") == path
    assert cache.expected_sha256("openl3/mel128-env") == (sha256_file(path), "recorded")
    path.write_bytes(b"pretend weightz")
    with pytest.raises(WeightsError, match="does not match the recorded hash"):
        cache.resolve_name("openl3/mel128-env")
    assert cache.forget("openl3/mel128-env") and not path.exists()
    assert not cache.is_cached("openl3/mel128-env")


def test_home_defaults_to_the_user_cache_dir(monkeypatch):
    monkeypatch.delenv("SEA_TF_HOME", raising=False)
    import platformdirs
    assert cache.weights_dir() == cache.home_dir().joinpath("weights")
    assert str(cache.home_dir()) == platformdirs.user_cache_dir("sea-tf")


def test_unwritable_cache_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(WeightsError, match="cannot write the weights cache .* to a writable directory"):
        cache.ensure_weights_dir(blocker / "home")


def test_cli_list_json_and_errors(home, capsys):
    assert run_cli(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["cache"] == str(home / "weights")
    rows = {row["name"]: row for row in listing["models"]}
    assert len(rows) == 32
    assert rows["edgel3/sea-64"]["sha256"] == SEA64_SHA and rows["edgel3/sea-64"]["hash"] == "catalogue"
    assert rows["openl3/mel256-env"]["cached"] is False and rows["openl3/mel256-env"]["sha256"] is None
    assert run_cli(["models", "list", "--cached"]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == []
    assert run_cli(["models", "fetch", "openl3/mel512-env", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sea-tf models fetch: error: unknown published model 'openl3/mel512-env'")
    assert len(err.splitlines()) == 1


def test_cli_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        run_cli(["models", "fetch", "--help"])
    text = capsys.readouterr().out
    for needle in ("--config", "--set", "--base-url", "(default: 10.0)", "(default: 60.0)", "(default: 2)"):
        assert needle in text
