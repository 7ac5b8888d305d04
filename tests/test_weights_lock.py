"""Parallel fetches and imports into one weights cache keep every registry entry and its hash pin.

Without the registry lock, two processes' read-modify-writes of ``registry.json`` interleave and one
loses the other's entry -- and with it the first-use sha256 of a file the catalogue has no hash for.
The first test races the registry update itself in real processes (it lost entries in every run
before the lock); the second runs whole ``import_file``/``fetch`` calls in parallel processes.
"""
import hashlib
import os
import subprocess
import sys
import time

from sea_tf.cards import sha256_file
from sea_tf.weights import cache
from sea_tf.weights.catalogue import CATALOGUE
from weights_support import FileServer, gzip_bytes, write_openl3

# Workers wait at a file barrier (ready-<pid>, then go) so that they all start at once.
RECORDER = r"""
import hashlib, os, sys, time
from pathlib import Path
from sea_tf.weights import cache
home, names = Path(sys.argv[1]), sys.argv[2:]
(home / f"ready-{os.getpid()}").touch()
while not (home / "go").exists():
    time.sleep(0.0005)
lost, done = 0, set()
for _ in range(20):  # re-recording a name is idempotent; after each, none recorded so far may be missing
    for name in names:
        cache.record(name, hashlib.sha256(name.encode()).hexdigest(), 1, "import", "test", home=home)
        done.add(name)
        lost += len(done - set(cache.read_registry(home)))
print(f"lost {lost}")
"""
WORKER = r"""
import os, sys, time
from pathlib import Path
from sea_tf.weights.fetch import fetch
from sea_tf.weights.importer import import_file
import sea_tf.models.h5_weights  # noqa: F401 - TensorFlow imported before the barrier
home, jobs = Path(sys.argv[1]), sys.argv[2:]
(home / f"ready-{os.getpid()}").touch()
while not (home / "go").exists():
    time.sleep(0.0005)
for job in jobs:
    how, name, what = job.split("|")
    if how == "import":
        import_file(what, name=name, home=home)
    else:
        fetch(name, home=home, base_url=what, timeout=(5.0, 5.0), retries=0, progress=False)
"""


def _run_together(script, home, arg_lists):
    """Start one process per argument list, release them together; returns (return codes, outputs)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home), *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for args in arg_lists]
    deadline = time.monotonic() + 300
    while len(list(home.glob("ready-*"))) < len(procs) and time.monotonic() < deadline \
            and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    (home / "go").touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    return [p.returncode for p in procs], "\n".join(outputs)


def test_parallel_registry_updates_keep_every_entry(tmp_path):
    names = list(CATALOGUE)
    codes, output = _run_together(RECORDER, tmp_path, [names[w::6] for w in range(6)])
    assert codes == [0] * 6, output
    assert output.split() == ["lost", "0"] * 6, output  # entries seen missing right after a write
    registry = cache.read_registry(tmp_path)
    assert sorted(set(names) - set(registry)) == []  # the names whose entries were lost
    assert all(registry[name]["sha256"] == hashlib.sha256(name.encode()).hexdigest() for name in names)


def test_parallel_fetch_and_import_keep_every_entry(tmp_path):
    """Two processes each import one openl3 file and fetch another from a local HTTP server; none of
    these names has a catalogue hash, so the registry holds the only record of their sha256."""
    server = FileServer()
    jobs, expected = [], {}
    try:
        for k, (input_repr, content) in enumerate([("mel256", "env"), ("mel128", "music")]):
            imported = write_openl3(tmp_path / f"v4-{k}.h5", input_repr, "v0_4_0", seed=k)
            name = f"openl3/{input_repr}-{content}"
            jobs.append([f"import|{name}|{imported}"])
            expected[name] = sha256_file(imported)
            served = write_openl3(tmp_path / f"v2-{k}.h5", input_repr, "v0_2_0", seed=100 + k)
            server.routes[f"openl3_audio_{input_repr}_{content}-v0_2_0.h5.gz"] = (gzip_bytes(served), "ok")
            jobs[-1].append(f"fetch|{name}@v0_2_0|{server.url}")
            expected[f"{name}@v0_2_0"] = sha256_file(served)
        home = tmp_path / "home"
        codes, output = _run_together(WORKER, home, jobs)
    finally:
        server.close()
    assert codes == [0, 0], output
    assert {name: e["sha256"] for name, e in cache.read_registry(home).items()} == expected
    for name in expected:  # every file is usable: present, registered, matching its pinned hash
        assert cache.resolve_name(name, home=home) == cache.cached_path(name, home=home)
