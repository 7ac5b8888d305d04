"""A reducer is one unit (issue #21, Why 1 and 6): a fit killed over an existing reducer leaves it
whole; a reducer.joblib that is not the one its card records is never unpickled."""
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from sea_tf import reduce, sampling
from sea_tf.cli.main import main
from sea_tf.errors import DataError, OutputError
from sea_tf.shards import write_table
from stage_args_support import settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("reduce-atomic")
    rng = np.random.default_rng(0)
    emb = (rng.normal(size=(1200, 5)) @ rng.normal(size=(5, 24)) + 0.05 * rng.normal(size=(1200, 24))).astype(np.float32)
    write_table(root / "shards", {"embedding": emb, "audio": np.zeros((1200, 4), np.float32),
                                  "label": (np.arange(1200) % 3).astype(np.int32)}, {"name": "teacher"}, shard_rows=400)
    sampling.sample_shards(root / "shards", root / "sample", 300,
                           **settings("sampling", strategy="random", progress=False))
    return root


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _recorded(reducer_dir):
    return json.loads((reducer_dir / "card.json").read_text())["hashes"]["reducer_sha256"]


def test_a_fit_killed_over_an_existing_reducer_leaves_it_whole(data, tmp_path):
    red = tmp_path / "red"
    reduce.fit_sample(data / "shards", data / "sample", red,
                      **settings("reduce/fit", d=4, quality=None, progress=False))
    old_sha = _sha(red / "reducer.joblib")
    assert _recorded(red) == old_sha
    # A real second process refits over it (d=6, with the quality report: the model exists some
    # hundreds of ms before the card); SIGKILL it as soon as the new model is written anywhere.
    proc = subprocess.Popen([sys.executable, "-m", "sea_tf", "reduce", "fit", "--shards", str(data / "shards"),
                             "--sample", str(data / "sample"), "--d", "6", "--out", str(red), "--no-progress"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        staged = list(tmp_path.glob(".red.staging-*/reducer.joblib"))
        if staged or _sha(red / "reducer.joblib") != old_sha:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    # The old reducer is whole: its model is the one its card records, and it loads and applies.
    assert _sha(red / "reducer.joblib") == old_sha == _recorded(red)
    assert reduce.Reducer.load(red).d == 4
    assert reduce.apply_reducer(red, data / "shards", tmp_path / "targets",
                                **settings("reduce/apply", progress=False))["d"] == 4
    # The killed writer's stage is swept by the next fit, which replaces the reducer as a unit.
    card = reduce.fit_sample(data / "shards", data / "sample", red,
                             **settings("reduce/fit", d=6, quality={"n_heldout": 200, "k": 5}, progress=False))
    assert list(tmp_path.glob(".red.*")) == []
    assert _recorded(red) == _sha(red / "reducer.joblib") and reduce.Reducer.load(red).d == 6
    assert card["quality"]["png"] == str(red / "quality.png") and (red / "quality.png").is_file()
    assert json.loads((red / "quality.json").read_text()) == card["quality"]


class _Marker:
    """Unpickling this writes a file: what any pickle can do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('ran')",)


def test_a_tampered_or_swapped_reducer_is_refused_and_never_unpickled(data, tmp_path, capsys):
    red, other = tmp_path / "red", tmp_path / "other"
    reduce.fit_sample(data / "shards", data / "sample", red,
                      **settings("reduce/fit", d=4, quality=None, progress=False))
    reduce.fit_sample(data / "shards", data / "sample", other,
                      **settings("reduce/fit", d=6, quality=None, progress=False))
    marker = tmp_path / "code-ran.txt"
    joblib.dump(_Marker(marker), red / "reducer.joblib")
    with pytest.raises(DataError, match=r"reducer\.joblib: sha256 \w+\.\.\. differs from the \w+\.\.\. its card records"):
        reduce.Reducer.load(red)
    assert main(["reduce", "apply", "--reducer", str(red), "--shards", str(data / "shards"),
                 "--out", str(tmp_path / "t"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "it was not loaded" in err[0] and "trusted sources only" in err[0]
    assert not marker.exists() and not (tmp_path / "t" / "card.json").exists()
    # Another fit's model beside this card (what a killed fit used to leave): refused, never mixed.
    (red / "reducer.joblib").write_bytes((other / "reducer.joblib").read_bytes())
    with pytest.raises(DataError, match="differs from the"):
        reduce.apply_reducer(red, data / "shards", tmp_path / "t", **settings("reduce/apply", progress=False))
    (red / "card.json").unlink()
    with pytest.raises(DataError, match="no card with its sha256 beside it"):
        reduce.Reducer.load(red)


def test_a_fit_never_replaces_a_folder_that_is_not_a_reducer(data, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"results: holds notes\.txt, not only a reducer.*nothing was written"):
        reduce.fit_sample(data / "shards", data / "sample", out,
                          **settings("reduce/fit", d=4, quality=None, progress=False))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
