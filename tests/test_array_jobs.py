"""Split teacher-embed runs: which job a SLURM array task is, --status, and complete ShardSets.

The environment-variable cases follow what a real SLURM 22.05 sets (tests/test_slurm_cluster.py
checks them on the test cluster): a whole array 0-3 gives each task ID=K, COUNT=4, MIN=0, MAX=3;
``sbatch --array=2`` gives ID=2, COUNT=1, MIN=2, MAX=2.
"""
import json

import numpy as np
import pytest

from sea_tf.teacher.jobs import array_status, format_status, resolve_job
from sea_tf.cli import main as cli_main
from sea_tf.errors import ConfigError, DataError
from sea_tf.shards import ShardSet, write_table

CARD = {"name": "synthetic-teacher"}


def array_env(task, low, high, count=None):
    """The SLURM_ARRAY_* variables of task ``task`` in an array ``low..high`` (COUNT tasks)."""
    count = high - low + 1 if count is None else count
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
            "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high), "SLURM_ARRAY_JOB_ID": "41"}


def write_jobs(directory, jobs, rows_per_job=5, complete=True):
    """One synthetic job per ``"KofN"`` in ``jobs``; each job's rows have embedding[:, 0] = K*100 + row."""
    for job in jobs:
        k = int(job.split("of")[0])
        emb = np.zeros((rows_per_job, 4), np.float32)
        emb[:, 0] = k * 100 + np.arange(rows_per_job)
        path = write_table(directory, {"embedding": emb}, CARD, shard_rows=2, job=job)
        if not complete:
            manifest = json.loads(path.read_text())
            manifest["complete"] = False
            path.write_text(json.dumps(manifest))
    return directory


# --- which job a task is -------------------------------------------------------------------------

def test_a_whole_array_gives_k_and_n():
    assert [resolve_job(environ=array_env(k, 0, 3)) for k in range(4)] == [(0, 4), (1, 4), (2, 4), (3, 4)]


def test_a_lone_resubmitted_task_keeps_its_job_with_shard_count(tmp_path):
    # The old rule (K = ID - MIN, N = COUNT) made `sbatch --array=5` job 0 of 1: every file, again.
    assert resolve_job(shard_count=8, out_dir=tmp_path, environ=array_env(5, 5, 5)) == (5, 8)


def test_a_lone_resubmitted_task_takes_n_from_the_manifests(tmp_path):
    write_jobs(tmp_path, ["0of8", "1of8", "7of8"])
    assert resolve_job(out_dir=tmp_path, environ=array_env(5, 5, 5)) == (5, 8)


def test_a_lone_task_without_a_count_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="pass --shard-count N"):
        resolve_job(out_dir=tmp_path / "new", environ=array_env(5, 5, 5))
    # Index 0 alone cannot be told from a one-task array either: 0 of 1 would embed every file.
    with pytest.raises(ConfigError, match="pass --shard-count N"):
        resolve_job(out_dir=tmp_path / "new", environ=array_env(0, 0, 0))
    # An array not indexed 0..N-1 (offset or strided) states no N.
    with pytest.raises(ConfigError, match="pass --shard-count N"):
        resolve_job(environ=array_env(3, 1, 4))
    with pytest.raises(ConfigError, match="pass --shard-count N"):
        resolve_job(environ=array_env(4, 0, 4, count=3))  # --array=0,2,4


def test_indices_outside_0_to_n_minus_1_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"array index 4 is outside 0\.\.3.*sbatch --array=0-3"):
        resolve_job(shard_count=4, environ=array_env(4, 1, 4))
    write_jobs(tmp_path, ["0of2", "1of2"])
    with pytest.raises(ConfigError, match=r"array index 2 is outside 0\.\.1"):
        resolve_job(out_dir=tmp_path, environ=array_env(2, 2, 2))


def test_an_n_that_contradicts_the_output_directory_is_refused(tmp_path):
    write_jobs(tmp_path, ["0of4"])
    with pytest.raises(ConfigError, match=r"holds jobs of 4 .* job 1 of 3"):
        resolve_job(shard_count=3, out_dir=tmp_path, environ=array_env(1, 0, 2))
    with pytest.raises(ConfigError, match=r"holds jobs of 4 .* job 0 of 1"):
        resolve_job(out_dir=tmp_path)  # a plain run into a split run's directory
    with pytest.raises(ConfigError, match="holds jobs of 4"):
        resolve_job("1/2", out_dir=tmp_path)
    assert resolve_job("1/4", out_dir=tmp_path) == (1, 4)
    write_jobs(tmp_path, ["0of1"])
    with pytest.raises(DataError, match=r"different array sizes: N=1 \(manifest-0of1.json\), N=4"):
        resolve_job(shard_count=4, out_dir=tmp_path, environ=array_env(1, 0, 3))


def test_shard_flag_and_plain_runs():
    assert resolve_job("2/5") == (2, 5)
    assert resolve_job(environ={}) == (0, 1)
    assert resolve_job("2/5", environ=array_env(1, 0, 3)) == (2, 5)  # --shard wins over the array
    with pytest.raises(ConfigError, match="K/N"):
        resolve_job("3")
    with pytest.raises(ConfigError, match="out of range"):
        resolve_job("3/3")
    with pytest.raises(ConfigError, match="disagree"):
        resolve_job("1/4", shard_count=5)
    with pytest.raises(ConfigError, match="needs SLURM_ARRAY_TASK_ID"):
        resolve_job(shard_count=4, environ={})


# --- --status --------------------------------------------------------------------------------------

