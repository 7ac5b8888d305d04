"""SSH to a board: connect (host key checked, public keys only) and run one command to its end.

:func:`connect` checks the board's host key against known_hosts (:mod:`sea_tf.remote.hosts`) and
authenticates with keys alone, never with a prompt; :func:`execute` runs a command under the board's
coreutils ``timeout``, reads both streams until the channel closes and notices a board that stopped
answering. Both ``sea-tf device run`` (:mod:`~sea_tf.remote.run`) and ``sea-tf device listen``
(:mod:`~sea_tf.remote.listen`) are built on them.
"""
from __future__ import annotations

import re
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sea_tf.errors import RemoteError
from sea_tf.remote.hosts import KnownKeys, fingerprint, read_known_hosts
from sea_tf.ssh_hosts import Host

if TYPE_CHECKING:  # paramiko is imported when a board is contacted, not with the package
    import paramiko


# -- connecting: the host key checked against known_hosts, then key/agent authentication only -----------

class Connection:
    """An authenticated SSH connection to one board (a :class:`paramiko.Transport`).

    ``keepalive_s``: after this many seconds without a byte from the board, :meth:`alive` asks it
    for a reply, and one that does not come within as long again means the board stopped answering.
    """

    def __init__(self, host: Host, transport: paramiko.Transport, keepalive_s: float, *,
                 jump: Connection | None = None) -> None:
        self.host, self.transport, self.keepalive_s = host, transport, float(keepalive_s)
        self.jump = jump  # the Connection to the ProxyJump host this one is tunnelled through, or None

    def get_transport(self) -> paramiko.Transport:
        """The underlying :class:`paramiko.Transport`."""
        return self.transport

    def open_sftp(self) -> paramiko.SFTPClient:
        """An SFTP session whose every request must be answered within ``2 * keepalive_s`` seconds."""
        import paramiko

        sftp = paramiko.SFTPClient.from_transport(self.transport)
        sftp.get_channel().settimeout(2 * self.keepalive_s)
        return sftp

    def alive(self) -> bool:
        """True when the board answers a keepalive request within ``keepalive_s`` seconds.

        paramiko's own keepalive (:meth:`paramiko.Transport.set_keepalive`) asks for no reply, so it
        cannot tell a board that stopped answering (its TCP stack may still acknowledge) from a
        quiet one; OpenSSH's ``ServerAliveInterval`` asks with want-reply, and so does this.
        """
        answered = threading.Event()

        def ask() -> None:  # global_request(wait=True) has no timeout of its own: it waits in this thread
            self.transport.global_request("keepalive@openssh.com", wait=True)
            answered.set()

        threading.Thread(target=ask, daemon=True, name=f"keepalive {self.host.label}").start()
        return answered.wait(self.keepalive_s) and self.transport.is_active()

    def close(self) -> None:
        """Close the connection, and the one to the jump host it is tunnelled through."""
        self.transport.close()
        if self.jump is not None:
            self.jump.close()


