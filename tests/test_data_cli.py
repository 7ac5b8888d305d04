"""``sea-tf data make-demo`` and ``sea-tf data check``: outputs, and one-line errors with exit code 2."""
import json

import pytest
import yaml

from sea_tf.cli import main as cli_main

TINY = ["--clips-per-class", "1", "--upstream", "1", "--seed", "3",
        "--set", "upstream.min_duration_s=5", "--set", "upstream.max_duration_s=5",
        "--set", "duration_s.max=1.0", "--set", "ust.clips_per_sensor=1", "--set", "ust.clip_seconds=1.0"]


def run(capsys, *argv):
    code = cli_main.main(list(argv))
    out, err = capsys.readouterr()
    # progress bars share stderr; the error itself must be exactly one line, never a traceback
    assert "Traceback" not in err
    return code, out, [line for line in err.splitlines() if line.startswith("sea-tf")]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "demo"
    assert cli_main.main(["data", "make-demo", "--out", str(out), *TINY]) == 0
    return out


def test_make_demo_writes_dataset_card_and_resolved_config(tiny_dataset):
    cfg = yaml.safe_load((tiny_dataset / "data.config.yaml").read_text())
    assert cfg["clips_per_class"] == 1 and cfg["upstream"]["recordings"] == 1 and cfg["seed"] == 3
    assert cfg["duration_s"]["max"] == 1.0
    card = json.loads((tiny_dataset / "card.json").read_text())
    assert card["n_clips"] == 10 and card["upstream"]["n_recordings"] == 1
    assert len(list((tiny_dataset / "audio").rglob("*.wav"))) == 10
    assert (tiny_dataset / "upstream" / "scene-0000.wav").is_file()


def test_make_demo_refuses_non_empty_out(capsys, tiny_dataset):
    code, _, err = run(capsys, "data", "make-demo", "--out", str(tiny_dataset), *TINY)
    assert code == 2 and len(err) == 1
    assert err[0].startswith("sea-tf data make-demo: error:") and "not empty; pass --overwrite" in err[0]


def test_make_demo_unwritable_out_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run(capsys, "data", "make-demo", "--out", str(blocker / "demo"), *TINY)
    assert code == 2 and len(err) == 1 and "not a writable directory" in err[0] and str(blocker) in err[0]
    code, _, err = run(capsys, "data", "make-demo", "--out", str(blocker), *TINY)
    assert code == 2 and len(err) == 1 and "is not a directory" in err[0]


def test_make_demo_overwrite_and_bad_setting(capsys, tmp_path):
    out = tmp_path / "d"
    assert run(capsys, "data", "make-demo", "--out", str(out), *TINY, "--set", "upstream.recordings=0")[0] == 0
    code, _, _ = run(capsys, "data", "make-demo", "--out", str(out), *TINY, "--set", "upstream.recordings=0",
                     "--seed", "4", "--overwrite")
    assert code == 0 and json.loads((out / "card.json").read_text())["seed"] == 4
    code, _, err = run(capsys, "data", "make-demo", "--out", str(out), "--set", "clip_per_class=3")
    assert code == 2 and len(err) == 1 and "unknown setting 'clip_per_class'" in err[0]


def test_check_good_dataset_and_report(capsys, tiny_dataset, tmp_path):
    report = tmp_path / "check" / "report.json"
    code, out, _ = run(capsys, "data", "check", str(tiny_dataset), "--report", str(report))
    assert code == 0 and "us8k at" in out and "all 10 audio files readable" in out
    findings = json.loads(report.read_text())
    assert findings["n_clips"] == 10 and findings["problems"] == []
    assert yaml.safe_load((report.parent / "data-check.config.yaml").read_text())["kind"] == "auto"


def test_check_lists_missing_audio_and_fails(capsys, tmp_path, tiny_dataset):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    victim = sorted((root / "audio").rglob("*.wav"))[0]
    victim.unlink()
    code, out, err = run(capsys, "data", "check", str(root))
    assert code == 2 and f"missing: {victim}" in out
    assert len(err) == 1 and "1 of 10 audio files are missing or unreadable" in err[0]


def test_check_bad_metadata_is_one_line(capsys, tmp_path):
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n1-1-0-0.wav,1,0,1,1,11,1,car_horn\n")
    code, _, err = run(capsys, "data", "check", str(tmp_path))
    assert code == 2 and len(err) == 1
    assert err[0].startswith("sea-tf data check: error:") and "UrbanSound8K.csv line 2: fold 11 is outside 1-10" in err[0]
    code, _, err = run(capsys, "data", "check", str(tmp_path / "nope"))
    assert code == 2 and len(err) == 1 and "not found" in err[0]


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli_main.main(["data", "make-demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8)" in text and "(default: 40)" in text and "--overwrite" in text
    code, out, _ = run(capsys, "data")
    assert code == 2 and "make-demo" in out and "check" in out
