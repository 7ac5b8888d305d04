"""Download a published weight file into the cache: HTTP (requests), gunzip, verify, rename.

Order of work, so that the cache never holds a file that looks complete but is not:

1. ``<file>.h5.gz`` is streamed to a hidden ``.part`` file in the cache directory (progress bar,
   connect/read timeouts; transient failures are retried, connection failures are not). The
   download itself is bounded: a server announcing more than ``max_download_mb`` is refused before
   a byte is written, a stream that goes past it is cut there, and the whole download, retries
   included, must end within ``timeout.total`` seconds (a server dripping a byte now and then
   never trips the read timeout);
2. its gzip trailer's size is checked against ``max_unpacked_mb`` (a gzip bomb is refused before it
   is unpacked), then it is gunzipped to a hidden temporary name while its sha256 is computed;
3. the hash is compared with the catalogue's, or with the one recorded at the first download;
4. the layers are checked against the architecture the name implies;
5. only then is the file renamed to its final name and its hash recorded.

Any failure deletes both temporaries and raises :class:`WeightsError` with one line naming the
address and the ``sea-tf models import`` alternative. Credentials in the address (``user:password@``,
query values such as a signed URL's signature) are used for the request but shown as ``***`` in
every message and never stored in ``registry.json`` (:func:`redact`).
"""
import dataclasses
import gzip
import os
import tempfile
import time
import urllib.parse
import warnings
import zlib
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import SeaTFError, SeaTFWarning, WeightsError
from sea_tf.weights import cache, catalogue
from sea_tf.weights.layout import check_entry_layout
from sea_tf.weights.unpack import DEFAULT_MAX_UNPACKED_MB, check_declared_size, copy_capped

#: ``requests`` timeout: seconds, or (connect, read) seconds.
Timeout = float | tuple[float, float]

DEFAULT_TIMEOUT: Timeout = (10.0, 60.0)  # seconds: connect, read (between two received chunks)
DEFAULT_RETRIES = 2
# configs/models/defaults.yaml repeats these for the CLI (fetch.max_download_mb, fetch.timeout.total).
DEFAULT_MAX_DOWNLOAD_MB = 256.0  # MiB; the published .h5.gz files are 5-20 MiB
DEFAULT_TOTAL_TIMEOUT = 1800.0   # seconds for one file's whole download, retries included
_CHUNK = 1 << 16


