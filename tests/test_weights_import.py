"""``sea-tf models import``: files copied from elsewhere are checked (layers, hashes) before they
enter the cache; the real published SEA-64 imports and its known hash verifies."""
import gzip
import importlib
import shutil
import sys

import h5py
import pytest

from sea_tf.cards import sha256_file
from sea_tf.errors import WeightsError
from sea_tf.weights import cache
from sea_tf.weights.importer import guess_name, import_file, import_from_package
from weights_support import run_cli, write_openl3
from weights_support import home  # noqa: F401  (the empty-cache fixture)

SEA64_SHA = "e8cd0eaac5d444c231d81940e30dc904ffed5cdafa632f7a5547142dc8283912"



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Synthetic openl3 files: mel256 v0_4_0 (seeds 0, 1) and linear v0_2_0, under published names."""
    folder = tmp_path_factory.mktemp("openl3")
    return {
        "v4": write_openl3(folder / "openl3_audio_mel256_env-v0_4_0.h5", "mel256", "v0_4_0", seed=0),
        "v4b": write_openl3(folder / "other.h5", "mel256", "v0_4_0", seed=1),
        "v2": write_openl3(folder / "openl3_audio_linear_env-v0_2_0.h5", "linear", "v0_2_0", seed=2),
    }


def cached_files(home):
    folder = home / "weights"
    return sorted(p.name for p in folder.iterdir() if p.name not in (cache.REGISTRY_NAME, cache.LOCK_NAME)) \
        if folder.exists() else []


def test_real_sea64_imports_and_its_known_hash_verifies(home, sea64_h5):
    result = import_file(sea64_h5)  # name guessed from the published file name
    assert (result.name, result.status, result.sha256, result.size) == ("edgel3/sea-64", "imported", SEA64_SHA, 6025848)
    assert cache.resolve_name("edgel3/sea-64") == result.path
    assert sha256_file(result.path) == SEA64_SHA
    assert import_file(sea64_h5, name="edgel3/sea-64").status == "cached"
    assert cache.read_registry()["edgel3/sea-64"]["origin"] == "import"


def test_gzipped_copy_imports(home, sea64_h5, tmp_path):
    gz = tmp_path / "edgel3_sea_ust_audio_emb_64.h5.gz"
    gz.write_bytes(gzip.compress(sea64_h5.read_bytes(), compresslevel=1))
    assert import_file(gz).sha256 == SEA64_SHA
    assert cached_files(home) == ["edgel3_sea_ust_audio_emb_64.h5"]


def test_altered_sea64_is_refused_by_the_known_hash(home, sea64_h5, tmp_path):
    altered = tmp_path / "edgel3_sea_ust_audio_emb_64.h5"
    shutil.copy(sea64_h5, altered)
    with h5py.File(altered, "r+") as handle:  # one weight changed: the layout alone cannot tell
        handle["model_weights/conv2d_1/conv2d_1/bias:0"][0] += 1.0
    with pytest.raises(WeightsError, match="differs from the catalogue hash e8cd0eaac5d444c2.*load it by path"):
        import_file(altered)
    assert cached_files(home) == []


def test_wrongly_laid_out_files_are_refused(home, sea64_h5, files):
    with pytest.raises(WeightsError, match="does not have the layers of 'edgel3/sea-128'"):
        import_file(sea64_h5, name="edgel3/sea-128")
    with pytest.raises(WeightsError, match="does not have the layers of 'openl3/mel256-env@v0_2_0'"):
        import_file(files["v4"], name="openl3/mel256-env@v0_2_0")
    with pytest.raises(WeightsError, match="has a spectrogram layer"):
        import_file(files["v2"], name="openl3/linear-env")
    with pytest.raises(WeightsError, match="does not have the layers of 'edgel3/sparse-kd-95.45'"):
        import_file(files["v4"], name="edgel3/sparse-kd-95.45")
    with pytest.raises(WeightsError, match="front-end layer 'spectrogram_1'.*not mel128"):
        import_file(files["v2"], name="openl3/mel128-env@v0_2_0")
    assert cached_files(home) == []


def test_openl3_files_import_and_names_are_guessed(home, files, tmp_path):
    assert import_file(files["v4"]).name == "openl3/mel256-env"
    assert import_file(files["v2"]).name == "openl3/linear-env@v0_2_0"
    # openl3 installs files without the generation suffix: the layers tell it
    installed = tmp_path / "openl3_audio_linear_env.h5"
    shutil.copy(files["v2"], installed)
    assert guess_name(installed) == "openl3/linear-env@v0_2_0"
    shutil.copy(files["v4"], installed)
    assert guess_name(installed) == "openl3/linear-env"
    assert guess_name(files["v4b"]) is None
    with pytest.raises(WeightsError, match="pass --name NAME"):
        import_file(files["v4b"])
    assert cached_files(home) == ["openl3_audio_linear_env-v0_2_0.h5", "openl3_audio_mel256_env-v0_4_0.h5"]


def test_recorded_hash_protects_the_cached_copy(home, files):
    first = import_file(files["v4"])
    with pytest.raises(WeightsError, match="differs from the recorded hash.*--force"):
        import_file(files["v4b"], name="openl3/mel256-env")
    assert sha256_file(first.path) == first.sha256
    replaced = import_file(files["v4b"], name="openl3/mel256-env", force=True)
    assert replaced.sha256 != first.sha256 and cache.resolve_name("openl3/mel256-env") == first.path
    assert sha256_file(first.path) == replaced.sha256


def test_import_from_an_installed_package(home, sea64_h5, tmp_path, monkeypatch):
    package = tmp_path / "site" / "edgel3"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    shutil.copy(sea64_h5, package / sea64_h5.name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    results = import_from_package("edgel3")
    assert [(r.name, r.sha256) for r in results] == [("edgel3/sea-64", SEA64_SHA)]
    assert "edgel3" not in sys.modules


def test_cli_import(home, sea64_h5, files, capsys):
    assert run_cli(["models", "import", str(sea64_h5)]) == 0
    assert "edgel3/sea-64: imported" in capsys.readouterr().out
    assert run_cli(["models", "import", str(files["v4"]), "--name", "edgel3/sea-256"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sea-tf models import: error:") and err.count("\n") == 1
    assert run_cli(["models", "import", "/nonexistent/file.h5"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run_cli(["models", "import"]) == 2
    assert "--from-package" in capsys.readouterr().err