def connect(host: Host, *, key_path: Path | str | None = None, known_hosts: Path | str,
            timeout: float, keepalive_s: float) -> Connection:
    """An authenticated :class:`Connection` to ``host``.

    Authentication is by public key only: ``key_path``, else the host's ssh_config ``IdentityFile``
    keys, the ssh-agent's keys and the default keys in ``~/.ssh``. A host with a ``jump``
    (``ProxyJump``) is reached through a ``direct-tcpip`` channel of a connection to the jump host,
    as ``ssh -J`` does; every hop's host key is checked against ``known_hosts``. paramiko's :class:`~paramiko.SSHClient` is not used because, when a server
    asks for a second factor, it answers keyboard-interactive prompts with ``input()``: a run on
    several boards would wait forever at a prompt nobody sees.

    Parameters
    ----------
    host : Host
    key_path : str or Path, optional
        Private key file; without it, the ssh-agent and the default keys in ``~/.ssh`` are tried.
    known_hosts : str or Path
        known_hosts file with the host's key; an unknown host is refused (see module docstring).
    timeout : float
        Seconds for the TCP connection, the SSH banner and authentication.
    keepalive_s : float
        See :class:`Connection`.
    """
    import paramiko

    known_hosts_path = Path(known_hosts).expanduser()
    known = read_known_hosts(known_hosts_path, host)
    keys = _client_keys(host, key_path)
    jump = (connect(host.jump, key_path=key_path, known_hosts=known_hosts_path, timeout=timeout, keepalive_s=keepalive_s)
            if host.jump is not None else None)
    try:
        sock = _open_socket(host, jump, timeout)
        transport = paramiko.Transport(sock)
    except BaseException:
        if jump is not None:
            jump.close()
        raise
    transport.banner_timeout = transport.auth_timeout = transport.handshake_timeout = timeout
    _prefer_key_types(transport, known.accepted)
    try:
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"{host.label}: {host.host}:{host.port} answered but the SSH handshake failed ({exc}); "
                              "check that it is the board's sshd") from None
        _check_host_key(host, transport.get_remote_server_key(), known, known_hosts_path)
        _authenticate(host, transport, keys, key_path)
    except BaseException:
        transport.close()
        if jump is not None:
            jump.close()
        raise
    transport.set_keepalive(max(1, int(keepalive_s)))  # keeps NAT entries open while a long bench is quiet
    return Connection(host, transport, keepalive_s, jump=jump)


def _open_socket(host: Host, jump: Connection | None, timeout: float) -> socket.socket | paramiko.Channel:
    """A TCP connection to ``host``'s sshd: direct, or a ``direct-tcpip`` channel from ``jump``."""
    import paramiko

    if jump is not None:
        try:
            return jump.transport.open_channel("direct-tcpip", (host.host, host.port), ("127.0.0.1", 0),
                                               timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"{host.route}: the jump host {jump.host.label} could not connect to "
                              f"{host.host}:{host.port} ({exc or type(exc).__name__}); check HostName and Port in "
                              "the ssh_config entry and that the jump host may forward (AllowTcpForwarding)") from None
    try:
        return socket.create_connection((host.host, host.port), timeout=timeout)
    except (socket.timeout, TimeoutError) as exc:
        raise RemoteError(f"{host.label}: no answer within {timeout:g} s; check the address and that the "
                          "board is on the network") from exc
    except OSError as exc:
        raise RemoteError(f"{host.label}: cannot reach {host.host}:{host.port} ({exc}); check the address, "
                          "the port, and that sshd runs on the board") from None


def _client_keys(host: Host, key_path: Path | str | None) -> list[paramiko.PKey]:
    """Private keys to offer, in order: ``key_path`` alone, else the host's ssh_config ``IdentityFile``
    keys (those that exist and need no passphrase, as ssh skips the others), the ssh-agent's and ``~/.ssh``'s."""
    import paramiko

    if key_path:
        key_path = Path(key_path).expanduser()
        if not key_path.is_file():
            raise RemoteError(f"--key {key_path}: private key file not found")
        try:
            return [paramiko.PKey.from_path(key_path)]
        except paramiko.PasswordRequiredException:
            raise RemoteError(f"{host.label}: the key {key_path} is passphrase-protected; add it to ssh-agent "
                              "(ssh-add) and run again without --key") from None
        except (paramiko.SSHException, paramiko.UnknownKeyType, OSError, ValueError) as exc:
            raise RemoteError(f"--key {key_path}: not a usable private key ({exc}); pass an OpenSSH private key "
                              "file") from None
    keys: list[paramiko.PKey] = []
    for name in host.identity_files:
        try:
            keys.append(paramiko.PKey.from_path(name))
        except (paramiko.SSHException, paramiko.UnknownKeyType, OSError, ValueError):
            pass  # missing, passphrase-protected or unusable: only the agent can offer it
    try:
        keys += list(paramiko.Agent().get_keys())
    except paramiko.SSHException:
        pass  # no agent, or one that does not answer: the files below may still do
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path("~/.ssh").expanduser() / name
        if path.is_file():
            try:
                keys.append(paramiko.PKey.from_path(path))
            except (paramiko.SSHException, paramiko.UnknownKeyType, OSError, ValueError):
                pass  # passphrase-protected or unusable: only the agent can offer it
    return keys


