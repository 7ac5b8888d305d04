"""Which host keys a known_hosts file accepts for a board, and the fingerprint that names a key.

Which machine ``--host`` names (``Host``, ssh_config) is :mod:`sea_tf.ssh_hosts`; this module only
says whether the key that machine presents is one the user accepted. sea-tf never writes to
known_hosts: an unknown key is refused (:func:`sea_tf.remote.ssh.connect`).
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sea_tf.errors import RemoteError
from sea_tf.ssh_hosts import Host

if TYPE_CHECKING:  # paramiko is imported when a board is contacted, not with the package
    import paramiko


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclasses.dataclass
class KnownKeys:
    """What a known_hosts file says about one host (:func:`read_known_hosts`)."""
    accepted: list[paramiko.PKey]
    revoked: list[paramiko.PKey]
    cert_authority: bool = False


def read_known_hosts(path: Path, host: Host) -> KnownKeys:
    """The keys ``path`` (an OpenSSH known_hosts file) lists for ``host``, line by line.

    paramiko's own loader stops at the first line it cannot parse (a ``@revoked`` or
    ``@cert-authority`` marker, a damaged key), which would fail every board sharing the file; here
    only a broken line *for this host* is an error, and ``@revoked`` keys are never accepted.

    Parameters
    ----------
    path : Path
        known_hosts file; a missing file lists nothing.
    host : Host

    Returns
    -------
    KnownKeys
        ``accepted`` and ``revoked`` paramiko keys; ``cert_authority`` when a ``@cert-authority``
        line names the host (host certificates are not supported: paramiko cannot verify them).
    """
    import paramiko

    known = KnownKeys([], [])
    try:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    except OSError as exc:
        raise RemoteError(f"{path}: unreadable known_hosts file ({exc}); fix its permissions or pass --known-hosts") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if not fields or not _names_match(fields[0], host.known_hosts_name):
            continue  # another host's line, readable or not, is no concern of this host's
        if marker not in (None, "@revoked", "@cert-authority"):
            raise RemoteError(f"{host.label}: {path} line {number} has the unknown marker {marker}; fix or delete "
                              "that line")
        if marker == "@cert-authority":
            known.cert_authority = True
            continue
        try:
            key = paramiko.PKey.from_type_string(fields[1], base64.b64decode(fields[2], validate=True))
        except Exception as exc:  # noqa: BLE001 - paramiko raises IndexError, binascii.Error, UnknownKeyType, SSHException...
            raise RemoteError(
                f"{host.label}: {path} line {number} for this host is malformed ({type(exc).__name__}: {exc}); delete "
                f"it (ssh-keygen -R '{host.known_hosts_name}' -f {path}) and accept the board's key again") from None
        (known.revoked if marker == "@revoked" else known.accepted).append(key)
    return known


def _names_match(patterns: str, name: str) -> bool:
    """Whether a known_hosts host field (``a,b``, ``*.lan``, ``!x``, hashed ``|1|salt|hash``) names ``name``."""
    import paramiko

    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern.startswith("|1|"):
            hit = paramiko.HostKeys.hash_host(name, pattern) == pattern
        else:  # OpenSSH patterns know only * and ? ("[host]:port" is literal, unlike fnmatch's [...])
            regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
            hit = re.fullmatch(regex, name.lower()) is not None
        if hit and negated:
            return False
        matched = matched or hit
    return matched
