"""The local weights cache: where fetched/imported files live and the hashes they must keep.

Layout: ``$SEA_TF_HOME/weights/<published file name>.h5`` plus ``registry.json``, which records for
every cached name the sha256, size and origin of its file at the moment it entered the cache, and
``registry.lock``: every read-modify-write of the registry holds an exclusive ``flock`` on it, so
parallel fetches and imports (cluster jobs sharing one home) never lose each other's entries.
``$SEA_TF_HOME`` defaults to the user's cache directory (``platformdirs.user_cache_dir("sea-tf")``).

Nothing here touches the network: :func:`resolve_name` only looks in the cache and says how to
fill it when the file is absent.
"""
import contextlib
import datetime
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sea_tf import atomic
from sea_tf.cards import sha256_file
from sea_tf.errors import SeaTFError, WeightsError
from sea_tf.weights import catalogue

HOME_ENV = "SEA_TF_HOME"
REGISTRY_NAME = "registry.json"
LOCK_NAME = "registry.lock"
#: (path, size, mtime_ns) -> sha256, so repeated loads in one process hash once.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def home_dir(home: Path | str | None = None) -> Path:
    """The sea-tf home: ``home``, else ``$SEA_TF_HOME``, else the user's cache directory.

    Returns
    -------
    Path
    """
    if home:
        return Path(home).expanduser()
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("sea-tf"))


def weights_dir(home: Path | str | None = None) -> Path:
    """Directory holding the cached weight files and ``registry.json``."""
    return home_dir(home) / "weights"


def cached_path(name: str, *, home: Path | str | None = None) -> Path:
    """Where ``name``'s file lives in the cache (whether or not it is there yet)."""
    return weights_dir(home) / catalogue.lookup(name).filename


def read_registry(home: Path | str | None = None) -> dict[str, dict[str, Any]]:
    """The registry: ``{name: {"sha256", "size", "origin", "source", "recorded"}}``."""
    path = weights_dir(home) / REGISTRY_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: unreadable weights registry ({exc}); delete it and fetch or import "
                           "the models again") from exc
    return data.get("files", {})


@contextlib.contextmanager
def registry_lock(home: Path | str | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``weights/registry.lock`` for a registry read-modify-write.

    ``flock`` is released by the kernel when the holder dies, so a killed fetch never blocks the
    next one. (On NFS, Linux emulates ``flock`` with byte-range locks, which NFS servers honour.)
    """
    path = weights_dir(home) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")
    except OSError as exc:
        raise WeightsError(f"cannot open {path}: {exc.strerror or exc}; check the permissions of the cache") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(name: str, sha256: str, size: int, origin: str, source: Path | str, *,
           home: Path | str | None = None) -> None:
    """Register ``name``'s cached file with its hash (called once the file is in place)."""
    with registry_lock(home):
        files = read_registry(home)  # re-read under the lock: another process may have added an entry
        files[catalogue.lookup(name).name] = {
            "sha256": sha256, "size": int(size), "origin": origin, "source": str(source),
            "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        _write_registry(files, home)


def forget(name: str, *, home: Path | str | None = None) -> bool:
    """Delete ``name``'s cached file and its registry entry; returns True when something was removed."""
    entry = catalogue.lookup(name)
    with registry_lock(home):
        files = read_registry(home)
        removed = files.pop(entry.name, None) is not None
        path = weights_dir(home) / entry.filename
        if path.exists():
            path.unlink()
            removed = True
        if removed:
            _write_registry(files, home)
    return removed


def expected_sha256(name: str, *, home: Path | str | None = None) -> tuple[str | None, str]:
    """The hash ``name``'s file must have: the catalogue's, else the one recorded at first download.

    Returns
    -------
    (str or None, str)
        The hash (None when neither is known) and where it comes from: ``"catalogue"``,
        ``"recorded"`` or ``"none"``.
    """
    entry = catalogue.lookup(name)
    if entry.sha256:
        return entry.sha256, "catalogue"
    recorded = read_registry(home).get(entry.name)
    if recorded:
        return recorded["sha256"], "recorded"
    return None, "none"


def is_cached(name: str, *, home: Path | str | None = None) -> bool:
    """True when ``name`` has a registered file in the cache (cheap: no hashing, no network).

    Parameters
    ----------
    name : str
        Catalogue name, e.g. ``"openl3/mel256-env"``.
    """
    entry = catalogue.lookup(name)
    return (weights_dir(home) / entry.filename).is_file() and entry.name in read_registry(home)


def resolve_name(name: str, *, home: Path | str | None = None, verify: bool = True) -> Path:
    """Path of ``name``'s cached weight file; never downloads.

    Parameters
    ----------
    name : str
        Catalogue name, e.g. ``"edgel3/sea-64"`` or ``"openl3/mel256-env@v0_2_0"``.
    home : str or Path, optional
        sea-tf home (default ``$SEA_TF_HOME`` or the user cache directory).
    verify : bool
        Check the file's sha256 against the catalogue's or the recorded one (once per process).

    Returns
    -------
    Path

    Raises
    ------
    WeightsError
        Unknown name, file not cached (the message says how to fetch or import it), or a cached
        file whose hash changed.

    Examples
    --------
    >>> path = resolve_name("edgel3/sea-64")  # doctest: +SKIP
    """
    entry = catalogue.lookup(name)
    path = weights_dir(home) / entry.filename
    registered = entry.name in read_registry(home)
    if not (path.is_file() and registered):
        found = f"an unregistered file is at {path}; " if path.is_file() else ""
        raise WeightsError(
            f"published model '{entry.name}' is not in the cache {weights_dir(home)}; {found}fetch it with "
            f"`sea-tf models fetch {entry.name}` or import a copy with "
            f"`sea-tf models import PATH --name {entry.name}`")
    if verify:
        verify_file(entry.name, path, home=home)
    return path


def verify_file(name: str, path: Path | str, *, home: Path | str | None = None) -> str:
    """Check ``path`` against ``name``'s expected sha256; raises WeightsError on a mismatch."""
    expected, source = expected_sha256(name, home=home)
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key) or sha256_file(path)
    if expected and actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual[:16]}... does not match the {source} hash {expected[:16]}... of "
            f"'{name}'; the cached file changed or is damaged: run `sea-tf models remove {name}` and fetch "
            "or import it again")
    _VERIFIED[key] = actual
    return actual


def make_readable(path: Path | str) -> None:
    """Give a finished cache file the usual 0644 mode (temporary files are created 0600)."""
    os.chmod(path, 0o644)


def ensure_weights_dir(home: Path | str | None = None) -> Path:
    """Create the cache directory, or explain why it cannot be written; returns it."""
    path = weights_dir(home)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A fresh name, created exclusively and never through a symlink: in a shared cache another user
        # may plant a link at a guessable name, and opening it would truncate whatever it points to.
        probe = path / f".write-test-{os.getpid()}-{secrets.token_hex(8)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as exc:
        raise WeightsError(f"cannot write the weights cache {path}: {exc.strerror or exc}; set ${HOME_ENV} "
                           "(or --home) to a writable directory") from exc
    return path


def _write_registry(files: dict[str, dict[str, Any]], home: Path | str | None) -> None:
    path = weights_dir(home) / REGISTRY_NAME
    try:
        atomic.write_json(path, {"format": "sea-tf weights registry 1", "files": files})
    except (OSError, SeaTFError) as exc:
        raise WeightsError(f"cannot update {path}: {exc}; check free space and permissions of the cache") from exc
