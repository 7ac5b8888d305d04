"""One process at a time in a run folder: an ``fcntl.flock`` held while the run lasts.

Two ``distill`` runs on one ``--out`` deleted each other's checkpoints; two ``teacher-embed``
processes of one job wrote the same shards. :func:`locked` takes an exclusive, non-blocking
``flock`` on a lock file in the folder for the run (for a command, the life of the process); the
kernel drops it when the process ends, also on a crash or ``kill -9``, so a lock file left behind
never blocks a later run. The file records the holder's pid, host and command, so the refused
process can say who holds it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import OutputError

#: Locks this process holds: resolved lock path → [open file, depth] (closing the file releases it).
_HELD: dict[str, list] = {}


@contextlib.contextmanager
def locked(folder: str | os.PathLike, *, command: str, name: str = ".lock") -> Iterator[Path]:
    """Hold the lock of ``folder`` (:func:`hold`) inside the ``with`` block; nested holds are counted.

    A folder this call created is removed again, lock file and all, when the block fails and left
    nothing else in it: a refused input writes nothing.
    """
    created = not Path(folder).exists()
    path = hold(folder, command=command, name=name)
    try:
        yield path
    except BaseException:
        release(path)
        if created:
            with contextlib.suppress(OSError):
                path.unlink()
                Path(folder).rmdir()   # only when empty
        raise
    release(path)


def release(path: str | os.PathLike) -> None:
    """Undo one :func:`hold` of the lock file ``path``; the last one unlocks it."""
    key = str(Path(path).resolve())
    entry = _HELD.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _HELD[key]
        entry[0].close()   # closing the only descriptor drops the flock


def hold(folder: str | os.PathLike, *, command: str, name: str = ".lock") -> Path:
    """Lock ``folder`` (created if missing) for this process, until it exits.

    Parameters
    ----------
    folder : path
        The run folder (``distill --out``, a ``classify`` ``--out``, a teacher-embed output).
    command : str
        What holds it, for the other process's error (e.g. ``"distill"``).
    name : str
        Lock file name inside ``folder``: one lock per job of a folder shared by several jobs.

    Returns
    -------
    Path
        The lock file. Taking a lock this process already holds counts one more hold
        (:func:`release` undoes one).

    Raises
    ------
    OutputError
        Another process holds the lock: one line naming its pid, host and command.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a directory; choose another output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc}); check the path and permissions") from exc
    path = folder / name
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return path
    handle = open(path, "a+")  # never truncates: the holder's record stays readable until we own it
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputError(f"{folder}: cannot lock {path.name} ({exc}); check the folder's permissions") from exc
        raise OutputError(f"{folder}: in use by {_holder(path)}; wait for it to finish, stop it, "
                          "or use another output folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                             "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    handle.flush()
    _HELD[key] = [handle, 1]
    # The folder is ours now: temporary files of writers that died here (kill -9, a full disk
    # before this fix) are removed; a live writer's (another job of a shared folder) are kept.
    atomic.sweep_stale(folder)
    return path


def _holder(path: Path) -> str:
    """``"distill (pid 123 on host)"`` from the lock file, or what is known of it."""
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        record = {}
    return (f"{record.get('command', 'another sea-tf process')} (pid {record.get('pid', '?')} "
            f"on {record.get('host', '?')}, since {record.get('since', '?')})")
