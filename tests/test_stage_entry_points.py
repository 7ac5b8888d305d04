"""Each stage's library entry point, ``<stage>(cfg)`` with ``cfg = sea_tf.config.load(...)``, does what
its CLI command does: the same outputs, the same resolved config beside them, the same refusals.

The CLI handler is only ``cfg → entry(cfg) → print``; these tests hold the two spellings together
(issue #22 item 2) on tiny generated data, the CLI run in-process.
"""
from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf
import yaml

from distill_fixtures import TEACHER_CARD, synth_audio, teacher_embedding
from sea_tf import config
from sea_tf.cli import main as cli_main
from sea_tf.errors import ConfigError
from sea_tf.shards import ShardSet, write_table

N_SOURCES, WINDOWS = 12, 8      # 96 rows of a 32-d synthetic teacher


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run ``sea-tf ARGV`` in-process; its stdout (it must exit 0)."""
    code = cli_main.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, f"sea-tf {' '.join(map(str, argv))} exited {code}: {out.err.strip()}"
    return out.out


def _cli_error(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """The one error line of a refused ``sea-tf ARGV``, without its ``sea-tf CMD: error: `` prefix."""
    code = cli_main.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err.split(": error: ", 1)[1]


def _same_except_dir(lib: Any, cli: Any, lib_dir: Path, cli_dir: Path) -> None:
    """``lib`` equals ``cli`` once the library run's directory is renamed to the CLI run's."""
    assert json.loads(json.dumps(lib, default=str).replace(str(lib_dir), str(cli_dir))) == \
        json.loads(json.dumps(cli, default=str))


def _resolved(out: Path, name: str) -> Any:
    return yaml.safe_load((out / f"{name}.config.yaml").read_text())


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher-shard folder as ``sea-tf teacher-embed`` writes it (loudness for the loudness samplers)."""
    root = tmp_path_factory.mktemp("entry")
    n = N_SOURCES * WINDOWS
    audio = synth_audio(n, seed=3)
    loudness = (20 * np.log10(np.sqrt((audio ** 2).mean(axis=1)) + 1e-9)).astype(np.float32)
    sources = np.array([f"src-{i // WINDOWS:03d}.wav" for i in range(n)], dtype=object)
    write_table(root / "shards", {"embedding": teacher_embedding(audio), "audio": audio, "source": sources,
                                  "loudness_db": loudness}, TEACHER_CARD, shard_rows=32)
    return root / "shards"


# -- teacher -------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:'sea-64' is the seeded, untrained preset")
def test_teacher_extract_cfg_writes_what_teacher_embed_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.teacher import extract

    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for i, seconds in enumerate((1.5, 2.2)):
        sf.write(audio / f"clip{i}.wav", (0.1 * rng.normal(size=int(8000 * seconds))).astype(np.float32), 8000)
    settings = {"teacher": "sea-64", "shard_rows": 4, "batch_size": 4}
    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    printed = _cli(capsys, "teacher-embed", "--input", audio, "--out", cli_out, "--teacher", "sea-64",
                   "--shard-rows", 4, "--batch-size", 4, "--no-progress")
    summary = extract(config.load("teacher", input=audio, out=lib_out, progress=False, **settings))
    assert summary["job"] == "0of1" and summary["n_rows"] > 4 and not summary.get("already_complete")
    assert printed.startswith(f"teacher-embed 0of1: {summary['n_rows']} rows in {summary['n_shards']} shards in ")
    lib, cli = ShardSet(lib_out), ShardSet(cli_out)
    assert lib.n_rows == cli.n_rows == summary["n_rows"]
    assert [s.path.name for s in lib.shards] == [s.path.name for s in cli.shards]
    rows = np.arange(lib.n_rows)
    for key in ("embedding", "audio", "source", "timestamp", "loudness_db"):
        np.testing.assert_array_equal(lib.read(key, rows), cli.read(key, rows))
    _same_except_dir(_resolved(lib_out, "teacher-embed-0of1"), _resolved(cli_out, "teacher-embed-0of1"),
                     lib_out, cli_out)
    # A complete job: nothing to do, and nothing rewritten (the resolved config included).
    (lib_out / "teacher-embed-0of1.config.yaml").unlink()
    again = extract(config.load("teacher", input=audio, out=lib_out, progress=False, **settings))
    assert again["already_complete"] and not (lib_out / "teacher-embed-0of1.config.yaml").exists()


