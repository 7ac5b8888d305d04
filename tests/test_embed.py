"""The openl3/edgel3-style API (get_embedding, process_file, get_output_path) and ``sea-tf embed``."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.embed import get_embedding, get_output_path, process_file
from sea_tf.errors import AudioError, SeaTFError, SeaTFWarning
from sea_tf.models import build_student
from sea_tf.presets import load_defaults, preset_names
from tolerance_support import forward_atol

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model():
    return build_student("sea-64", seed=5)


def _tone(seconds, sr, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_get_embedding_shapes_lists_and_rates(model):
    a, b = _tone(1.5, 16000), _tone(0.7, 8000, 1000)
    emb_a, ts_a = get_embedding(a, 16000, model=model)
    assert emb_a.shape == (11, 64) and emb_a.dtype == np.float32     # 1 + ceil((12000+4000-8000)/800)
    np.testing.assert_allclose(ts_a, np.arange(11) * 0.1)
    embs, tss = get_embedding([a, b], [16000, 8000], model=model, hop_size=0.25, batch_size=3)
    assert [e.shape for e in embs] == [(5, 64), (2, 64)] and [len(t) for t in tss] == [5, 2]
    alone, _ = get_embedding(b, 8000, model=model, hop_size=0.25)
    # Batching across inputs changes nothing but the kernels' sum order (tolerance_support.forward_atol).
    np.testing.assert_allclose(embs[1], alone, rtol=0, atol=forward_atol(model.keras, alone))
    stereo = np.stack([a, a], axis=1)
    np.testing.assert_allclose(get_embedding(stereo, 16000, model=model)[0], emb_a, rtol=0,
                               atol=forward_atol(model.keras, emb_a))
    emb_nc, ts_nc = get_embedding(a, 16000, model=model, center=False)
    assert emb_nc.shape == (6, 64) and ts_nc[-1] == pytest.approx(0.5)     # 1 + ceil((12000 - 8000) / 800)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(audio=np.zeros(0)), AudioError, "empty"),
    (dict(audio=np.full(8000, np.nan)), AudioError, "NaN"),
    (dict(audio=np.zeros((10, 2, 2))), AudioError, "dimensions"),
    (dict(hop_size=0), AudioError, "hop_size"),
    (dict(hop_size=-1), AudioError, "hop_size"),
    (dict(sr=0), AudioError, "positive integer"),
    (dict(sr=22050.5), AudioError, "positive integer"),
    (dict(batch_size=0), SeaTFError, "batch_size"),
    (dict(center="yes"), SeaTFError, "center"),
    (dict(verbose=3), SeaTFError, "verbose"),
    (dict(audio=[]), AudioError, "empty list"),
    (dict(sr=[8000, 8000]), AudioError, "one per array"),
])
def test_bad_input(model, kwargs, error, match):
    args = dict(audio=_tone(1.0, 8000), sr=8000, model=model) | kwargs
    with pytest.raises(error, match=match):
        get_embedding(**args)


def test_short_audio_pads_and_warns(model):
    with pytest.warns(SeaTFWarning, match="shorter than the 1-s window"):
        emb, ts = get_embedding(_tone(0.2, 8000), 8000, model=model, center=False)
    assert emb.shape == (1, 64) and ts.tolist() == [0.0]


def test_output_path_conventions(tmp_path):
    assert get_output_path("/a/b/clip.wav", ".npz") == Path("/a/b/clip.npz")
    assert get_output_path("/a/b/clip.wav", "x.npz", tmp_path) == tmp_path / "clip_x.npz"
    assert get_output_path("clip.tar.wav", ".npz") == Path("clip.tar.npz")


def test_process_file_writes_skips_and_overwrites(model, tmp_path):
    wav = tmp_path / "clip.wav"
    sf.write(wav, _tone(1.2, 22050), 22050)
    out = process_file(wav, model=model, suffix="s64")
    assert out == tmp_path / "clip_s64.npz"
    data = np.load(out)
    assert set(data.files) == {"embedding", "timestamps"}
    assert data["embedding"].dtype == np.float32 and data["embedding"].shape == (1 + 7, 64)
    assert data["timestamps"].dtype == np.float64
    out.write_bytes(b"sentinel")
    assert process_file(wav, model=model, suffix="s64").read_bytes() == b"sentinel"      # skipped
    process_file(wav, model=model, suffix="s64", overwrite=True)
    assert np.load(out)["embedding"].shape == (8, 64)
    with pytest.raises(AudioError, match="no such audio file"):
        process_file(tmp_path / "missing.wav", model=model)


def test_cli_batches_files_reports_failures_and_resumes(model, tmp_path, capsys):
    saved = model.save(tmp_path / "m.keras")
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    sf.write(clips / "a.wav", _tone(2.0, 16000), 16000)
    sf.write(clips / "sub" / "b.flac", _tone(0.5, 8000), 8000)
    (clips / "broken.wav").write_bytes(b"RIFF....WAVEfmt ")
    sf.write(clips / "nan.wav", np.full(8000, np.nan, np.float32), 8000, subtype="FLOAT")
    out_dir = tmp_path / "out"
    argv = ["embed", str(clips), "--recursive", "--model", str(saved), "-o", str(out_dir), "--batch-size", "4",
            "--hop-size", "0.5"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeaTFWarning)
        code = cli_main.main(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1
    assert lines[0] == "processed 2, skipped 0, failed 2"
    assert any("broken.wav" in line and "cannot read audio" in line for line in lines)
    assert any("nan.wav" in line and "NaN" in line for line in lines)
    a = np.load(out_dir / "a.npz")
    assert a["embedding"].shape == (4, 64)       # 2 s + 0.5 s centring pad at hop 0.5 -> 1 + ceil(1.5 / 0.5)
    expected, _ = get_embedding(*sf.read(clips / "a.wav"), model=model, hop_size=0.5)   # the PCM-16 samples
    np.testing.assert_allclose(a["embedding"], expected, rtol=0, atol=forward_atol(model.keras, expected))
    resolved = yaml.safe_load((out_dir / "embed.config.yaml").read_text())
    assert resolved["hop_size"] == 0.5 and resolved["batch_size"] == 4 and resolved["model_name"] == "sea-64"
    # Non-recursive dir + explicit sub dir + a missing path: the missing one fails, the rest is skipped.
    code = cli_main.main(argv[:2] + [str(clips / "sub"), str(tmp_path / "gone.wav")] + argv[3:])
    out = capsys.readouterr().out
    assert code == 1 and "processed 0, skipped 2, failed 3" in out and "gone.wav: no such file" in out


def test_cli_bad_model_is_one_line(capsys, tmp_path):
    sf.write(tmp_path / "a.wav", _tone(1.0, 8000), 8000)
    assert cli_main.main(["embed", str(tmp_path), "--model", "sea-65"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sea-tf embed: error: unknown model 'sea-65'")


def test_cli_parity_with_published_model(sea64_home, sea64_h5, chirp_wav, tmp_path, capsys):
    wav, ref_path = chirp_wav
    ref = np.load(ref_path)
    # The default model (the published SEA-64, imported into a temporary weights cache), and the
    # same file named by path.
    for center, flag in ((True, []), (False, ["--no-centering", "--model", str(sea64_h5)])):
        out_dir = tmp_path / f"c{center}"
        assert cli_main.main(["embed", str(wav), "-o", str(out_dir)] + flag) == 0
        data = np.load(out_dir / "chirp_8k.npz")
        want = ref[f"emb_center_{center}"]
        assert np.abs(data["embedding"] - want).max() / np.abs(want).max() < 1e-4
        np.testing.assert_allclose(data["timestamps"], ref[f"ts_center_{center}"])


@pytest.mark.parametrize("name", [n for n in preset_names("models") if n.startswith("models/embed")])
def test_config_files_load_through_defaults(name):
    defaults = load_defaults("models/embed")
    cfg = config.resolve(defaults, name)
    assert set(cfg) == set(defaults) and cfg["hop_size"] > 0
