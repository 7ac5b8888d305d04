"""A full disk is one OutputError naming the file and the free space: no crash, no temporary file left.

The disk is real: a 3-MiB tmpfs mounted for the test (root only; skipped, with the reason,
elsewhere). Before, HDF5 met the full disk inside its own writes: a chunked write segfaulted
(exit 139) or ended with "internal error: RuntimeError: ... errno = 28", leaving a ``.tmp`` behind.
Temporary files of writers that died are swept when the folder is next taken.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sea_tf import atomic, runlock
from sea_tf.errors import OutputError
from sea_tf.shards import write_h5
from stage_args_support import settings


@pytest.fixture
def small_disk(tmp_path):
    """A 3-MiB tmpfs at ``tmp_path/disk``."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the full-disk test uses a real file system)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a 3-MiB tmpfs: {done.stderr.strip() or done.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _tmp_files(directory):
    return [p.name for p in directory.rglob("*") if p.name.endswith(".tmp")]


def test_a_shard_larger_than_the_free_space_is_an_output_error(small_disk):
    rows = {"audio": np.ones((120, 8000), np.float32), "embedding": np.ones((120, 64), np.float32),
            "source": ["a.wav"] * 120, "label": np.zeros(120, np.int32)}   # 3.9 MB of data
    # In a child process: the old code could kill its interpreter (a segfault).
    child = subprocess.run([sys.executable, "-c", (
        "import sys, numpy as np\n"
        "from sea_tf.shards import write_h5\n"
        "from sea_tf.errors import OutputError\n"
        "rows = {'audio': np.ones((120, 8000), np.float32), 'embedding': np.ones((120, 64), np.float32),"
        " 'source': ['a.wav'] * 120, 'label': np.zeros(120, np.int32)}\n"
        "try:\n"
        "    write_h5(sys.argv[1], rows)\n"
        "except OutputError as exc:\n"
        "    print('OutputError', exc)\n"
        "    sys.exit(3)\n"), str(small_disk / "shard.h5")], capture_output=True, text=True, timeout=120)
    assert child.returncode == 3, (child.returncode, child.stdout[-500:], child.stderr[-2000:])
    line = child.stdout.strip()
    assert "\n" not in line and str(small_disk / "shard.h5") in line and "MiB free" in line, line
    assert "No space left" in line
    assert not (small_disk / "shard.h5").exists() and _tmp_files(small_disk) == []
    # In this process too, and a small file still fits afterwards: nothing was left holding space.
    with pytest.raises(OutputError, match="MiB free"):
        write_h5(small_disk / "shard.h5", rows)
    write_h5(small_disk / "small.h5", {k: v[:4] for k, v in rows.items()})
    assert _tmp_files(small_disk) == [] and (small_disk / "small.h5").is_file()


def test_teacher_embed_on_a_full_disk_says_so(small_disk, tmp_path, capsys):
    from sea_tf.cli import main as cli_main

    sf.write(tmp_path / "long.wav", (0.1 * np.random.default_rng(0).standard_normal(8000 * 60)).astype(np.float32),
             8000)   # 119 windows x 32 KB of student audio: more than the disk holds
    (tmp_path / "files.txt").write_text("long.wav\n")
    out = small_disk / "shards"
    argv = ["teacher-embed", "--input", str(tmp_path / "files.txt"), "--out", str(out), "--teacher", "sea-64",
            "--shard-rows", "32", "--batch-size", "8", "--no-progress"]
    assert cli_main.main(argv) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning:" not in line]
    assert len(err) == 1 and "MiB free" in err[0] and "No space left" in err[0], err
    assert str(out / "shard-0of1-") in err[0] or str(out / "manifest-0of1.json") in err[0], err
    assert "internal error" not in err[0]
    assert _tmp_files(out) == []


def test_stale_temporary_files_of_dead_writers_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()   # its pid is gone
    folder = tmp_path / "run"
    folder.mkdir()
    stale = folder / f".shard-0of1-00003.h5.{dead.pid}@{atomic._HOST}.abcd1234.h5.tmp"
    live = folder / f".manifest-1of2.json.{os.getppid()}@{atomic._HOST}.efgh5678.tmp"
    other_host = folder / f".x.h5.{dead.pid}@elsewhere.ijkl9012.tmp"
    for path in (stale, live, other_host):
        path.write_bytes(b"half")
    with runlock.locked(folder, command="test"):
        pass
    assert not stale.exists() and live.exists() and other_host.exists()


def _reduce_inputs(root, n=3000, dim=128):
    """Teacher shards of ``n`` low-rank rows and a random sample of them (for reduce fit/apply)."""
    from sea_tf import sampling
    from sea_tf.shards import write_table

    rng = np.random.default_rng(0)
    emb = (rng.normal(size=(n, 8)) @ rng.normal(size=(8, dim))).astype(np.float32)
    write_table(root / "shards", {"embedding": emb, "audio": np.zeros((n, 4), np.float32),
                                  "label": np.zeros(n, np.int32)}, {"name": "t"}, shard_rows=1500)
    sampling.sample_shards(root / "shards", root / "sample", 400, **settings("sampling", strategy="random", progress=False))


def test_reduce_apply_on_a_full_disk_is_an_output_error(small_disk, tmp_path):
    """Targets (chunked HDF5, 2 x 1500 rows x 64 d = 384 KB each) into a tmpfs that 2.5 MiB of ballast
    leaves too small: one OutputError naming the target file, in a child process (the old writer
    could crash its interpreter), no temporary file left."""
    _reduce_inputs(tmp_path)
    from sea_tf import reduce
    reduce.fit_sample(tmp_path / "shards", tmp_path / "sample", tmp_path / "red",
                      **settings("reduce/fit", method="pca", d=64, quality={"n_heldout": 50, "k": 5}))
    (small_disk / "ballast").write_bytes(b"\0" * (5 * 2**19))
    child = subprocess.run([sys.executable, "-m", "sea_tf", "reduce", "apply", "--reducer", str(tmp_path / "red"),
                            "--shards", str(tmp_path / "shards"), "--out", str(small_disk / "targets"),
                            "--no-progress"], capture_output=True, text=True, timeout=300)
    errors = [line for line in child.stderr.splitlines() if "error" in line]
    assert child.returncode == 2, (child.returncode, child.stderr[-2000:])
    assert len(errors) == 1 and "cannot write it (No space left on device)" in errors[0] and "MiB free" in errors[0]
    assert ".h5" in errors[0] and "internal error" not in child.stderr
    assert _tmp_files(small_disk) == []


def test_reduce_fit_on_a_full_disk_is_an_output_error(small_disk, tmp_path):
    """The reducer's pickle meets the full disk (joblib's own write): one OutputError, no stage left."""
    _reduce_inputs(tmp_path)
    (small_disk / "ballast").write_bytes(b"\0" * (3 * 2**20 - 4096 * 4))
    child = subprocess.run([sys.executable, "-m", "sea_tf", "reduce", "fit", "--shards", str(tmp_path / "shards"),
                            "--sample", str(tmp_path / "sample"), "--out", str(small_disk / "red"),
                            "--method", "pca", "--d", "64", "--no-progress"],
                           capture_output=True, text=True, timeout=300)
    errors = [line for line in child.stderr.splitlines() if "error" in line]
    assert child.returncode == 2, (child.returncode, child.stderr[-2000:])
    assert len(errors) == 1 and "No space left on device" in errors[0] and "internal error" not in child.stderr
    assert _tmp_files(small_disk) == [] and not (small_disk / "red").exists()