def test_teacher_extract_cfg_refuses_what_the_cli_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.teacher import extract

    with pytest.raises(ConfigError) as caught:
        extract(config.load("teacher", input=tmp_path, out=tmp_path / "o", shard="3/2"))
    assert str(caught.value) == _cli_error(capsys, "teacher-embed", "--input", tmp_path, "--out", tmp_path / "o",
                                           "--shard", "3/2")


# -- sampling ------------------------------------------------------------------------------------

def test_sampling_sample_cfg_picks_what_sample_picks(shards: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.sampling import load_sample, sample

    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    printed = _cli(capsys, "sample", "--shards", shards, "--m", 20, "--strategy", "dpp-quality", "--group-rows", 32,
                   "--out", cli_out, "--no-progress")
    index, card = sample(config.load("sampling", shards=[shards], m=20, strategy="dpp-quality", group_rows=32,
                                     out=lib_out, progress=False))
    cli_index, cli_card = load_sample(cli_out)
    np.testing.assert_array_equal(index, cli_index)
    np.testing.assert_array_equal(load_sample(lib_out)[0], cli_index)
    _same_except_dir(card, cli_card, lib_out, cli_out)
    _same_except_dir(_resolved(lib_out, "sample"), _resolved(cli_out, "sample"), lib_out, cli_out)
    assert printed == f"sample: 20 of {N_SOURCES * WINDOWS} rows by dpp-quality ({card['n_groups']} groups) -> " \
                      f"{cli_out / 'sample.npz'}\n"


def test_sampling_sample_cfg_without_shards_is_the_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.sampling import sample

    with pytest.raises(ConfigError) as caught:
        sample(config.load("sampling", out=tmp_path / "s"))
    assert str(caught.value) == _cli_error(capsys, "sample", "--out", tmp_path / "s")
    assert not (tmp_path / "s").exists()


# -- reduce --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drawn(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random sample of :func:`shards` (``sea-tf sample`` output)."""
    from sea_tf.sampling import sample

    out = tmp_path_factory.mktemp("drawn") / "sample"
    sample(config.load("sampling", shards=[shards], m=48, strategy="random", out=out, progress=False))
    return out


def test_reduce_fit_and_apply_cfg_write_what_the_cli_writes(shards: Path, drawn: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.cards import read_card
    from sea_tf.reduce import Reducer, apply, fit

    cli_red, lib_red = tmp_path / "cli" / "reducer", tmp_path / "lib" / "reducer"
    fit_printed = _cli(capsys, "reduce", "fit", "--shards", shards, "--sample", drawn, "--d", 4, "--out", cli_red,
                       "--set", "quality.n_heldout=24", "quality.k=3", "--no-progress")
    card = fit(config.load("reduce/fit", shards=[shards], sample=drawn, d=4, out=lib_red,
                           quality={"n_heldout": 24, "k": 3}, progress=False))
    assert card["hashes"] == read_card(cli_red)["hashes"]       # the same φ, to the byte
    _same_except_dir(card, read_card(cli_red), tmp_path / "lib", tmp_path / "cli")
    _same_except_dir(_resolved(lib_red, "reduce-fit"), _resolved(cli_red, "reduce-fit"),
                     tmp_path / "lib", tmp_path / "cli")
    assert fit_printed.startswith(f"reduce fit: pca d=4 on 48 samples -> {cli_red} (trustworthiness ")

    cli_t, lib_t = tmp_path / "cli" / "targets", tmp_path / "lib" / "targets"
    apply_printed = _cli(capsys, "reduce", "apply", "--reducer", cli_red, "--shards", shards, "--out", cli_t,
                         "--chunk-rows", 16, "--no-progress")
    tcard = apply(config.load("reduce/apply", reducer=lib_red, shards=[shards], out=lib_t, chunk_rows=16,
                              progress=False))
    _same_except_dir(tcard, read_card(cli_t), tmp_path / "lib", tmp_path / "cli")
    _same_except_dir(_resolved(lib_t, "reduce-apply"), _resolved(cli_t, "reduce-apply"),
                     tmp_path / "lib", tmp_path / "cli")
    rows = np.arange(N_SOURCES * WINDOWS)
    lib_targets = ShardSet(shards, targets=lib_t).read("target", rows)
    np.testing.assert_array_equal(lib_targets, ShardSet(shards, targets=cli_t).read("target", rows))
    np.testing.assert_allclose(lib_targets, Reducer.load(lib_red).transform(ShardSet(shards).read("embedding", rows)),
                               atol=1e-6)
    assert apply_printed == f"reduce apply: {len(rows)} rows -> {len(tcard['shards'])} target shards (d=4) in {cli_t}\n"


def test_reduce_compare_cfg_tables_what_the_cli_tables(shards: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.reduce import compare, markdown_table

    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    settings = ["--set", "strategies=[random, loudness]", "quality.n_heldout=24", "quality.k=3"]
    printed = _cli(capsys, "reduce", "compare", "--shards", shards, "--m", 16, "--d", 3, "--out", cli_out,
                   *settings, "--no-progress")
    table = compare(config.load("reduce/compare", shards=[shards], m=16, d=3, out=lib_out,
                                strategies=["random", "loudness"], quality={"n_heldout": 24, "k": 3}, progress=False))
    cli_table = json.loads((cli_out / "compare.json").read_text())["rows"]
    untimed: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = \
        lambda rows: [{k: v for k, v in row.items() if k != "wall_s"} for row in rows]
    assert [row["strategy"] for row in table] == ["random", "loudness"]
    _same_except_dir(untimed(table), untimed(cli_table), lib_out, cli_out)
    _same_except_dir(_resolved(lib_out, "reduce-compare"), _resolved(cli_out, "reduce-compare"), lib_out, cli_out)
    assert printed.splitlines()[0] == markdown_table(table).splitlines()[0]


@pytest.mark.parametrize("schema, argv, settings, message", [
    ("reduce/fit", ["reduce", "fit"], {}, "no teacher shards given"),
    ("reduce/fit", ["reduce", "fit", "--shards", "SHARDS"], {"shards": ["SHARDS"]}, "no sample given"),
    ("reduce/apply", ["reduce", "apply"], {}, "no teacher shards given"),
    ("reduce/apply", ["reduce", "apply", "--shards", "SHARDS"], {"shards": ["SHARDS"]}, "no reducer given"),
    ("reduce/compare", ["reduce", "compare"], {}, "no teacher shards given"),
])
def test_reduce_cfg_refusals_are_the_cli_errors(schema: str, argv: list[str], settings: dict[str, Any], message: str,
                                                shards: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf import reduce

    entry = {"reduce/fit": reduce.fit, "reduce/apply": reduce.apply, "reduce/compare": reduce.compare}[schema]
    settings = {key: [str(shards)] if value == ["SHARDS"] else value for key, value in settings.items()}
    argv = [str(shards) if arg == "SHARDS" else arg for arg in argv]
    with pytest.raises(ConfigError, match=message) as caught:
        entry(config.load(schema, out=tmp_path / "o", **settings))
    assert str(caught.value) == _cli_error(capsys, *argv, "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()


# -- distill (the model the other stages follow: sea_tf.distill.distill(cfg)) --------------------

def test_distill_cfg_checks_what_the_cli_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.distill import distill
    from sea_tf.errors import TrainError

    with pytest.raises(TrainError, match="train.batch_size must be a positive integer") as caught:
        distill(config.load("distill", "sea-64", out=tmp_path / "run", train={"batch_size": 0}))
    assert str(caught.value) == _cli_error(capsys, "distill", "--config", "sea-64", "--out", tmp_path / "run",
                                           "--batch-size", 0)
    assert not (tmp_path / "run").exists()


# -- classify ------------------------------------------------------------------------------------

def _untimed(value: Any) -> Any:
    """``value`` without its wall-clock fields (two runs of one setting differ only there)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.endswith(("_s", "seconds")) and k != "time"}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


@pytest.fixture(scope="module")
def tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """UrbanSound8K layout: 10 folds x 3 tone classes x one 1.2-s clip at 8 kHz."""
    from classify_support import write_tone_us8k

    def tone(rng: np.random.Generator, f0: float) -> np.ndarray:
        t = np.arange(9600) / 8000
        return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32)

    return write_tone_us8k(tmp_path_factory.mktemp("tones"), 8000, 5, tone, end=1.2)


@pytest.mark.filterwarnings("ignore:'sea-64' is the seeded, untrained preset")
def test_classify_run_cfg_evaluates_what_classify_us8k_evaluates(tones: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.classify import run

    cache = tmp_path / "cache"     # shared: the second run reads the first one's embeddings
    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    printed = _cli(capsys, "classify", "us8k", "--data", tones, "--model", "sea-64", "--out", cli_out,
                   "--folds", "1", "--classifier-type", "svm", "--cache-dir", cache, "--no-progress")
    table = run(config.load("classify/us8k", data=tones, models=["sea-64"], out=lib_out, protocol={"test_folds": [1]},
                            classifier={"type": "svm"}, features={"cache_dir": cache}, progress=False), task="us8k")
    cli_table = json.loads((cli_out / "comparison.json").read_text())
    assert not table["failed"] and list(table["models"]) == ["sea-64"]
    # the CLI's run embedded the clips, the library's read them from the shared cache: all else is the same
    assert table["models"]["sea-64"].pop("cache")["cached"] == cli_table["models"]["sea-64"].pop("cache")["computed"]
    _same_except_dir(_untimed(table), _untimed(cli_table), lib_out, cli_out)
    assert json.loads((lib_out / "sea-64" / "fold-1.json").read_text())["predictions"] == \
        json.loads((cli_out / "sea-64" / "fold-1.json").read_text())["predictions"]
    _same_except_dir(_resolved(lib_out, "classify-us8k"), _resolved(cli_out, "classify-us8k"), lib_out, cli_out)
    assert printed == (cli_out / "comparison.md").read_text() + "\n" + \
        f"results: {cli_out / 'comparison.json'}; confusion matrices: {cli_out}/<model>/confusion.png\n"


@pytest.mark.parametrize("task", ["us8k", "esc50", "ust", "final"])
def test_classify_run_cfg_without_data_is_the_cli_error(task: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.classify import run

    out = tmp_path / ("o.keras" if task == "final" else "o")
    with pytest.raises(ConfigError, match="--data ROOT is required") as caught:
        run(config.load(f"classify/{task}", out=out), task=task)
    assert str(caught.value) == _cli_error(capsys, "classify", task, "--out-file" if task == "final" else "--out", out)
    assert not out.exists()
    with pytest.raises(ConfigError, match="unknown classify task 'us8'"):
        run(config.load("classify/us8k", out=out), task="us8")


def test_classify_package_imports_no_tensorflow() -> None:
    """``sea_tf.classify.run`` is reached without TensorFlow: it is imported when a task starts."""
    import subprocess
    import sys

    code = "import sys, sea_tf.classify; sea_tf.classify.run; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


# -- export and report ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any], str]:
    """A tiny student exported in fp32 twice: by ``sea-tf export`` (``cli/``) and by ``export.export_model(cfg)``
    (``lib/``). Returns the two folders, the library's summary and what the CLI printed."""
    from export import export_model
    from sea_tf.models import build_student

    root = tmp_path_factory.mktemp("exports")
    model = build_student(filters=[4, 8, 8, 16], n_mels=16, seed=3).save(root / "tiny.keras")
    audio = root / "wav"
    audio.mkdir()
    for k in range(2):
        sf.write(audio / f"c{k}.wav", synth_audio(2, seed=k + 5).reshape(-1), 16000)
    printed = io.StringIO()     # (capsys is per test)
    with redirect_stdout(printed):
        code = cli_main.main(["export", str(model), "--modes", "fp32", "--held-out", str(audio), "--out",
                              str(root / "cli"), "--latency-windows", "2", "--no-progress"])
    assert code == 0
    summary = export_model(config.load("export", model=model, modes=["fp32"], held_out={"sources": [audio]},
                                       out=root / "lib", latency={"runs": 2}, progress=False))
    return root / "cli", root / "lib", summary, printed.getvalue()


@pytest.mark.filterwarnings("ignore:.*its card says its weights are untrained")
def test_export_model_cfg_writes_what_export_writes(exports: tuple[Path, Path, dict[str, Any], str]) -> None:
    from export import read_sidecar
    from export.report import markdown_table

    cli_out, lib_out, summary, printed = exports
    (row,) = summary["artifacts"]
    assert row["mode"] == "fp32" and Path(row["path"]) == lib_out / "tiny.fp32.tflite"
    lib_side, cli_side = read_sidecar(lib_out / "tiny.fp32.tflite"), read_sidecar(cli_out / "tiny.fp32.tflite")
    assert lib_side["sha256"] == cli_side["sha256"]                  # the same file, to the byte
    _same_except_dir(_resolved(lib_out, "export"), _resolved(cli_out, "export"), lib_out, cli_out)
    cli_report = json.loads(Path(summary["report"]["json"].replace(str(lib_out), str(cli_out))).read_text())
    fixed = ("cosine_mean", "cosine_min", "max_abs_error", "size_bytes", "sha256", "mode", "frontend_in_model")
    assert [{k: a[k] for k in fixed if k in a} for a in cli_report["artifacts"]] == \
        [{k: a[k] for k in fixed if k in a} for a in summary["artifacts"]]
    assert printed.startswith("calibration: 0 windows; held-out: ")                    # export_model(cfg, log=print)
    assert f"\n{markdown_table(cli_report['artifacts'])}\n" in printed
    assert printed.endswith(f"report: {cli_out / 'tiny.report.md'}\n")


def test_export_model_cfg_without_model_is_the_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from export import export_model

    with pytest.raises(ConfigError, match="no model given") as caught:
        export_model(config.load("export", out=tmp_path / "o"))
    assert str(caught.value) == _cli_error(capsys, "export", "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("ignore:.*its card says its weights are untrained")
def test_report_build_cfg_reports_what_report_reports(exports: tuple[Path, Path, dict[str, Any], str],
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.report import build

    cli_out, lib_out, _, _ = exports
    printed = _cli(capsys, "report", cli_out, "--out", tmp_path / "cli", "--latency-stat", "mean")
    result = build(config.load("report", out=tmp_path / "lib", latency_stat="mean"), [cli_out])
    assert result["markdown"] == tmp_path / "lib" / "report.md" and len(result["rows"]) == 1
    assert (tmp_path / "lib" / "report.md").read_text() == (tmp_path / "cli" / "report.md").read_text()
    assert json.loads((tmp_path / "lib" / "rows.json").read_text()) == \
        json.loads((tmp_path / "cli" / "rows.json").read_text())
    _same_except_dir(_resolved(tmp_path / "lib", "report"), _resolved(tmp_path / "cli", "report"),
                     tmp_path / "lib", tmp_path / "cli")
    assert printed.startswith(f"report: {tmp_path / 'cli' / 'report.md'} (1 rows); plots: ")


# -- data ----------------------------------------------------------------------------------------

def test_data_check_dataset_cfg_finds_what_data_check_finds(tones: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf.data import check_dataset
    from sea_tf.errors import DataError

    printed = _cli(capsys, "data", "check", tones, "--report", tmp_path / "cli" / "check.json")
    lines: list[str] = []
    findings = check_dataset(config.load("data/check", report=tmp_path / "lib" / "check.json"), tones,
                             log=lines.append, progress=False)
    assert printed == "".join(f"{line}\n" for line in lines)
    assert lines[-1] == "all 30 audio files readable" and findings["problems"] == []
    assert json.loads((tmp_path / "lib" / "check.json").read_text()) == \
        json.loads((tmp_path / "cli" / "check.json").read_text()) == json.loads(json.dumps(findings, default=str))
    _same_except_dir(_resolved(tmp_path / "lib", "data-check"), _resolved(tmp_path / "cli", "data-check"),
                     tmp_path / "lib", tmp_path / "cli")
    with pytest.raises(DataError, match="not an UrbanSound8K root") as caught:
        check_dataset(config.load("data/check"), tmp_path, log=lines.append, progress=False)
    assert str(caught.value) == _cli_error(capsys, "data", "check", tmp_path)


# -- device (host side) --------------------------------------------------------------------------

@pytest.mark.parametrize("schema, argv, settings, message", [
    ("device/run", ["device", "run"], {}, "no --host given"),
    ("device/run", ["device", "run", "--host", "pi@192.0.2.1", "--host", "pi@192.0.2.1:22"],
     {"hosts": ["pi@192.0.2.1", "pi@192.0.2.1:22"]}, "pi@192.0.2.1 is named more than once"),
    ("device/listen", ["device", "listen"], {}, "no --host given"),
])
def test_device_cfg_refusals_are_the_cli_errors(schema: str, argv: list[str], settings: dict[str, Any], message: str,
                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sea_tf import remote
    from sea_tf.errors import RemoteError

    ssh_config = tmp_path / "ssh_config"     # empty: no ~/.ssh/config of this machine in the way
    ssh_config.write_text("")
    out = tmp_path / ("results" if schema == "device/run" else "live.jsonl")
    cfg = config.load(schema, ssh_config=ssh_config, out=out, **settings)
    with pytest.raises(RemoteError, match=message) as caught:
        remote.run_boards(cfg) if schema == "device/run" else remote.listen_boards(cfg)
    assert str(caught.value) == _cli_error(capsys, *argv, "--ssh-config", ssh_config,
                                           "--out-file" if schema == "device/listen" else "--out", out)
    assert not out.exists()


@pytest.mark.usefixtures("no_agent")
def test_run_boards_cfg_runs_what_device_run_runs(sshd: dict[str, Any], device_export_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import remote_support
    from sea_tf import remote
    from sea_tf.errors import RemoteError

    good = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    dead = f"{sshd['user']}@127.0.0.1:{remote_support.free_port()}"
    model = Path(device_export_dir) / "tiny-emb.int8.tflite"
    code = cli_main.main(["device", "run", "--host", good, "--host", dead, "--key", str(sshd["key"]),
                          "--known-hosts", str(sshd["known_hosts"]), "--artifacts", str(model),
                          "--remote-dir", str(tmp_path / "cli" / "board"), "--remote-python", sys.executable,
                          "--out", str(tmp_path / "cli" / "results"), "--runs", "3", "--warmup", "0"])
    printed = capsys.readouterr()
    assert code == 2, printed.err
    results = remote.run_boards(config.load(
        "device/run", hosts=[good, dead], key=sshd["key"], known_hosts=sshd["known_hosts"], artifacts=[model],
        remote_dir=tmp_path / "lib" / "board", remote_python=sys.executable, out=tmp_path / "lib" / "results",
        bench={"runs": 3, "warmup": 0}))
    (good_label, ok), (dead_label, failed) = results.items()           # in --host order
    assert isinstance(ok, remote.HostResult) and not ok.partial and isinstance(failed, RemoteError)
    assert f"sea-tf device run: error: {failed}\n" in printed.err
    (lib_json,) = ok.results
    (cli_json,) = (tmp_path / "cli" / "results").glob("*/*/tiny-emb.int8.json")
    assert lib_json.name == cli_json.name and lib_json.parent.parent.name == cli_json.parent.parent.name
    assert f"{good_label}: {cli_json}\n" in printed.out
    lib_bench, cli_bench = json.loads(lib_json.read_text()), json.loads(cli_json.read_text())
    assert lib_bench["status"] == cli_bench["status"] == "complete"
    assert lib_bench["model"]["sha256"] == cli_bench["model"]["sha256"]
    _same_except_dir(_resolved(tmp_path / "lib" / "results", "device_run"),
                     _resolved(tmp_path / "cli" / "results", "device_run"), tmp_path / "lib", tmp_path / "cli")


class _Recorder:
    """A :class:`sea_tf.remote.ListenDisplay` that keeps what it is shown."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, Path]] = []
        self.lines: list[dict[str, Any]] = []
        self.ended = 0
        self.errors: list[str] = []

    def start(self, host: Any, model: Path, classifier: Path | None, source: str, out: Path) -> None:
        self.started.append((host.label, model.name, out))

    def line(self, record: dict[str, Any]) -> None:
        self.lines.append(record)

    def end(self) -> None:
        self.ended += 1

    def error(self, text: str) -> None:
        self.errors.append(text)


@pytest.mark.usefixtures("no_agent")
def test_listen_boards_cfg_streams_what_device_listen_streams(sshd: dict[str, Any], listen_export_dir: Path,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from listen_support import varied_wav
    from sea_tf import remote

    wav = varied_wav(tmp_path / "clip.wav", sr=16000, seconds=3.0, seed=6)
    host = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    code = cli_main.main(["device", "listen", "--host", host, "--key", str(sshd["key"]),
                          "--known-hosts", str(sshd["known_hosts"]), "--artifacts", str(listen_export_dir),
                          "--model", "tiny-feat.fp32", "--remote-dir", str(tmp_path / "cli" / "board"),
                          "--remote-python", sys.executable, "--out-file", str(tmp_path / "cli" / "live.jsonl"),
                          "--source", str(wav), "--duration", "2.5", "--hop-size", "0.5"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    shown = _Recorder()
    outcome = remote.listen_boards(config.load(
        "device/listen", host=host, key=sshd["key"], known_hosts=sshd["known_hosts"], artifacts=[listen_export_dir],
        model="tiny-feat.fp32", remote_dir=tmp_path / "lib" / "board", remote_python=sys.executable,
        out=tmp_path / "lib" / "live.jsonl", source=wav, duration_s=2.5, hop_s=0.5), display=shown)
    assert outcome.ok and outcome.out == tmp_path / "lib" / "live.jsonl"
    lib_lines = [json.loads(line) for line in outcome.out.read_text().splitlines()]
    cli_lines = [json.loads(line) for line in (tmp_path / "cli" / "live.jsonl").read_text().splitlines()]
    assert shown.lines == lib_lines and outcome.summary == lib_lines[-1] and shown.ended == 1
    assert shown.started == [(outcome.host.label, "tiny-feat.fp32.tflite", outcome.out)]
    windows = [[(w["t"], w["top"]) for w in lines if "k" in w] for lines in (lib_lines, cli_lines)]
    assert windows[0] == windows[1] and len(windows[0]) == 4
    assert printed.out.startswith(f"{outcome.host.label}: 4 windows, 2.5 s of audio, stopped by duration reached; ")
    assert printed.err.splitlines()[0].endswith(f" on {wav} -> {tmp_path / 'cli' / 'live.jsonl'}")
    _same_except_dir(_resolved(tmp_path / "lib", "live"), _resolved(tmp_path / "cli", "live"),
                     tmp_path / "lib", tmp_path / "cli")
