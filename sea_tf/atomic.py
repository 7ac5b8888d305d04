"""Atomic writes: write to a temporary name in the same directory, then rename.

A reader (or a resumed run) therefore sees either the old file or the whole new one, never a
half-written file, even when the process is killed mid-write.

The rename alone survives a killed process, not a crashed machine: a journalling file system may
commit the rename before the file's data, and after a node crash the name points at a zero-length
file. So every write here is durable (POSIX): ``fsync`` the new file, rename it, then ``fsync`` the
directory so the rename itself is on disk. :func:`replace` does the same for files that other
libraries write (Keras models, TensorFlow checkpoints).

A write that fails (a full disk) raises one :class:`OutputError` naming the file and the free
space, and leaves no temporary file. Temporary names carry the writer's pid and host
(``.NAME.<pid>@<host>.<random>.tmp``), so :func:`sweep_stale` can remove those of writers that
died (``kill -9``, a node crash) without touching a live writer's.
"""
import contextlib
import errno
import json
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sea_tf.errors import OutputError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from typing_extensions import Buffer   # collections.abc.Buffer from Python 3.12 on

# Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
#: This host in temporary names (no dots: they separate the name's parts).
_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"
_STALE = re.compile(r"\..+\.(\d+)@([A-Za-z0-9_-]+)\.[^/]*\.tmp")


def free_space(directory: Path | str) -> str:
    """``"2.1 MiB free"`` on ``directory``'s file system (``"free space unknown"`` if it cannot be read)."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB free"


def write_error(path: Path | str, exc: BaseException) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path``: what failed and the free space."""
    path = Path(path)
    text = str(exc).strip()
    reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    advice = "free some space or choose another output directory" if full else "check the output directory"
    return OutputError(f"{path}: cannot write it ({reason}); {free_space(path.parent)} in {path.parent}; {advice}")


def reserve(fd: int, nbytes: int, path: Path | str) -> None:
    """Allocate ``nbytes`` of disk for the open file ``fd`` up front (``posix_fallocate``).

    A full disk then fails here, as one :class:`OutputError` for ``path``, before a library such
    as HDF5 meets it in the middle of its own writes (where it crashed). File systems without
    ``fallocate`` are left to fail at the write.
    """
    if nbytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, int(nbytes))
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return
        raise write_error(path, exc) from exc


