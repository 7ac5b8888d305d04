"""A file that failed on a transient fault is retried by the next run; a malformed one is kept as failed.

The faults are real: the input list names ``mnt/x.wav`` where ``mnt`` is a symbolic link to a
directory that does not exist in the first run (a share not mounted), so opening it fails with the
kernel's ENOENT; between the runs the directory appears. A malformed file (not audio) fails
permanently; replaced by good audio, it is embedded only when ``--retry-failed`` asks for it.
"""
import importlib

import numpy as np
import pytest
import soundfile as sf

from sea_tf.teacher import array_status, extract_files
from sea_tf.cli import main as cli_main
from sea_tf.shards import ShardSet
from stage_args_support import settings

# The module, whose globals extract_files() reads (the package's ``extract`` is the function).
extract_module = importlib.import_module("sea_tf.teacher.extract")


@pytest.fixture(scope="module")
def teacher():
    from sea_tf.models import load_model
    return load_model("sea-64", seed=3)


def _extract(inputs, out, teacher, **kw):
    return extract_files(inputs, out, teacher, **settings("teacher", shard_rows=4, batch_size=4, progress=False,
                                                          decode_workers=1, read_retries=0, **kw))


@pytest.fixture
def inputs(tmp_path):
    """``list.txt`` naming ``mnt/x.wav`` (``mnt`` → absent ``nfs``), ``bad.wav`` (not audio) and ``here.wav``."""
    rng = np.random.default_rng(0)
    staging = tmp_path / "staging"
    staging.mkdir()
    sf.write(staging / "x.wav", (0.1 * rng.standard_normal(16000 * 4)).astype(np.float32), 16000)
    sf.write(tmp_path / "here.wav", (0.1 * rng.standard_normal(8000 * 2)).astype(np.float32), 8000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    (tmp_path / "mnt").symlink_to(tmp_path / "nfs", target_is_directory=True)
    (tmp_path / "list.txt").write_text("mnt/x.wav\nbad.wav\nhere.wav\n")
    return tmp_path, staging


def _rows(directory):
    """Every row as (source, timestamp, embedding bytes, audio bytes), sorted: the table as a set."""
    table = ShardSet(directory)
    idx = np.arange(table.n_rows)
    cols = [table.read(k, idx) for k in ("source", "timestamp", "embedding", "audio")]
    return sorted((str(s), float(t), e.tobytes(), a.tobytes()) for s, t, e, a in zip(*cols))


def test_a_transient_failure_is_retried_by_the_next_run(inputs, teacher, capsys):
    root, staging = inputs
    out = root / "out"
    first = _extract(root / "list.txt", out, teacher)
    assert {f["source"]: f["kind"] for f in first["failed"]} == {"mnt/x.wav": "transient", "bad.wav": "permanent"}

    # The job finished with failed files: --status says partial (exit 1) and names them.
    assert [j.state for j in array_status(out)] == ["partial"]
    assert cli_main.main(["teacher-embed", "--status", str(out)]) == 1
    status = capsys.readouterr().out
    assert "0of1  partial" in status and "failed (transient): mnt/x.wav" in status
    assert "failed (permanent): bad.wav" in status

    (staging).rename(root / "nfs")   # the share comes up between the runs
    (root / "bad.wav").write_bytes((root / "here.wav").read_bytes())   # fixed, but nobody asked to retry it
    second = _extract(root / "list.txt", out, teacher)
    assert [f["source"] for f in second["failed"]] == ["bad.wav"] and not second.get("already_complete")
    assert second["windows_this_run"] > 0

    # A third run has nothing transient left: it keeps the permanent failure and says how to retry it.
    third = _extract(root / "list.txt", out, teacher)
    assert third["already_complete"] and "--retry-failed" in capsys.readouterr().out
    assert cli_main.main(["teacher-embed", "--status", str(out)]) == 1

    fourth = _extract(root / "list.txt", out, teacher, retry_failed=True)
    assert fourth["failed"] == []
    assert cli_main.main(["teacher-embed", "--status", str(out)]) == 0
    assert "all done" in capsys.readouterr().out

    # The table holds the rows of a run that never saw either fault, each once.
    reference = _extract(root / "list.txt", root / "reference", teacher)
    assert reference["failed"] == []
    assert _rows(out) == _rows(root / "reference")


def test_an_interrupted_retry_pass_resumes(inputs, teacher):
    """A retry pass killed after its first shard resumes where it stopped, rows neither lost nor doubled."""
    root, staging = inputs
    (root / "bad.wav").unlink()
    (root / "list.txt").write_text("mnt/x.wav\nhere.wav\n")
    out = root / "out"
    assert [f["source"] for f in _extract(root / "list.txt", out, teacher)["failed"]] == ["mnt/x.wav"]
    staging.rename(root / "nfs")

    class Stop(Exception):
        pass

    writes = []
    real = extract_module._write_shard

    def write_then_stop(*args, **kw):   # the process dies right after the retry pass's first shard
        real(*args, **kw)
        writes.append(args[0])
        raise Stop()

    extract_module._write_shard = write_then_stop
    try:
        with pytest.raises(Stop):
            _extract(root / "list.txt", out, teacher)
    finally:
        extract_module._write_shard = real
    assert len(writes) == 1 and [j.state for j in array_status(out)] == ["partial"]
    assert _extract(root / "list.txt", out, teacher)["failed"] == []
    reference = _extract(root / "list.txt", root / "reference", teacher)
    assert _rows(out) == _rows(root / "reference")
