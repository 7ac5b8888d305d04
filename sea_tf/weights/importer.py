"""Put a weight file obtained elsewhere into the cache, after checking it is what its name says.

For machines without network (a board, a cluster node): copy ``<file>.h5.gz`` or the unpacked
``.h5`` from a networked machine, or point at an installed openl3/edgel3 package, and import it.
The file is checked against the architecture its catalogue name implies and against the known
(or previously recorded) sha256, then copied under a temporary name and renamed into place.
"""
import dataclasses
import gzip
import importlib.util
import re
import zlib
from pathlib import Path

from sea_tf import atomic
from sea_tf.cards import sha256_file
from sea_tf.errors import SeaTFError, WeightsError
from sea_tf.weights import cache, catalogue
from sea_tf.weights.layout import check_entry_layout, openl3_version
from sea_tf.weights.unpack import DEFAULT_MAX_UNPACKED_MB, check_declared_size, copy_capped

# openl3 installs its files without the generation suffix: openl3/openl3_audio_mel256_env.h5
_OPENL3_INSTALLED = re.compile(r"^openl3_audio_(linear|mel128|mel256)_(music|env)\.h5(\.gz)?$")
PACKAGES = ("openl3", "edgel3")


@dataclasses.dataclass
class ImportResult:
    """What :func:`import_file` did.

    Attributes
    ----------
    name : str
    path : Path
        The cached file.
    sha256 : str
    size : int
    status : str
        ``"imported"`` or ``"cached"`` (an identical file was already there).
    source : Path
        The file that was imported.
    """
    name: str
    path: Path
    sha256: str
    size: int
    status: str
    source: Path


def guess_name(path: Path | str) -> str | None:
    """The catalogue name a file's name (and, for unversioned openl3 files, its layers) implies.

    Parameters
    ----------
    path : str or Path
        ``openl3_audio_mel256_env-v0_4_0.h5[.gz]``, an installed ``openl3_audio_mel256_env.h5``,
        ``edgel3_sea_ust_audio_emb_64.h5``, ``edgel3_kd_audio_sparsity_95.45.h5``, ...

    Returns
    -------
    str or None
    """
    path = Path(path)
    entry = catalogue.by_filename(path.name)
    if entry is not None:
        return entry.name
    match = _OPENL3_INSTALLED.match(path.name)
    if match and not match.group(3):
        version = openl3_version(path)
        suffix = "" if version == "v0_4_0" else f"@{version}"
        return f"openl3/{match.group(1)}-{match.group(2)}{suffix}"
    return None


def import_file(path: Path | str, *, name: str | None = None, home: Path | str | None = None, force: bool = False,
                max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB) -> ImportResult:
    """Copy the weight file ``path`` into the cache as ``name``.

    Parameters
    ----------
    path : str or Path
        An ``.h5`` file, or the published ``.h5.gz``.
    name : str, optional
        Catalogue name; by default guessed from the file name (see :func:`guess_name`).
    home : str or Path, optional
        sea-tf home (default ``$SEA_TF_HOME`` or the user cache directory).
    force : bool
        Replace a cached copy whose recorded hash differs. A hash the catalogue publishes is
        always enforced.
    max_unpacked_mb : float
        Largest (unpacked) file accepted, in MiB; a ``.gz`` whose trailer declares more is refused
        before it is unpacked.

    Returns
    -------
    ImportResult

    Raises
    ------
    WeightsError
        Missing or unreadable file, unknown name, too large, wrong layers, hash mismatch,
        unwritable cache.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: no such file; give the path of a published .h5 or .h5.gz weight file")
    if name is None:
        name = guess_name(path)
        if name is None:
            raise WeightsError(f"{path}: cannot tell which published model this is from its file name; pass "
                               "--name NAME (`sea-tf models list` shows the names)")
    entry = catalogue.lookup(name)
    wdir = cache.ensure_weights_dir(home)
    dest = wdir / entry.filename
    expected: str | None
    if entry.sha256:
        expected, source = entry.sha256, "catalogue"
    else:
        recorded = cache.read_registry(home).get(entry.name)
        expected, source = (recorded["sha256"], "recorded") if recorded and dest.is_file() and not force else (None, "")

    try:
        check_declared_size(path, max_unpacked_mb, str(path))
        with atomic.atomic_path(dest) as tmp:
            sha, size = _copy(path, tmp, max_unpacked_mb)
            if expected and sha != expected:
                hint = ("load it by path instead (`--model PATH`)" if source == "catalogue" else
                        "pass --force to replace the cached copy")
                raise WeightsError(f"{path}: sha256 {sha[:16]}... differs from the {source} hash "
                                   f"{expected[:16]}... of '{entry.name}'; {hint}")
            already = cache.is_cached(entry.name, home=home) and sha256_file(dest) == sha
            if not already:
                check_entry_layout(tmp, entry, shown=str(path))
            cache.make_readable(tmp)
        if not already:
            cache.record(entry.name, sha, size, "import", path.resolve(), home=home)
    except WeightsError:
        raise
    except SeaTFError as exc:
        raise WeightsError(f"cannot write {dest}: {exc}") from exc
    except OSError as exc:
        raise WeightsError(f"copying {path} into {dest} failed: {exc.strerror or exc}; free some space or set "
                           f"${cache.HOME_ENV} to another disk; nothing was left in the cache") from exc
    return ImportResult(entry.name, dest, sha, size, "cached" if already else "imported", path)


def import_from_package(package: str, *, home: Path | str | None = None, force: bool = False,
                        max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB) -> list[ImportResult]:
    """Import every weight file an installed openl3 or edgel3 package ships.

    The package is located, not imported (importing it would pull in its old Keras/kapre stack).

    Parameters
    ----------
    package : str
        ``"openl3"`` or ``"edgel3"``.

    Returns
    -------
    list of ImportResult
    """
    if package not in PACKAGES:
        raise WeightsError(f"--from-package {package!r}: expected one of {', '.join(PACKAGES)}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the {package} package is not installed in this Python; install it elsewhere and "
                           "import its .h5 files by path")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(p for p in folder.glob("*.h5") if guess_name(p) is not None)
    if not files:
        raise WeightsError(f"{folder}: the installed {package} holds no audio weight files (installed from an "
                           "sdist without network?); fetch them with `sea-tf models fetch` instead")
    return [import_file(p, home=home, force=force, max_unpacked_mb=max_unpacked_mb) for p in files]


def _copy(src: Path, dst: Path, max_unpacked_mb: float) -> tuple[str, int]:
    """Copy ``src`` (gunzipping a ``.gz``) to ``dst``; returns (sha256, size)."""
    opener = gzip.open if src.name.endswith(".gz") else open
    try:
        with opener(src, "rb") as fin, open(dst, "wb") as fout:
            sha, size = copy_capped(fin, fout, max_unpacked_mb, str(src))
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise WeightsError(f"{src}: not a complete gzip file ({exc}); copy it again") from exc
    if size == 0:
        raise WeightsError(f"{src}: the file is empty; copy it again")
    return sha, size
