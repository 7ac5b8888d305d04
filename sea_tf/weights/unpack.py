"""A cap on the unpacked size of weight files, so that a hostile or broken ``.gz`` cannot fill the disk.

The published files are tens of MB; gzip can expand ~1000x, so a small download could otherwise
unpack to many GB inside the cache. Before unpacking, the archive is decompressed into a counter
(nothing written) that stops past the cap; while unpacking, the bytes written are counted again, in
case the file changed between the two passes.
"""
import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

from sea_tf.errors import WeightsError

#: Default for ``max_unpacked_mb`` (configs/models/defaults.yaml repeats it for the CLI).
DEFAULT_MAX_UNPACKED_MB = 512
_CHUNK = 1 << 20


class _ByteReader(Protocol):
    """An open binary stream: a file, or a gzip stream that unpacks as it is read."""

    def read(self, size: int = -1, /) -> bytes: ...


def unpacked_size(path: Path | str, limit: int) -> int | None:
    """Bytes ``path`` unpacks to, counted without writing anything, stopping once past ``limit``.

    A gzip file (recognised by its magic bytes, not its name: a download is a ``.part`` file) is
    decompressed into a counter; any other file counts its own size. The gzip trailer (ISIZE) is
    not trusted: a cut-off download's last four bytes are compressed data, not a trailer.

    Parameters
    ----------
    path : str or Path
    limit : int
        Bytes; counting stops at the first chunk past it.

    Returns
    -------
    int or None
        The count (``> limit`` when it stopped early), or None when the gzip stream is broken or cut
        off (the unpacker then reports it with its own message).
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
        if magic != b"\x1f\x8b":
            return os.fstat(fh.fileno()).st_size
    size = 0
    try:
        with gzip.open(path, "rb") as src:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    return size
    except (OSError, EOFError, zlib.error):
        return None
    return size


def _limit(max_unpacked_mb: float) -> int:
    return int(float(max_unpacked_mb) * 2**20)


def check_declared_size(path: Path | str, max_unpacked_mb: float, shown: str) -> None:
    """Raise :class:`WeightsError` before unpacking when ``path`` would unpack to more than the cap.

    Parameters
    ----------
    path : str or Path
        A ``.gz`` archive or a plain ``.h5``.
    max_unpacked_mb : float
        Cap in MiB (2**20 bytes).
    shown : str
        How to name the file in the message (e.g. its download address).
    """
    size = unpacked_size(path, _limit(max_unpacked_mb))
    if size is not None and size > _limit(max_unpacked_mb):
        raise WeightsError(f"{shown}: unpacks to more than max_unpacked_mb = {max_unpacked_mb} MiB; nothing was "
                           "unpacked. Published weight files are tens of MB: check the file, or raise the cap "
                           "with --set max_unpacked_mb=N")


def copy_capped(src: _ByteReader, dst: BinaryIO, max_unpacked_mb: float, shown: str) -> tuple[str, int]:
    """Copy the open binary stream ``src`` to ``dst`` while hashing; stop past the cap.

    Returns
    -------
    (str, int)
        sha256 hex digest and the number of bytes copied.
    """
    limit = _limit(max_unpacked_mb)
    digest, size = hashlib.sha256(), 0
    while chunk := src.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise WeightsError(f"{shown}: unpacks to more than max_unpacked_mb = {max_unpacked_mb} MiB (its gzip "
                               "first pass counted less); stopped and deleted the partial file. Check the file, or "
                               "raise the cap with --set max_unpacked_mb=N")
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest(), size