def _prefer_key_types(transport: paramiko.Transport, accepted: list[paramiko.PKey]) -> None:
    """Ask for the host key types known_hosts lists first, as OpenSSH does, so a board with several
    host keys presents one that can be checked."""
    names = {k.get_name() for k in accepted}
    if "ssh-rsa" in names:
        names |= {"rsa-sha2-512", "rsa-sha2-256"}
    options = transport.get_security_options()
    options.key_types = sorted(options.key_types, key=lambda kind: kind not in names)


def _check_host_key(host: Host, key: paramiko.PKey, known: KnownKeys, known_hosts: Path) -> None:
    """A RemoteError unless ``key``, the board's host key, is one known_hosts accepts for ``host``."""

    def same(keys: list[paramiko.PKey]) -> bool:
        return any(k.asbytes() == key.asbytes() for k in keys)

    kind = key.get_name()
    if same(known.revoked):
        raise RemoteError(f"{host.label}: the host key {kind} {fingerprint(key)} is marked @revoked in {known_hosts}; "
                          "sea-tf refuses it. Reinstall the board's host keys, then accept the new key")
    if not known.accepted:
        keyscan_type = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(kind, "ecdsa")
        ca = (" (its @cert-authority line cannot be used: sea-tf does not check host certificates)"
              if known.cert_authority else "")
        raise RemoteError(
            f"{host.label}: unknown host key {kind} {fingerprint(key)} (not in {known_hosts}{ca}); sea-tf never "
            f"accepts host keys by itself. Check the fingerprint on the board (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_{keyscan_type}_key.pub), then accept it with: "
            f"ssh-keyscan -p {host.port} -t {keyscan_type} {host.host} >> {known_hosts}")
    if not same(known.accepted):
        raise RemoteError(
            f"{host.label}: the host key ({fingerprint(key)}) does NOT match the one in {known_hosts}; "
            "this may be an attack or a reinstalled board. If the board was reinstalled, remove the old entry "
            f"with ssh-keygen -R '{host.known_hosts_name}' -f {known_hosts} and accept the new key")


