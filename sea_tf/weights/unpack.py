"""A cap on the unpacked size of weight files, so that a hostile or broken ``.gz`` cannot fill the disk.

The published files are tens of MB; gzip can expand ~1000x, so a small download could otherwise
unpack to many GB inside the cache. Two checks: before unpacking, the size the gzip trailer
declares (ISIZE: the unpacked size modulo 2**32) is compared with the cap; while unpacking, the
bytes written are counted, which also catches a multi-member file or a trailer that lies.
"""
import hashlib
import os
import struct

from sea_tf.errors import WeightsError

#: Default for ``max_unpacked_mb`` (configs/models/defaults.yaml repeats it for the CLI).
DEFAULT_MAX_UNPACKED_MB = 512
_CHUNK = 1 << 20


def declared_size(path):
    """Unpacked size a file declares: a gzip file's ISIZE trailer, else the file's own size, in bytes.

    Gzip is recognised by its magic bytes, not its name (a download is a ``.part`` file).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    int
    """
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        if magic != b"\x1f\x8b":
            return end
        if end < 18:  # shorter than a gzip header + trailer: let the unpacker report it
            return 0
        fh.seek(-4, os.SEEK_END)
        return struct.unpack("<I", fh.read(4))[0]


def _limit(max_unpacked_mb):
    return int(float(max_unpacked_mb) * 2**20)


def check_declared_size(path, max_unpacked_mb, shown):
    """Raise :class:`WeightsError` before unpacking when ``path`` declares more than the cap.

    Parameters
    ----------
    path : str or Path
        A ``.gz`` archive or a plain ``.h5``.
    max_unpacked_mb : float
        Cap in MiB (2**20 bytes).
    shown : str
        How to name the file in the message (e.g. its download address).
    """
    size = declared_size(path)
    if size > _limit(max_unpacked_mb):
        raise WeightsError(f"{shown}: would unpack to {size / 2**20:.1f} MiB, more than max_unpacked_mb = "
                           f"{max_unpacked_mb} MiB; nothing was unpacked. Published weight files are tens of MB: "
                           "check the file, or raise the cap with --set max_unpacked_mb=N")


def copy_capped(src, dst, max_unpacked_mb, shown):
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
                               "trailer declared less); stopped and deleted the partial file. Check the file, or "
                               "raise the cap with --set max_unpacked_mb=N")
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest(), size
