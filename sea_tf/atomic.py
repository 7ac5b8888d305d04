"""Atomic writes: write to a temporary name in the same directory, then rename.

A reader (or a resumed run) therefore sees either the old file or the whole new one, never a
half-written file, even when the process is killed mid-write.

The rename alone survives a killed process, not a crashed machine: a journalling file system may
commit the rename before the file's data, and after a node crash the name points at a zero-length
file. So every write here is durable (POSIX): ``fsync`` the new file, rename it, then ``fsync`` the
directory so the rename itself is on disk. :func:`replace` does the same for files that other
libraries write (Keras models, TensorFlow checkpoints).
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from sea_tf.errors import OutputError

# Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Parameters
    ----------
    path : str or Path
        Final destination.
    suffix : str
        Suffix for the temporary name (some writers, e.g. ``np.savez``, insist on one).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror}; choose a writable output directory") from exc
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp
        replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_file(path):
    """Flush ``path``'s data and metadata to the disk (``fsync``); a directory flushes its entries.

    Parameters
    ----------
    path : str or Path
        A file written by this process (or a directory whose new names must survive a crash).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise OutputError(f"cannot open {path} to flush it to disk: {exc.strerror}; check the output directory") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"cannot flush {path} to disk: {exc.strerror}; check the disk and the output directory") from exc
    finally:
        os.close(fd)


def fsync_dir(directory):
    """``fsync`` a directory so that renames and new names in it survive a crash (no-op where unsupported)."""
    if os.name != "posix":  # Windows cannot open a directory; its renames are durable on return
        return
    fsync_file(directory)


def replace(src, dst):
    """Rename ``src`` onto ``dst`` durably: fsync ``src``, ``os.replace``, fsync ``dst``'s directory.

    Parameters
    ----------
    src : str or Path
        A complete file, written beside ``dst`` (same file system).
    dst : str or Path
        Final name; replaced atomically if it exists.
    """
    src, dst = Path(src), Path(dst)
    fsync_file(src)
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise OutputError(f"cannot rename {src} to {dst}: {exc.strerror}; check the output directory") from exc
    fsync_dir(dst.parent)


def write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text):
    """Write ``text`` (str, UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically (numpy scalars become numbers)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_npz(path, **arrays):
    """``np.savez`` to ``path`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