class ReservedFile:
    """A binary file whose disk space is reserved up front, for writers that cannot survive a full disk.

    ``posix_fallocate`` sets the file's size to the reservation, so this object keeps the logical
    size (what was written) itself: ``seek(0, 2)`` and reads stop there, and :meth:`truncate`
    (which HDF5 calls at the end) cuts the file to it, giving the unused space back. The methods
    are those h5py's file-object driver calls (``readinto``, ``write``, ``seek``, ``tell``,
    ``truncate``, ``flush``); every ``OSError`` becomes one :class:`OutputError` for ``path``.
    """

    def __init__(self, tmp: Path | str, nbytes: int, path: Path | str) -> None:
        self.path = Path(path)
        self.fd = os.open(tmp, os.O_RDWR)
        self._closed = False
        self.pos = self.size = 0
        try:
            reserve(self.fd, nbytes, self.path)
        except BaseException:
            os.close(self.fd)
            raise

    def readinto(self, buffer: "Buffer") -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self.size - self.pos))
        data = os.pread(self.fd, n, self.pos) if n else b""
        view[:len(data)] = data
        view[len(data):] = bytes(len(view) - len(data))   # HDF5 reads past its end as zeros
        self.pos += len(view)
        return len(view)

    def read(self, n: int | None = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else n
        buffer = bytearray(n)
        self.readinto(buffer)
        return bytes(buffer)

    def write(self, data: "Buffer") -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.pwrite(self.fd, view[done:], self.pos + done)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self.pos += done
        self.size = max(self.size, self.pos)
        return done

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + int(offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else int(size)
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self.size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Cut the file to what was written (the reservation beyond it is given back) and close it."""
        if not self._closed:
            try:
                os.ftruncate(self.fd, self.size)
            finally:
                os.close(self.fd)
                self._closed = True

    def __enter__(self) -> "ReservedFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_stale(directory: Path | str) -> list[Path]:
    """Remove the temporary files in ``directory`` of writers on this host that are gone (pid dead).

    Call it from the process that owns the folder (holding its :mod:`sea_tf.runlock`). A live
    writer's files, another host's and names not made here are left alone.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _STALE.fullmatch(entry.name)
        if not match or match[2] != _HOST or not entry.is_file(follow_symlinks=False):
            continue
        if pid_alive(int(match[1])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: Path | str, *, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Parameters
    ----------
    path : str or Path
        Final destination.
    suffix : str
        Suffix for the temporary name (some writers, e.g. ``np.savez``, insist on one).
    durable : bool
        fsync the file before the rename and the folder after it (:func:`replace`). False: the
        rename only, for :class:`BatchedWrites`, which flushes many files together later.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_HOST}.", suffix=suffix + ".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror}; choose a writable output directory") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    try:
        yield tmp
        if durable:
            replace(tmp, path)
        else:
            _rename(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # a writer's own full-disk error (joblib, np.savez, json): the same one line as ours
        raise write_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_file(path: Path | str) -> None:
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


def fsync_dir(directory: Path | str) -> None:
    """``fsync`` a directory so that renames and new names in it survive a crash (no-op where unsupported)."""
    if os.name != "posix":  # Windows cannot open a directory; its renames are durable on return
        return
    fsync_file(directory)


def replace(src: Path | str, dst: Path | str) -> None:
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
    _rename(src, dst)
    fsync_dir(dst.parent)


def _rename(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise OutputError(f"cannot rename {src} to {dst}: {exc.strerror}; check the output directory") from exc


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` (bytes) to ``path`` atomically; a failed write (a full disk) is an :class:`OutputError`."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise write_error(path, exc) from exc


class BatchedWrites:
    """Atomic writes (temporary file, then rename) made durable together: one :meth:`flush` for all.

    For a stage that writes many files under ``root`` and then one card naming them (``reduce
    apply``'s targets). A durable write (:func:`replace`) waits for two fsyncs per file, each a
    journal commit and a disk cache flush (2-7 ms a file on this project's loaded VM disk). Here
    each file is renamed at once and its fsync runs on one of 8 background threads while the caller
    goes on; fsyncs waiting together are served by shared commits (~0.5 ms a file). :meth:`flush`
    waits for them and fsyncs the folders. Until it returns, a crashed machine may keep a rename
    without the file's data, so: write the card that names the files only after :meth:`flush`, and
    let a resumed run check each file's content (reduce apply records a sha256 of the data inside
    each target and compares it before reusing one). A killed process (not machine) loses nothing:
    each file is whole under its name or absent. Use it as a context manager (the threads end with it).

    Parameters
    ----------
    root : str or Path
        The folder every file is written under; :meth:`flush` fsyncs the folders from each file's up to it.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.files: list[Path] = []
        self._pool: "ThreadPoolExecutor | None" = None
        self._pending: "list[Future[None]]" = []

    def __enter__(self) -> "BatchedWrites":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_bytes(self, path: Path | str, data: "Buffer") -> None:
        """Write ``data`` to ``path`` (under ``root``) atomically, durably at :meth:`flush`; a full disk is an :class:`OutputError`."""
        path = Path(path)
        with atomic_path(path, durable=False) as tmp:
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
            except OSError as exc:
                raise write_error(path, exc) from exc
        self.add(path)

    def write_json(self, path: Path | str, obj: Any) -> None:
        """:meth:`write_bytes` of ``obj`` as :func:`write_json` writes it."""
        self.write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode("utf-8"))

    def add(self, path: Path | str) -> None:
        """Flush ``path`` too: a file under ``root`` (written here, or earlier by a killed run) not known to be durable."""
        self.files.append(Path(path))
        self._pending.append(self._threads().submit(fsync_file, path))

    def flush(self) -> None:
        """Wait for every file's fsync, then fsync every folder from theirs up to ``root``: now they are durable.

        A folder's fsync makes the renames done in it durable; every rename was done before it starts.
        """
        folders: set[Path] = {self.root}
        for path in self.files:
            folders.update(p for p in path.parents if p == self.root or self.root in p.parents)
        pending = self._pending + [self._threads().submit(fsync_dir, folder) for folder in folders]
        self._pending, self.files = [], []
        for done in pending:   # the first failure is raised here
            done.result()

    def close(self) -> None:
        """End the fsync threads (after the fsyncs under way); :meth:`flush` first for durability."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _threads(self) -> "ThreadPoolExecutor":
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor   # here: 11 ms to import, and few commands flush
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sea-tf-fsync")
        return self._pool


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (str, UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (numpy scalars become numbers)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend: figures are drawn for files only.

    Imported on first use (matplotlib is slow to import and most commands draw nothing); a figure
    made from it is written and closed by :func:`save_figure`.
    """
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig: Any, path: Path | str, *, dpi: float | None = None) -> Path:
    """Save a matplotlib figure as PNG to ``path`` atomically and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The finished figure; closed afterwards (also when saving fails), so that a long run drawing
        many figures does not keep them all in memory.
    path : str or Path
        Destination ``.png``.
    dpi : float, optional
        Resolution; None: matplotlib's ``savefig.dpi`` (the figure's own).

    Returns
    -------
    Path
        ``path``.
    """
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        # Only pyplot keeps figures alive; a bare Figure needs no closing (and pyplot no import).
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close(fig)
    return Path(path)


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    """``np.savez`` to ``path`` atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        try:
            with open(tmp, "wb") as fh:
                # mypy matches a **dict against savez's allow_pickle too; these keys are array names only.
                np.savez(fh, **arrays)  # type: ignore[arg-type]
        except OSError as exc:
            raise write_error(path, exc) from exc


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
