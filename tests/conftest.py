"""Shared test fixtures. Tests that need ../shared skip with a clear reason when it is absent.

The product never reads ../shared: a test that needs the published SEA-64 through the library's
defaults imports the ../shared copy into a temporary weights cache first (:func:`sea64_home`), as
a user would with ``sea-tf models import``. Every test starts with an empty weights cache of its
own (``$SEA_TF_HOME``), so no result depends on what the developer's cache holds.
"""
import os
from pathlib import Path

import pytest

from slurm_support import slurm_cluster  # noqa: F401 - the real SLURM cluster fixture, for every test file

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No developer's ~/.ssh/config (Host *, ProxyJump, User) in the SSH tests: they name their own config
# with --ssh-config where they test one (sea_tf.ssh_hosts reads this instead of ~/.ssh/config).
os.environ["SEA_TF_SSH_CONFIG"] = os.devnull

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SEA_TF_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir():
    """``../shared`` (published SEA-64 student and fixtures); skips when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: the published SEA-64 weights and fixtures are needed")
    return SHARED


@pytest.fixture(scope="session")
def sea64_h5(shared_dir):
    """Path of the published SEA-64 student ``edgel3_sea_ust_audio_emb_64.h5``."""
    path = shared_dir / "models" / "edgel3_sea_ust_audio_emb_64.h5"
    if not path.exists():
        pytest.skip(f"{path} absent: the published SEA-64 student is needed")
    return path


@pytest.fixture(scope="session", autouse=True)
def empty_weights_home(tmp_path_factory):
    """``$SEA_TF_HOME`` is an empty directory for the whole run (tests may point it elsewhere)."""
    saved = os.environ.get("SEA_TF_HOME")
    home = tmp_path_factory.mktemp("sea-tf-home-empty")
    os.environ["SEA_TF_HOME"] = str(home)
    yield home
    if saved is None:
        os.environ.pop("SEA_TF_HOME", None)
    else:
        os.environ["SEA_TF_HOME"] = saved


@pytest.fixture(scope="session")
def published_cache(sea64_h5, tmp_path_factory):
    """A sea-tf home whose weights cache holds the published SEA-64, imported by the real importer.

    The import checks the file's known sha256 and its layers, exactly as ``sea-tf models import``.
    """
    from sea_tf.weights.importer import import_file
    home = tmp_path_factory.mktemp("sea-tf-home-published")
    import_file(sea64_h5, home=home)
    return home


@pytest.fixture
def sea64_home(published_cache, monkeypatch):
    """``$SEA_TF_HOME`` = :func:`published_cache` for one test: ``edgel3/sea-64`` and every model
    default resolve to the published SEA-64."""
    monkeypatch.setenv("SEA_TF_HOME", str(published_cache))
    return published_cache


@pytest.fixture(scope="session")
def chirp_wav(shared_dir):
    """``../shared/fixtures/chirp_8k.wav`` and its reference embeddings path."""
    wav = shared_dir / "fixtures" / "chirp_8k.wav"
    ref = shared_dir / "fixtures" / "sea64_reference_chirp8k.npz"
    if not (wav.exists() and ref.exists()):
        pytest.skip("chirp_8k.wav / sea64_reference_chirp8k.npz absent from ../shared/fixtures")
    return wav, ref
