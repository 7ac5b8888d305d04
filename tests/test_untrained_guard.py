"""Never silently untrained: every model default is the published SEA-64 from the weights cache.

- An empty weights cache: ``sea-tf embed clip.wav`` (and ``get_embedding`` without a model) fails
  with one line saying how to fetch or import the published student, and writes nothing.
- With the ../shared copy imported into a temporary cache (as a user would, ``sea-tf models
  import``), the default is that student: its embeddings match edgel3's reference.
- A preset named explicitly still works, warns every time (one ``warning:`` line on the CLI), and
  the cards of what it makes (embeddings, features) say ``"weights": "untrained"``.
- The demo takes the published student from the weights cache only: the repository's sibling
  ../shared holds it here, yet with an empty cache the demo steps report the untrained stand-in.
"""
import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import yaml

from sea_tf.cli import main as cli_main
from sea_tf.embed import get_embedding, process_file
from sea_tf.errors import ModelError, SeaTFWarning

FETCH_HINT = "sea-tf models fetch edgel3/sea-64"
IMPORT_HINT = "sea-tf models import"


@pytest.fixture
def clip(tmp_path):
    """A 1.5-s 8-kHz tone in its own directory (outputs would land beside it)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    t = np.arange(12000) / 8000
    sf.write(folder / "clip.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    return folder / "clip.wav"


def _written(root):
    return sorted(p.name for p in root.rglob("*") if p.suffix in (".npz", ".yaml", ".json"))


def test_embed_with_an_empty_cache_fails_with_the_hint_and_writes_nothing(clip, tmp_path, capsys):
    out = tmp_path / "out"
    for argv in (["embed", str(clip)], ["embed", str(clip), "-o", str(out)]):
        assert cli_main.main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sea-tf embed: error:")
        assert FETCH_HINT in err[0] and IMPORT_HINT in err[0]
    assert _written(tmp_path) == [] and not out.exists()


def test_library_default_with_an_empty_cache_raises_before_writing(clip):
    audio, sr = sf.read(clip)
    for call in (lambda: get_embedding(audio, sr), lambda: process_file(clip)):
        with pytest.raises(ModelError, match="no model named") as info:
            call()
        assert FETCH_HINT in str(info.value) and IMPORT_HINT in str(info.value)
    assert _written(clip.parent) == []


def test_default_is_the_published_student_and_follows_the_cache(sea64_home, chirp_wav, tmp_path, monkeypatch):
    wav, ref_path = chirp_wav
    ref = np.load(ref_path)
    audio, sr = sf.read(wav)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeaTFWarning)          # trained weights: not a word
        emb, ts = get_embedding(audio, sr)
    want = ref["emb_center_True"]
    # The same bound as tests/test_models_h5.py: float32 rfft front end vs edgel3's kapre matmul.
    assert np.abs(emb - want).max() / np.abs(want).max() < 1e-4
    np.testing.assert_allclose(ts, ref["ts_center_True"])
    # The CLI default too, and its resolved config says where the weights come from.
    assert cli_main.main(["embed", str(wav), "-o", str(tmp_path / "cli")]) == 0
    resolved = yaml.safe_load((tmp_path / "cli" / "embed.config.yaml").read_text())
    assert resolved["weights"] == "published" and resolved["model"] == "edgel3/sea-64"
    np.testing.assert_array_equal(np.load(tmp_path / "cli" / "chirp_8k.npz")["embedding"], emb)
    # Resolved models are cached per process, but keyed by the file the cache holds now: another
    # (empty) $SEA_TF_HOME is not served the model loaded from the first one.
    monkeypatch.setenv("SEA_TF_HOME", str(tmp_path / "empty-home"))
    with pytest.raises(ModelError, match="not in the weights cache"):
        get_embedding(audio, sr)


def test_a_named_preset_warns_every_time_and_its_cards_say_untrained(clip, tmp_path, capsys):
    audio, sr = sf.read(clip)
    for _ in range(2):   # the second call is served from the model cache and must warn as well
        with pytest.warns(SeaTFWarning, match=r"'sea-64' is the seeded, untrained preset.*edgel3/sea-64"):
            emb, _ = get_embedding(audio, sr, model="sea-64")
    assert emb.shape == (11, 64)          # 1 + ceil((12000 + 4000 - 8000) / 800) centred windows
    out = tmp_path / "out"
    assert cli_main.main(["embed", str(clip), "--model", "sea-64", "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "warning:" in line]
    assert warned == [line for line in err if "untrained preset" in line] and len(warned) == 1
    assert warned[0].startswith("sea-tf embed: warning: 'sea-64' is the seeded, untrained preset")
    assert not any("SeaTFWarning" in line or "warnings.warn" in line for line in err)   # no traceback-like lines
    assert any("UNTRAINED weights" in line for line in err)
    assert yaml.safe_load((out / "embed.config.yaml").read_text())["weights"] == "untrained"
    np.testing.assert_allclose(np.load(out / "clip.npz")["embedding"], emb, rtol=1e-5, atol=1e-6)


def test_a_saved_untrained_model_warns_too(tmp_path):
    from sea_tf.models import build_student, load_model
    saved = build_student("sea-64", seed=3).save(tmp_path / "seeded.keras")
    with pytest.warns(SeaTFWarning, match="its card says its weights are untrained"):
        load_model(saved)


def test_features_of_a_preset_say_untrained(clip, tmp_path):
    from sea_tf.classify.features import ClipSet, extract_features, open_embedder
    clips = ClipSet(names=["clip.wav"], paths=[clip], folds=np.array([1]), labels=np.array([0]), classes=["tone"],
                    fold_ids=[1], kind="tone")
    with pytest.warns(SeaTFWarning, match="untrained preset"):
        embedder = open_embedder("sea-64")
    extract_features(clips, embedder, tmp_path / "cache", hop_size=0.1, framing="centered", progress=False,
                     max_failed_fraction=0.05)
    # The card sits inside the model's cache directory, on the first run as on later ones.
    written = sorted((tmp_path / "cache").rglob("*card.json"))
    assert written == [tmp_path / "cache" / embedder.name / "card.json"]
    card = json.loads(written[0].read_text())
    assert card["weights"] == "untrained" and card["model_card"]["weights"]["source"] == "untrained"


def test_a_spec_that_names_nothing_says_how_to_name_fetch_or_import(clip, capsys):
    assert cli_main.main(["embed", str(clip), "--model", "sea-65"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sea-tf embed: error: unknown model 'sea-65'")
    assert "sea-tf models fetch" in err[0] and IMPORT_HINT in err[0] and "sea-64" in err[0]
    assert cli_main.main(["embed", str(clip), "--model", "edgel3/sea-64"]) == 2      # named but not cached
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and FETCH_HINT in err[0] and IMPORT_HINT in err[0]


def _demo_ctx(tmp_path):
    from sea_tf.demo import DemoContext
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path / "data")
    ctx.report_dir.mkdir(parents=True)
    return ctx


@pytest.mark.parametrize("cached", [False, True], ids=["empty-cache", "published-imported"])
def test_demo_models_step_takes_the_published_student_from_the_cache_only(cached, clip, tmp_path, monkeypatch,
                                                                          request):
    from sea_tf.demo_steps import models as step
    if cached:
        request.getfixturevalue("sea64_home")
    monkeypatch.setattr(step, "ZOO", ("sea-64",))       # the zoo table's cost is not what is tested here
    ctx = _demo_ctx(tmp_path / "demo")
    audio = ctx.data_dir / "audio" / "fold1"
    audio.mkdir(parents=True)
    samples, sr = sf.read(clip)
    sf.write(audio / "a.wav", samples, sr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = step.run(ctx)
    f = report.figures
    untrained = [w for w in caught if issubclass(w.category, SeaTFWarning) and "untrained" in str(w.message)]
    resolved = yaml.safe_load((ctx.out_dir / "embeddings" / "embed.config.yaml").read_text())
    assert f["processed"] == 1 and f["published_in_weights_cache"] is cached
    if cached:
        assert f["embed_model"] == "edgel3/sea-64" and f["weights"] == "published" and not untrained
        assert "published SEA-64 student" in report.markdown and resolved["weights"] == "published"
    else:
        # ../shared (beside the repository) holds the published file, and the demo does not look there.
        assert f["embed_model"] == "sea-64" and f["weights"] == "untrained" and untrained
        assert "untrained" in report.markdown and "not in the weights cache" in report.markdown
        assert IMPORT_HINT in report.markdown and resolved["weights"] == "untrained"


def test_demo_classify_fallback_student_comes_from_the_cache(tmp_path, request):
    from sea_tf.demo_steps.classify import _student_spec
    spec, source = _student_spec(_demo_ctx(tmp_path / "a"))
    assert spec == "sea-64" and "untrained" in source and IMPORT_HINT in source
    request.getfixturevalue("sea64_home")
    spec, source = _student_spec(_demo_ctx(tmp_path / "b"))
    assert spec == "edgel3/sea-64" and "weights cache" in source



@pytest.mark.parametrize("command", ["us8k", "final"])
def test_classify_without_a_model_uses_the_default_and_fails_before_writing(command, tmp_path, capsys):
    out = tmp_path / ("out" if command == "us8k" else "clf/c.keras")
    out_flag = "--out" if command == "us8k" else "--out-file"   # classify final writes one file
    assert cli_main.main(["classify", command, "--data", str(tmp_path / "data"), out_flag, str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"sea-tf {command}: error: no model named")
    assert FETCH_HINT in err[0] and IMPORT_HINT in err[0]
    assert list(tmp_path.iterdir()) == []
