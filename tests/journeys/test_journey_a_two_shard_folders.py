"""Journey (a) of issue #20: two teacher-shard folders through sample → reduce fit/apply → distill.

A user embeds two folders of recordings separately (``sea-tf teacher-embed`` once per folder) and
passes both folders to every later stage the way ``sample``'s help teaches, ``--shards A
--shards B``. Before issue #20, ``distill`` declared ``--shards`` with ``nargs="+"``: argparse kept
the last occurrence only and the student trained on folder B alone, silently (561 + 528 real rows
gave a split of 528). Here the distillation split must hold every row and every source file of
both folders, as the sample, the reducer and the targets before it do.

Small generated data (distill_fixtures: learnable synthetic teacher), the real CLI in-process,
packaged defaults except sizes.
"""
import json

import numpy as np

from distill_fixtures import TEACHER_CARD, TINY_STUDENT, synth_audio, teacher_embedding
from sea_tf.cli import main as cli_main
from sea_tf.shards import ShardSet, write_table

WINDOWS = 8                      # windows per source file
FOLDERS = {"A": 12, "B": 10}     # source files per folder: different counts, so a lost folder shows
D = 8


def _folder(root, name, n_sources, seed):
    """A teacher-shard folder as ``sea-tf teacher-embed`` writes it (same teacher card for both)."""
    n = n_sources * WINDOWS
    audio = synth_audio(n, seed=seed)
    sources = np.array([f"{name.lower()}-{i // WINDOWS:03d}.wav" for i in range(n)], dtype=object)
    write_table(root / name, {"embedding": teacher_embedding(audio), "audio": audio, "source": sources},
                TEACHER_CARD, shard_rows=32)
    return root / name, set(sources)


def _cli(capsys, *argv):
    code = cli_main.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, f"sea-tf {' '.join(map(str, argv))} exited {code}: {out.err.strip()}"
    return out


def test_two_shard_folders_reach_the_distillation_split(tmp_path, capsys):
    folders, sources = {}, {}
    for seed, (name, n_sources) in enumerate(FOLDERS.items()):
        folders[name], sources[name] = _folder(tmp_path, name, n_sources, seed)
    n_rows = sum(FOLDERS.values()) * WINDOWS
    both = ["--shards", folders["A"], "--shards", folders["B"]]

    _cli(capsys, "sample", *both, "--m", 48, "--out", tmp_path / "sample", "--no-progress")
    sample_card = json.loads((tmp_path / "sample" / "card.json").read_text())
    assert sample_card["teacher_shards"]["n_rows"] == n_rows

    _cli(capsys, "reduce", "fit", *both, "--sample", tmp_path / "sample", "--d", D, "--out", tmp_path / "reducer",
         "--set", "quality.n_heldout=40", "--no-progress")
    _cli(capsys, "reduce", "apply", "--reducer", tmp_path / "reducer", *both, "--out", tmp_path / "targets",
         "--no-progress")
    targets = ShardSet([folders["A"], folders["B"]], targets=tmp_path / "targets")
    assert targets.n_rows == n_rows

    run = tmp_path / "run"
    tiny = [f"student.overrides.filters={TINY_STUDENT['filters']}", "student.overrides.embedding_bn_relu=false",
            f"student.overrides.embedding_size={D}", "data.valid_fraction=0.25", "data.shuffle_buffer=64",
            "data.block_rows=16", "evaluate.downstream=false"]
    _cli(capsys, "distill", *both, "--targets", tmp_path / "targets", "--out", run, "--epochs", 1,
         "--steps-per-epoch", 2, "--batch-size", 16, "--no-progress", *[a for item in tiny for a in ("--set", item)])

    split = json.loads((run / "split.json").read_text())
    # Every row of both folders is on one side of the split, and both folders feed both sides.
    assert split["n_train_rows"] + split["n_valid_rows"] == n_rows
    seen = set(split["train_sources"]) | set(split["valid_sources"])
    assert seen == sources["A"] | sources["B"]
    for name in FOLDERS:
        assert set(split["train_sources"]) & sources[name], f"no training rows from folder {name}"
    resolved = (run / "distill.config.yaml").read_text()
    assert str(folders["A"]) in resolved and str(folders["B"]) in resolved
    card = json.loads((run / "student.card.json").read_text())
    assert card["reducer"]["d"] == D
