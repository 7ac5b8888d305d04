"""Each stage's library entry point, ``<stage>(cfg)`` with ``cfg = sea_tf.config.load(...)``, does what
its CLI command does: the same outputs, the same resolved config beside them, the same refusals.

The CLI handler is only ``cfg → entry(cfg) → print``; these tests hold the two spellings together
(issue #22 item 2) on tiny generated data, the CLI run in-process.
"""
from __future__ import annotations

import json
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