def redact(url: str) -> str:
    """``url`` without its secrets: ``user:password@`` becomes ``***@``, each query value ``***``.

    Parameters
    ----------
    url : str

    Returns
    -------
    str
        Safe to print and to store (the fragment is dropped).
    """
    parts = urllib.parse.urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{key}=***" for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _scrub(text: str, url: str) -> str:
    """``text`` (an exception's message) with every secret of ``url`` replaced by ``***``."""
    parts = urllib.parse.urlsplit(str(url))
    secrets = [parts.username, parts.password, parts.query]
    secrets += [value for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    for secret in sorted({s for s in secrets if s and len(s) > 1}, key=len, reverse=True):
        text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
    return text


@dataclasses.dataclass
class FetchResult:
    """What :func:`fetch` did for one name.

    Attributes
    ----------
    name : str
    path : Path
        The cached file.
    sha256 : str
    size : int
        Bytes of the unpacked file.
    status : str
        ``"downloaded"`` or ``"cached"`` (already there and verified).
    hash_source : str
        ``"catalogue"``, ``"recorded"`` (verified against an earlier download) or ``"new"``
        (first download; its hash is now recorded).
    """
    name: str
    path: Path
    sha256: str
    size: int
    status: str
    hash_source: str


def fetch(name: str, *, home: Path | str | None = None, base_url: str | None = None, force: bool = False,
          timeout: Timeout = DEFAULT_TIMEOUT, retries: int = DEFAULT_RETRIES, progress: bool = True,
          max_unpacked_mb: float = DEFAULT_MAX_UNPACKED_MB, max_download_mb: float = DEFAULT_MAX_DOWNLOAD_MB,
          total_timeout: float = DEFAULT_TOTAL_TIMEOUT) -> FetchResult:
    """Make ``name``'s published weight file available in the cache.

    Parameters
    ----------
    name : str
        Catalogue name, e.g. ``"edgel3/sea-64"``.
    home : str or Path, optional
        sea-tf home (default ``$SEA_TF_HOME`` or the user cache directory).
    base_url : str, optional
        Base address holding the ``.h5.gz`` files (default ``$SEA_TF_WEIGHTS_URL``, else the
        repository's ``models`` branch on GitHub).
    force : bool
        Download again even when cached (the new file must still match the known/recorded hash).
    timeout : float or (float, float)
        Connect and read timeouts in seconds.
    retries : int
        Extra attempts after a read timeout, a cut-off transfer or an HTTP 5xx/429.
    progress : bool
        Show a download progress bar on stderr.
    max_unpacked_mb : float
        Largest unpacked file accepted, in MiB (2**20 bytes).
    max_download_mb : float
        Largest download accepted, in MiB: refused on the announced length, else cut when the
        stream passes it.
    total_timeout : float
        Seconds the whole download may take, retries included.

    Returns
    -------
    FetchResult

    Raises
    ------
    WeightsError
        Unreachable server, HTTP error, truncated or corrupt ``.gz``, a download larger than
        ``max_download_mb`` or slower than ``total_timeout``, an archive larger than
        ``max_unpacked_mb`` unpacked, hash mismatch, wrong layers, unwritable cache or full disk.
        Nothing is left in the cache.

    Warns
    -----
    SeaTFWarning
        A name without a catalogue hash fetched for the first time over plain ``http://``: the
        hash pinned now came over an unauthenticated connection.
    """
    entry = catalogue.lookup(name)
    wdir = cache.ensure_weights_dir(home)
    dest = wdir / entry.filename
    if not force and cache.is_cached(entry.name, home=home):
        sha = cache.verify_file(entry.name, dest, home=home)
        source = cache.expected_sha256(entry.name, home=home)[1]
        return FetchResult(entry.name, dest, sha, dest.stat().st_size, "cached", source)

    expected, source = cache.expected_sha256(entry.name, home=home)
    url = entry.url(base_url)
    shown = redact(url)  # what messages and the registry say; the request uses url itself
    gz_path = None
    try:
        gz_path = _download(url, entry, wdir, timeout, retries, progress, max_download_mb, total_timeout)
        check_declared_size(gz_path, max_unpacked_mb, shown)
        with atomic.atomic_path(dest) as tmp:
            sha, size = _gunzip(gz_path, tmp, shown, entry, max_unpacked_mb)
            if expected and sha != expected:
                raise WeightsError(
                    f"{shown}: unpacked sha256 {sha[:16]}... does not match the {source} hash {expected[:16]}... "
                    f"of '{entry.name}'; the file was deleted. If the published file really changed, run "
                    f"`sea-tf models remove {entry.name}` first; otherwise check the address (--base-url)")
            check_entry_layout(tmp, entry, shown=shown)
            cache.make_readable(tmp)
        cache.record(entry.name, sha, size, "fetch", shown, home=home)
    except WeightsError:
        raise
    except (SeaTFError, OSError) as exc:
        # atomic_path's OutputError (a full disk met inside it carries the OSError as its cause), or
        # an OSError of the download's own writes: one line, with the cache's way out
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if not isinstance(cause, OSError):
            raise WeightsError(f"cannot write {dest}: {exc}") from exc
        raise WeightsError(f"writing {dest} failed: {cause.strerror or cause}; free some space or set "
                           f"${cache.HOME_ENV} to another disk; nothing was left in the cache") from exc
    finally:
        if gz_path is not None:
            gz_path.unlink(missing_ok=True)
    if not expected and url.lower().startswith("http://"):
        warnings.warn(f"{shown}: '{entry.name}' has no published hash and this first download came over plain "
                      f"http://, so the sha256 now pinned for it ({sha[:16]}...) is only as trustworthy as the "
                      "network; compare it with a trusted copy, or fetch over https://", SeaTFWarning, stacklevel=2)
    return FetchResult(entry.name, dest, sha, size, "downloaded", source if expected else "new")


def _download(url: str, entry: catalogue.WeightEntry, wdir: Path, timeout: Timeout, retries: int, progress: bool,
              max_download_mb: float, total_timeout: float) -> Path:
    """Stream ``url`` to a hidden ``.part`` file in ``wdir``, within the size cap and the deadline; returns its path."""
    import requests
    import urllib3

    shown = redact(url)
    deadline = time.monotonic() + float(total_timeout)
    fd, part_name = tempfile.mkstemp(prefix=f".{entry.filename}.gz.", suffix=".part", dir=wdir)
    os.close(fd)
    part = Path(part_name)
    try:
        for attempt in range(retries + 1):
            try:
                _stream(url, part, timeout, int(float(max_download_mb) * 2**20), deadline, entry, progress)
                return part
            except _Overdue:
                raise WeightsError(f"{shown}: the download did not finish within timeout.total = {total_timeout:g} s "
                                   f"(attempt {attempt + 1}); try again later, raise it with --set timeout.total=S, "
                                   f"or {_alternatives(entry)}") from None
            except requests.exceptions.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if (status in (408, 429) or (status or 0) >= 500) and attempt < retries:
                    _pause(attempt, deadline)
                    continue
                raise WeightsError(f"{shown}: HTTP {status}; {_alternatives(entry)}") from exc
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
                if isinstance(exc, requests.exceptions.RequestException) and _is_connect_failure(exc):
                    raise WeightsError(f"cannot reach {shown} ({_scrub(_reason(exc), url)}); "
                                       f"{_alternatives(entry)}") from exc
                if attempt < retries:
                    _pause(attempt, deadline)
                    continue
                raise WeightsError(f"{shown}: transfer failed {retries + 1} time(s) ({_scrub(_reason(exc), url)}); "
                                   f"try again later, or {_alternatives(entry)}") from exc
        # Each attempt returns, retries or raises: only a negative ``retries`` (no attempt) gets here.
        raise WeightsError(f"retries must be 0 or more, got {retries}")
    except BaseException:
        part.unlink(missing_ok=True)
        raise


class _Overdue(Exception):
    """The download's deadline passed."""


def _stream(url: str, part: Path, timeout: Timeout, limit: int, deadline: float, entry: catalogue.WeightEntry,
            progress: bool) -> None:
    """One attempt: GET ``url`` into ``part`` (overwritten), at most ``limit`` bytes, before ``deadline``."""
    import requests
    from tqdm import tqdm

    shown = redact(url)
    if time.monotonic() >= deadline:
        raise _Overdue
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        announced = response.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > limit:
            raise WeightsError(f"{shown}: the server announces {int(announced) / 2**20:.1f} MiB, more than "
                               f"max_download_mb = {limit / 2**20:g} MiB; nothing was downloaded. Check the address, "
                               f"or raise the cap with --set max_download_mb=N")
        bar = tqdm(total=int(announced) if announced and announced.isdigit() else None, desc=entry.name, unit="B",
                   unit_scale=True, unit_divisor=1024, leave=False, disable=not progress)
        with bar, open(part, "wb") as fh:
            done = 0
            while True:
                # read1: whatever one receive brings (≤ _CHUNK), so the deadline is checked even when a
                # server drips a byte at a time; Content-Encoding is decoded, and counted, as it comes.
                chunk = response.raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                done += len(chunk)
                if done > limit:
                    raise WeightsError(f"{shown}: the download passed max_download_mb = {limit / 2**20:g} MiB and was "
                                       "stopped and deleted. Check the address, or raise the cap with "
                                       "--set max_download_mb=N")
                if time.monotonic() >= deadline:
                    raise _Overdue
                fh.write(chunk)
                bar.update(len(chunk))


def _gunzip(gz_path: Path, out_path: Path, url: str, entry: catalogue.WeightEntry,
            max_unpacked_mb: float) -> tuple[str, int]:
    """Unpack ``gz_path`` into ``out_path``; returns (sha256, size). Damaged or oversized archives raise."""
    try:
        with gzip.open(gz_path, "rb") as src, open(out_path, "wb") as dst:
            sha, size = copy_capped(src, dst, max_unpacked_mb, url)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise WeightsError(f"{url}: the download is not a complete gzip file ({exc}); it was deleted: fetch again, "
                           f"or {_alternatives(entry)}") from exc
    if size == 0:
        raise WeightsError(f"{url}: the download is empty; it was deleted: check the address, or "
                           f"{_alternatives(entry)}")
    return sha, size


def _is_connect_failure(exc: BaseException) -> bool:
    """True for DNS, refused and connect-timeout failures: retrying would only delay the error."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError,
                        requests.exceptions.SSLError, requests.exceptions.InvalidURL,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a requests error, on one line."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    text = str(reason or exc)
    return " ".join(text.split())[:200]


def _alternatives(entry: catalogue.WeightEntry) -> str:
    return (f"copy {entry.filename}.gz (or the unpacked .h5) from a networked machine and run "
            f"`sea-tf models import PATH --name {entry.name}`")


def _pause(attempt: int, deadline: float) -> None:
    time.sleep(max(0.0, min(1.0 * (attempt + 1), 5.0, deadline - time.monotonic())))