def test_status_lists_done_partial_and_missing(tmp_path, capsys):
    write_jobs(tmp_path, ["0of4", "3of4"])
    write_jobs(tmp_path, ["1of4"], rows_per_job=3, complete=False)
    table = array_status(tmp_path)
    assert [(j.k, j.state, j.n_rows, j.n_shards) for j in table] == \
        [(0, "done", 5, 3), (1, "partial", 3, 2), (2, "missing", 0, 0), (3, "done", 5, 3)]
    assert "to (re)run: --array=1,2" in format_status(tmp_path, table)
    assert cli_main.main(["teacher-embed", "--status", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "2of4  missing" in out and "1of4  partial" in out and "2 of 4 jobs done, 13 rows" in out
    write_jobs(tmp_path, ["1of4", "2of4"])
    assert cli_main.main(["teacher-embed", "--status", str(tmp_path)]) == 0
    assert "4 of 4 jobs done, 20 rows; all done" in capsys.readouterr().out


def test_status_needs_a_count_when_nothing_ran(tmp_path, capsys):
    assert cli_main.main(["teacher-embed", "--status", str(tmp_path)]) == 2
    assert "pass --shard-count N" in capsys.readouterr().err
    assert cli_main.main(["teacher-embed", "--status", str(tmp_path), "--shard-count", "2"]) == 1
    assert capsys.readouterr().out.count("missing") == 2


# --- ShardSet reads only complete sets of jobs -----------------------------------------------------

def test_two_array_sizes_in_one_directory_are_refused(tmp_path):
    # 0of1 + 0of2 embed the same files twice: the 15 rows for 10 inputs.
    write_jobs(tmp_path, ["0of1", "0of2"])
    with pytest.raises(DataError, match=r"different array sizes \(N=1: 0of1; N=2: 0of2\)"):
        ShardSet(tmp_path)
    with pytest.raises(DataError, match="different array sizes"):
        ShardSet(tmp_path, allow_partial=True)


def test_missing_jobs_are_named(tmp_path):
    write_jobs(tmp_path, ["1of3"])
    with pytest.raises(DataError, match=r"job\(s\) 0of3, 2of3 missing \(found 1 of 3\).*--array=0,2"):
        ShardSet(tmp_path)
    partial = ShardSet(tmp_path, allow_partial=True)
    assert partial.n_rows == 5 and [m["job"] for m in partial.manifests] == ["1of3"]


def test_each_directory_is_checked_on_its_own(tmp_path):
    write_jobs(tmp_path / "a", ["0of2", "1of2"])
    write_jobs(tmp_path / "b", ["0of1"])
    assert ShardSet([tmp_path / "a", tmp_path / "b"]).n_rows == 15
    write_jobs(tmp_path / "c", ["0of2"])
    with pytest.raises(DataError, match=r"c: job\(s\) 1of2 missing"):
        ShardSet([tmp_path / "a", tmp_path / "c"])


def test_allow_partial_and_allow_incomplete_are_separate(tmp_path):
    write_jobs(tmp_path, ["0of2"])
    write_jobs(tmp_path, ["1of2"], complete=False)
    with pytest.raises(DataError, match="job 1of2 has not finished"):
        ShardSet(tmp_path, allow_partial=True)
    assert ShardSet(tmp_path, allow_incomplete=True).n_rows == 10


# --- every stage that reads shards refuses a partial run unless --allow-partial ---------------------

def test_every_stage_refuses_a_partial_run_unless_allowed(tmp_path, capsys):
    from export.calibration import windows_from_shards
    from sea_tf.cli.common import resolved_config
    from sea_tf.cli.main import build_parser
    from sea_tf.distill.pairs import open_pairs
    from sea_tf.errors import ExportError, TrainError

    shards = tmp_path / "shards"
    rng = np.random.default_rng(3)
    for job in ("0of3", "2of3"):  # job 1 of 3 never ran
        write_table(shards, {"embedding": rng.normal(size=(24, 8)).astype(np.float32)}, CARD, shard_rows=8, job=job)
    s, r, t = (str(tmp_path / name) for name in ("sample", "reducer", "targets"))
    steps = [["sample", "--shards", str(shards), "--m", "8", "--strategy", "random", "--group-by", "all", "--out", s],
             ["reduce", "fit", "--shards", str(shards), "--sample", s, "--method", "pca", "--d", "2", "--out", r,
              "--set", "quality.enabled=false"],
             ["reduce", "apply", "--reducer", r, "--shards", str(shards), "--out", t],
             ["reduce", "compare", "--shards", str(shards), "--m", "8", "--d", "2", "--set", "strategies=[random]",
              "--set", "quality.n_heldout=8", "--out", str(tmp_path / "study")]]
    for argv in steps:
        assert cli_main.main(argv) == 2, argv
        assert "1of3 missing" in capsys.readouterr().err, argv
        assert cli_main.main(argv + ["--allow-partial"]) == 0, argv
        capsys.readouterr()
    assert np.load(tmp_path / "sample" / "sample.npz")["index"].max() < 48

    with pytest.raises(TrainError, match="1of3 missing"):
        open_pairs([shards], t, check_rows=2, seed=0, allow_partial=False)
    assert open_pairs([shards], t, check_rows=2, seed=0, allow_partial=True).shards.n_rows == 48
    with pytest.raises(ExportError, match="1of3 missing"):
        windows_from_shards([shards], 8000, 4, seed=0, allow_partial=False)
    assert windows_from_shards([shards], 8000, 4, allow_partial=True, seed=0)[0].shape == (4, 8000)
    parse = lambda *argv: resolved_config(build_parser().parse_args(list(argv)))  # noqa: E731
    assert parse("distill", "--allow-partial")["allow_partial"] is True
    assert parse("export", "edgel3/sea-64", "--allow-partial")["calibration"]["allow_partial"] is True
