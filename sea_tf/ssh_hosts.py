"""Which machine ``--host`` names: ``USER@HOST[:PORT]`` or a ``Host`` of an OpenSSH ssh_config file.

:func:`resolve_host` reads the file with paramiko's :class:`~paramiko.SSHConfig` (the parser paramiko
itself uses), so a board set up for ``ssh board`` is ``--host board`` here too: ``HostName``,
``User``, ``Port``, ``IdentityFile`` and ``ProxyJump`` are honoured, with OpenSSH's precedence (what
the command line says wins over the file, the first value in the file wins over later ones). The
host is checked before anything is written: a name that neither the file nor DNS resolves is one
:class:`~sea_tf.errors.RemoteError`.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import getpass
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from sea_tf.errors import ConfigError, RemoteError

if TYPE_CHECKING:  # paramiko is imported when a config is read, not with the module
    import paramiko

#: where ``--ssh-config`` points when it is not given (read only when it exists), as for ``ssh``;
#: ``$SEA_TF_SSH_CONFIG`` replaces it (the test suite points it at nothing, so that a developer's own
#: ``~/.ssh/config`` cannot change how the tests connect)
DEFAULT_SSH_CONFIG = "~/.ssh/config"
SSH_CONFIG_ENV = "SEA_TF_SSH_CONFIG"
#: ProxyJump hops followed before a chain is taken for a loop (``Host *`` with ``ProxyJump`` loops)
MAX_JUMPS = 8

_HOST_RE = re.compile(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?")


@dataclasses.dataclass(frozen=True)
class Host:
    """A remote machine: ``user@host`` and a port; from an ssh_config ``Host``, also its alias, its
    ``IdentityFile`` paths and the jump host (``ProxyJump``) it is reached through."""
    user: str
    host: str
    port: int = 22
    alias: str | None = None
    identity_files: tuple[str, ...] = ()
    jump: Host | None = None

    @property
    def label(self) -> str:
        """``user@host[:port]`` as the user would type it (the resolved address, not the alias)."""
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def route(self) -> str:
        """The alias and every hop, for messages: ``board (pi@10.0.0.5 via admin@gateway)``."""
        hops, jump = [], self.jump
        while jump is not None:
            hops.append(jump.label)
            jump = jump.jump
        via = "".join(f" via {hop}" for hop in hops)
        return f"{self.alias} ({self.label}{via})" if self.alias else self.label + via


def parse_host(text: str, *, default_port: int = 22) -> Host:
    """Parse ``USER@HOST`` or ``USER@HOST:PORT`` into a :class:`Host` (no ssh_config involved)."""
    match = _HOST_RE.fullmatch(text or "")
    if not match or not match.group(1):
        raise RemoteError(f"--host {text!r}: expected USER@HOST or USER@HOST:PORT, e.g. pi@raspberrypi.local")
    user, host, port = match.groups()
    return Host(user, host.strip("[]"), _port(text, port if port else default_port))


def _port(text: str, port: int | str) -> int:
    """``port`` as an int, checked to be a TCP port; ``text``: the ``--host`` value, for the message."""
    port = int(port)
    if not 1 <= port <= 65535:  # a larger number would wrap around to another port in the socket call
        raise ConfigError(f"--host {text!r}: port {port} is outside 1-65535; pass the board's SSH port (usually 22)")
    return port


def load_ssh_config(path: str | Path | None = None) -> tuple[paramiko.SSHConfig, Path] | None:
    """The parsed ssh_config file, or None.

    Parameters
    ----------
    path : str or Path, optional
        ``--ssh-config``: must exist. Without it, :data:`DEFAULT_SSH_CONFIG` is read when it exists.

    Returns
    -------
    (paramiko.SSHConfig, Path) or None
    """
    import paramiko

    explicit = path is not None
    path = Path(path if path is not None else os.environ.get(SSH_CONFIG_ENV) or DEFAULT_SSH_CONFIG).expanduser()
    if not path.is_file():
        if explicit:
            raise RemoteError(f"--ssh-config {path}: file not found; pass an OpenSSH client config file")
        return None
    try:
        return paramiko.SSHConfig.from_path(str(path)), path
    except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as exc:
        raise RemoteError(f"--ssh-config {path}: not a readable ssh_config file ({exc}); fix the line it names") from None


def resolve_host(text: str, *, port: int | None = None, ssh_config: str | Path | None = None,
                 _config: tuple[paramiko.SSHConfig, Path] | None = None, _depth: int = 0) -> Host:
    """The :class:`Host` that ``--host TEXT`` names, as ``ssh TEXT`` would reach it.

    Parameters
    ----------
    text : str
        ``[USER@]NAME[:PORT]``; ``NAME`` is looked up among the file's ``Host`` patterns.
    port : int, optional
        ``--port``: used when ``TEXT`` has no ``:PORT``, before the file's ``Port`` (the command line wins).
    ssh_config : str or Path, optional
        ``--ssh-config`` (see :func:`load_ssh_config`).

    Returns
    -------
    Host
        User: ``USER@``, else ``User``, else the local user name (as ssh). Port: ``:PORT``, else
        ``port``, else ``Port``, else 22. ``jump``: the last ``ProxyJump`` hop, itself reached
        through the hops before it.

    Raises
    ------
    RemoteError
        ``TEXT`` is malformed, ``ProxyJump`` loops or is not ``[USER@]HOST[:PORT]``, or the first
        hop's address does not resolve (the error names the file and the Host entry).
    """
    loaded = _config if _config is not None else load_ssh_config(ssh_config)
    match = _HOST_RE.fullmatch(text or "")
    if not match:
        raise RemoteError(f"--host {text!r}: expected USER@HOST[:PORT] or a Host of an ssh_config file, e.g. "
                          "pi@raspberrypi.local")
    user, name, text_port = match.groups()
    name = name.strip("[]")
    config, config_path = loaded if loaded else (None, None)
    options = config.lookup(name) if config is not None else {}
    matched = config is not None and any(fnmatch.fnmatchcase(name, pattern)
                                         for pattern in config.get_hostnames() if pattern != "*")
    hostname = options.get("hostname", name)
    chosen_port = text_port or port or options.get("port") or 22
    try:
        chosen_port = _port(text, chosen_port)
    except ValueError:
        raise RemoteError(f"--host {text!r}: Port {chosen_port!r} in {config_path} is not a number") from None
    identity_files = tuple(str(Path(p).expanduser()) for p in options.get("identityfile", []))
    jump = _jump(text, options.get("proxyjump"), config_path, loaded, _depth)
    host = Host(user or options.get("user") or getpass.getuser(), hostname, chosen_port,
                alias=name if matched else None, identity_files=identity_files, jump=jump)
    if jump is None and _depth == 0:
        _check_resolves(host, text, config_path, matched)
    return host


def _jump(text: str, proxy_jump: str | None, config_path: Path | None,
          loaded: tuple[paramiko.SSHConfig, Path] | None, depth: int) -> Host | None:
    """The last hop of a ``ProxyJump a,b,c`` chain (``c``, reached through ``b``, through ``a``), or None."""
    if not proxy_jump or proxy_jump.lower() == "none":
        return None
    if depth >= MAX_JUMPS:
        raise RemoteError(f"--host {text!r}: ProxyJump in {config_path} goes on for more than {MAX_JUMPS} hops "
                          "(a loop, e.g. `Host *` with ProxyJump); add `ProxyJump none` to the jump host's entry")
    previous = None
    for k, hop in enumerate(proxy_jump.split(",")):
        if hop.startswith("ssh://"):
            hop = hop[len("ssh://"):]
        if not _HOST_RE.fullmatch(hop):
            raise RemoteError(f"--host {text!r}: ProxyJump {proxy_jump!r} in {config_path}: {hop!r} is not "
                              "[USER@]HOST[:PORT]")
        # the first hop is reached as `ssh hop` would reach it (its own ProxyJump too); later ones through the one before
        resolved = resolve_host(hop, _config=loaded, _depth=depth + 1)
        if k > 0:
            resolved = dataclasses.replace(resolved, jump=previous)
        elif resolved.jump is None:
            _check_resolves(resolved, hop, config_path, resolved.alias is not None, via=text)
        previous = resolved
    return previous


def _check_resolves(host: Host, text: str, config_path: Path | None, matched: bool, *, via: str | None = None) -> None:
    """A RemoteError, before anything is written, when ``host``'s address has no DNS/hosts entry."""
    try:
        socket.getaddrinfo(host.host, host.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        what = f"ProxyJump {text!r} of --host {via!r}" if via else f"--host {text!r}"
        if matched:
            where = f"its Host entry in {config_path} gives HostName {host.host}, which"
        elif config_path is not None:
            where = f"no Host entry in {config_path} matches it and {host.host}"
        else:
            where = f"there is no ssh_config file ({DEFAULT_SSH_CONFIG} or --ssh-config) and {host.host}"
        # a UnicodeError (a label IDNA cannot encode, over 63 characters) has no strerror
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else exc
        raise RemoteError(f"{what}: {where} does not resolve ({reason}); fix the Host entry, pass "
                          "--ssh-config FILE, or give USER@ADDRESS") from None