def _authenticate(host: Host, transport: paramiko.Transport, keys: list[paramiko.PKey],
                  key_path: Path | str | None) -> None:
    """Public-key authentication with each key in turn; a second factor the server asks for is an
    error, never a prompt."""
    import paramiko

    how = (f"the key {key_path}" if key_path else
           f"IdentityFile {', '.join(host.identity_files)}, the ssh-agent and ~/.ssh keys" if host.identity_files else
           "the ssh-agent and ~/.ssh keys")
    reason = "no key to offer" if not keys else None
    for key in keys:
        try:
            more = transport.auth_publickey(host.user, key)
        except paramiko.BadAuthenticationType as exc:
            raise RemoteError(f"{host.label}: the board does not accept public keys (it allows only "
                              f"{', '.join(exc.allowed_types)}); sea-tf authenticates with --key or the ssh-agent only: "
                              "enable PubkeyAuthentication in the board's sshd_config") from None
        except (paramiko.AuthenticationException, paramiko.SSHException, EOFError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            if not transport.is_active():
                break
            continue
        if more:
            raise RemoteError(f"{host.label}: the key was accepted but the board also asks for "
                              f"{', '.join(more)} (a second factor); sea-tf never prompts. Allow public keys alone "
                              f"for {host.user} on the board (AuthenticationMethods publickey in sshd_config)")
        if transport.is_authenticated():
            return
    raise RemoteError(f"{host.label}: authentication failed with {how} ({reason}); install the public key in "
                      f"the board's ~/.ssh/authorized_keys (ssh-copy-id) or pass --key")


# -- running a command: read to the end of both streams, notice a dead board, stop what overran ----------

#: seconds the board's ``timeout`` waits after SIGTERM before it SIGKILLs the command's process group
KILL_AFTER_S = 5


#: a progress line of ``device.bench --progress`` on the board's stderr: what, done, total (``?``: unknown)
PROGRESS_RE = re.compile(r"device\.bench: progress (.+) (\d+)/(\d+|\?)")


def execute(connection: Connection, command: str, timeout: float, *, host: Host | None = None,
            on_stderr_line: Callable[[str], object] | None = None) -> tuple[int, str, str]:
    """Run ``command`` on the board's shell; returns (exit code, stdout, stderr) as str.

    ``on_stderr_line(str)`` is given each line of the command's stderr as soon as it arrives
    (``device.bench --progress`` lines among them); the progress lines are left out of the
    returned stderr, which is what a failure shows.

    The command runs under coreutils ``timeout --kill-after`` on the board: after ``timeout``
    seconds its whole process group gets SIGTERM, then SIGKILL, so an overrunning benchmark never
    keeps running there (and skews the next one) even when this side is gone. Both streams are read
    until the server closes the channel: OpenSSH sends the exit status when the command exits, which
    can be before the last of its output (a child still writing), so stopping at the exit status
    loses output.

    Raises
    ------
    RemoteError
        The command ran longer than ``timeout`` s (it was stopped on the board), or the board
        stopped answering keepalives (:class:`Connection`).
    """
    label = host.label if host else connection.host.label
    channel = connection.get_transport().open_session(timeout=connection.keepalive_s)
    channel.exec_command(f"exec timeout --kill-after={KILL_AFTER_S}s {timeout:.3f}s sh -c {shlex.quote(command)}")
    out, err = bytearray(), bytearray()
    # the board's timeout fires first; this one only covers a board whose timeout did not work
    deadline = time.monotonic() + timeout + KILL_AFTER_S + connection.keepalive_s
    heard, scanned = time.monotonic(), 0
    try:
        while True:
            got = _drain(channel, out, err)
            while on_stderr_line is not None and (end := err.find(b"\n", scanned)) >= 0:
                on_stderr_line(err[scanned:end].decode(errors="replace"))
                scanned = end + 1
            if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            now = time.monotonic()
            if got:
                heard = now
            elif now - heard > connection.keepalive_s:
                if not connection.alive():
                    connection.close()
                    raise RemoteError(f"{label}: the board stopped answering (no reply to an SSH keepalive within "
                                      f"{2 * connection.keepalive_s:g} s while `{command}` ran); check its power and "
                                      "network. Whatever ran there is stopped by its own time limit")
                heard = time.monotonic()
            if now > deadline:
                raise RemoteError(f"{label}: `{command}` did not finish within {timeout:g} s and could not be stopped "
                                  "on the board (is coreutils `timeout` installed there?)")
            if not got:
                time.sleep(0.02)
    finally:
        channel.close()
    code = channel.recv_exit_status()
    if code in (124, 128 + 9):  # timeout's own codes: the command overran and was stopped (TERM, then KILL)
        raise RemoteError(f"{label}: `{command}` did not finish within {timeout:g} s and was stopped on the board "
                          "(raise timeouts.command_s / --command-timeout, or use fewer --runs)")
    stderr = "".join(line for line in err.decode(errors="replace").splitlines(keepends=True)
                     if not PROGRESS_RE.fullmatch(line.rstrip("\n")))
    return code, out.decode(errors="replace"), stderr


def _drain(channel: paramiko.Channel, out: bytearray, err: bytearray) -> bool:
    """Append what ``channel`` has buffered to ``out`` / ``err`` (bytearrays); True when anything came."""
    got = False
    while channel.recv_ready():
        out += channel.recv(65536)
        got = True
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(65536)
        got = True
    return got
