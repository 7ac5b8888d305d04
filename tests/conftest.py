"""Shared test fixtures. Tests that need ../shared skip with a clear reason when it is absent."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


@pytest.fixture(scope="session")
def chirp_wav(shared_dir):
    """``../shared/fixtures/chirp_8k.wav`` and its reference embeddings path."""
    wav = shared_dir / "fixtures" / "chirp_8k.wav"
    ref = shared_dir / "fixtures" / "sea64_reference_chirp8k.npz"
    if not (wav.exists() and ref.exists()):
        pytest.skip("chirp_8k.wav / sea64_reference_chirp8k.npz absent from ../shared/fixtures")
    return wav, ref
