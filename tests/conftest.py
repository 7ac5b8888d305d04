"""Shared test fixtures. Tests that need ../shared skip with a clear reason when it is absent.

The product never reads ../shared: a test that needs the published SEA-64 through the library's
defaults imports the ../shared copy into a temporary weights cache first (:func:`sea64_home`), as
a user would with ``sea-tf models import``. Every test starts with an empty weights cache of its
own (``$SEA_TF_HOME``), so no result depends on what the developer's cache holds.

What several test files share lives here, so that pytest builds it once: a fixture imported from
another test file is a new fixture in the importing file, built again there. The tiny TFLite
artifacts (``device_artifacts``, ``listen_artifacts``, ``sea64_net_artifacts``) are built once per
run and are read only: a test that changes one copies it into its ``tmp_path`` first.
"""
import os
from pathlib import Path

import pytest

import device_support
import listen_support
import remote_support
from slurm_support import slurm_cluster  # noqa: F401 - the real SLURM cluster fixture, for every test file

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# numba's compiled functions (umap-learn, pynndescent, librosa) are cached in the checkout's ignored .cache/,
# read before anything imports numba: a second run loads what the first compiled (test_reduce's UMAP test:
# ~25 s of compiling -> ~1 s). The cache is keyed by each function's source file and numba version.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "numba"))
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
def device_batch_cache(tmp_path_factory):
    """device.batching's measured batch choices go to a temporary file for the run, not ~/.cache."""
    saved = os.environ.get("SEA_TF_DEVICE_CACHE")
    path = tmp_path_factory.mktemp("device-cache") / "device-batch.json"
    os.environ["SEA_TF_DEVICE_CACHE"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("SEA_TF_DEVICE_CACHE", None)
    else:
        os.environ["SEA_TF_DEVICE_CACHE"] = saved


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


@pytest.fixture(scope="session")
def device_artifacts(tmp_path_factory):
    """tests/device_support.py's tiny raw-audio artifacts (tiny-emb fp32/int8, tiny-cls fp32) with
    their Keras reference outputs (:func:`device_support.build_artifacts`), built once per run."""
    return device_support.build_artifacts(tmp_path_factory.mktemp("device_artifacts"))


@pytest.fixture(scope="session")
def device_export_dir(device_artifacts):
    """The folder holding :func:`device_artifacts` (and nothing else), as ``export/`` writes one."""
    return Path(device_artifacts["emb_fp32"]).parent


@pytest.fixture(scope="session")
def listen_artifacts(tmp_path_factory):
    """tests/listen_support.py's feature-input artifacts (tiny-feat fp32/int8, tiny-cls fp32), paths
    by mode (``fp32``, ``int8``, ``cls``), built once per run."""
    return listen_support.build_listen_artifacts(tmp_path_factory.mktemp("listen_artifacts"))


@pytest.fixture(scope="session")
def listen_export_dir(listen_artifacts):
    """The folder holding :func:`listen_artifacts` (and nothing else)."""
    return Path(listen_artifacts["fp32"]).parent


@pytest.fixture(scope="session")
def sea64_net_artifacts(tmp_path_factory):
    """The sea-64 preset's network (front end outside: the device computes it with numpy) as an fp32
    .tflite with its sidecar, and 4 frames with their Keras embeddings
    (:func:`device_support.student_artifacts`), built once per run."""
    return device_support.student_artifacts(tmp_path_factory.mktemp("sea64_net"), "sea-64", modes=("fp32",),
                                            n_frames=4)


@pytest.fixture(scope="session")
def qat_distill_run(tmp_path_factory):
    """One ``sea-tf distill --config distill.yaml --qat --set qat.epochs=1`` of the tiny student (12 sources,
    2 epochs of 6 steps), run once through the CLI and read only by the tests that export its QAT student
    beside the float one (journey b's CLI export, test_export's demo step).

    Returns ``{"data", "run", "code", "stderr", "root", "files"}``: make_dataset's paths, the run folder,
    the CLI's exit status and stderr for the users to assert, the fixture's folder and its
    :func:`distill_fixtures.tree_files`, which each user checks is unchanged after it ran.
    """
    import contextlib
    import io

    import yaml

    from distill_fixtures import make_dataset, tiny_config, tree_files
    from sea_tf.cli import main as cli_main

    root = tmp_path_factory.mktemp("qat_distill")
    data = make_dataset(root / "data", n_sources=12)
    run = root / "run"
    config = root / "distill.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, run, epochs=2, steps_per_epoch=6)))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cli_main.main(["distill", "--config", str(config), "--qat", "--set", "qat.epochs=1", "--no-progress"])
    return {"data": data, "run": run, "code": code, "stderr": stderr.getvalue(), "root": root,
            "files": tree_files(root)}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A running ``sshd -D -e -f <own config>`` on a free 127.0.0.1 port; yields its details.

    One server per test file (a file's fault tests stop and signal its sessions)."""
    if remote_support.find_sshd() is None:
        pytest.skip("OpenSSH sshd not found and could not be installed (make test installs openssh-server "
                    "with apt-get when run as root); the real-SSH tests need it")
    try:
        server = remote_support.start_sshd(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server.info
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    """Path of Debian's ``chromium`` for the browser report tests (tests/browser_support.py); skips when absent."""
    import browser_support   # websockets: only where a browser test runs
    path = browser_support.find_chromium()
    if path is None:
        pytest.skip("Chromium not found and could not be installed (make test installs Debian's chromium with "
                    "apt-get when run as root); the browser report tests need it")
    return path


@pytest.fixture
def no_agent(monkeypatch):
    """No ssh-agent: only the keys the test passes (the SSH test files use it for every test)."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
