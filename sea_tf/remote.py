"""Run the board-side benchmark on remote machines over SSH (``sea-tf device run``).

For each host: connect with paramiko (host key checked against known_hosts, key or agent
authentication only), copy ``device/`` and the artifacts into a remote directory with SFTP,
optionally create a venv there from ``requirements-device.txt``, run ``python -m device.bench``
once per embedding model, and fetch its JSON into a fresh ``OUT/<user@host>/<run-id>/``. Nothing
about the remote host is ever written to known_hosts by sea-tf: an unknown host is refused with its
fingerprint and the command to accept it.

Under faults it tells the truth: a command's output is read until the channel closes (not just
until its exit status), a board that stops answering keepalives is an error within
``2 * keepalive_s`` seconds, a command that overruns is killed on the board with its whole
process group, no prompt is ever shown (a second authentication factor is an error), and every
SSH/SFTP failure is a :class:`~sea_tf.errors.RemoteError` of that host alone.
"""
import base64
import dataclasses
import hashlib
import importlib.util
import json
import re
import shlex
import socket
import threading
import time
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import RemoteError
from sea_tf.runs import new_run_id
from sea_tf.ssh_hosts import Host, parse_host, resolve_host  # noqa: F401 - re-exported: --host's meaning

DEVICE_FILES = ("*.py",)
REQUIREMENTS = "requirements-device.txt"


@dataclasses.dataclass
class RunPlan:
    """What to run on each host: embedding models (one bench each), classifiers, audio files."""
    embeddings: list
    classifiers: list
    audio: list

    def classifier_for(self, embedding):
        """The classifier to pair with ``embedding``: one whose input size is the model's embedding
        size (a teacher's 512-d output cannot feed a student's 64-d classifier); among those, the same
        export mode, else fp32, else the first. None when no classifier fits."""
        size = _embedding_size(embedding)
        fitting = [c for c in self.classifiers if size is None or _embedding_size(c) in (None, size)]
        if not fitting:
            return None
        by_mode = {_mode(c): c for c in fitting}
        return by_mode.get(_mode(embedding)) or by_mode.get("fp32") or fitting[0]

    @property
    def classifier(self):
        """The classifier used with the first embedding model (None without classifiers)."""
        return self.classifier_for(self.embeddings[0]) if self.embeddings else None


def plan(artifacts, audio=()):
    """Sort ``--artifacts`` (directories and/or ``.tflite`` files) into a :class:`RunPlan`.

    A model is a classifier when its sidecar has ``classes`` or its model card says so. When the
    export wrote the classifier in several modes, each embedding model runs with the classifier
    of its own mode (see :meth:`RunPlan.classifier_for`).
    """
    files = []
    for item in artifacts:
        path = Path(item)
        if path.is_dir():
            files += sorted(path.glob("*.tflite"))
        elif path.is_file() and path.suffix == ".tflite":
            files.append(path)
        else:
            raise RemoteError(f"--artifacts {item}: not a .tflite file or a directory of them; pass the "
                              "output directory of `sea-tf export`")
    names = [path.name for path in files]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # one name on the board and one result file per model: a second one would overwrite the first
        raise RemoteError(f"--artifacts: {', '.join(twice)} given from several directories; the board and the "
                          "results name models by file name, so pass each name once")
    bare = [str(path) for path in files if not path.with_suffix(".json").exists()]
    if bare:  # the board would refuse it after the copy (device.bench: no sidecar, no front end)
        raise RemoteError(f"--artifacts: {', '.join(bare)} has no sidecar (.json) beside it, so the board cannot know its "
                          "front end, rates or classes; copy the sidecar `sea-tf export` wrote next to it")
    embeddings, classifiers = [], []
    for path in files:
        (classifiers if _is_classifier(path) else embeddings).append(path)
    if not embeddings:
        raise RemoteError(f"--artifacts {' '.join(map(str, artifacts))}: no embedding model (.tflite) found; "
                          "run `sea-tf export` first")
    for path in map(Path, audio):
        if not path.is_file():
            raise RemoteError(f"--audio {path}: file not found")
    return RunPlan(embeddings, classifiers, [Path(a) for a in audio])


def _mode(path):
    sidecar = Path(path).with_suffix(".json")
    try:
        return json.loads(sidecar.read_text()).get("mode")
    except (OSError, ValueError):
        parts = Path(path).name.split(".")
        return parts[-2] if len(parts) >= 3 else None


def _embedding_size(path):
    """Embedding size a model makes (or a classifier takes), from its sidecar card; None if unknown."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return _card(meta).get("embedding_size")


def _is_classifier(path):
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return (isinstance(meta, dict) and bool(meta.get("classes"))) or _card(meta).get("kind") == "classifier"


def _card(meta):
    """The sidecar's model card, or {} when it has none or a damaged one (the board then says what is wrong)."""
    card = meta.get("model_card") if isinstance(meta, dict) else None
    return card if isinstance(card, dict) else {}


def fingerprint(key):
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# -- connecting: the host key checked against known_hosts, then key/agent authentication only -----------

@dataclasses.dataclass
class KnownKeys:
    """What a known_hosts file says about one host (:func:`read_known_hosts`)."""
    accepted: list
    revoked: list
    cert_authority: bool = False


def read_known_hosts(path, host):
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


def _names_match(patterns, name):
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


class Connection:
    """An authenticated SSH connection to one board (a :class:`paramiko.Transport`).

    ``keepalive_s``: after this many seconds without a byte from the board, :meth:`alive` asks it
    for a reply, and one that does not come within as long again means the board stopped answering.
    """

    def __init__(self, host, transport, keepalive_s, jump=None):
        self.host, self.transport, self.keepalive_s = host, transport, float(keepalive_s)
        self.jump = jump  # the Connection to the ProxyJump host this one is tunnelled through, or None

    def get_transport(self):
        """The underlying :class:`paramiko.Transport`."""
        return self.transport

    def open_sftp(self):
        """An SFTP session whose every request must be answered within ``2 * keepalive_s`` seconds."""
        import paramiko

        sftp = paramiko.SFTPClient.from_transport(self.transport)
        sftp.get_channel().settimeout(2 * self.keepalive_s)
        return sftp

    def alive(self):
        """True when the board answers a keepalive request within ``keepalive_s`` seconds.

        paramiko's own keepalive (:meth:`paramiko.Transport.set_keepalive`) asks for no reply, so it
        cannot tell a board that stopped answering (its TCP stack may still acknowledge) from a
        quiet one; OpenSSH's ``ServerAliveInterval`` asks with want-reply, and so does this.
        """
        answered = threading.Event()

        def ask():  # global_request(wait=True) has no timeout of its own: it waits in this thread
            self.transport.global_request("keepalive@openssh.com", wait=True)
            answered.set()

        threading.Thread(target=ask, daemon=True, name=f"keepalive {self.host.label}").start()
        return answered.wait(self.keepalive_s) and self.transport.is_active()

    def close(self):
        self.transport.close()
        if self.jump is not None:
            self.jump.close()


def connect(host, key_path=None, known_hosts="~/.ssh/known_hosts", timeout=10.0, keepalive_s=10.0):
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

    known_hosts = Path(known_hosts).expanduser()
    known = read_known_hosts(known_hosts, host)
    keys = _client_keys(host, key_path)
    jump = connect(host.jump, key_path, known_hosts, timeout, keepalive_s) if host.jump is not None else None
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
        _check_host_key(host, transport.get_remote_server_key(), known, known_hosts)
        _authenticate(host, transport, keys, key_path)
    except BaseException:
        transport.close()
        if jump is not None:
            jump.close()
        raise
    transport.set_keepalive(max(1, int(keepalive_s)))  # keeps NAT entries open while a long bench is quiet
    return Connection(host, transport, keepalive_s, jump)


def _open_socket(host, jump, timeout):
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


def _client_keys(host, key_path):
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
    keys = []
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


def _prefer_key_types(transport, accepted):
    """Ask for the host key types known_hosts lists first, as OpenSSH does, so a board with several
    host keys presents one that can be checked."""
    names = {k.get_name() for k in accepted}
    if "ssh-rsa" in names:
        names |= {"rsa-sha2-512", "rsa-sha2-256"}
    options = transport.get_security_options()
    options.key_types = sorted(options.key_types, key=lambda kind: kind not in names)


def _check_host_key(host, key, known, known_hosts):
    same = lambda keys: any(k.asbytes() == key.asbytes() for k in keys)  # noqa: E731
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


def _authenticate(host, transport, keys, key_path):
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


def execute(connection, command, timeout, host=None, on_stderr_line=None):
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


def _device_dir():
    spec = importlib.util.find_spec("device")  # located, never imported: device/ is the board's world
    if spec is None or not spec.submodule_search_locations:
        raise RemoteError("the device/ package cannot be found; reinstall sea-tf (make install)")
    return Path(list(spec.submodule_search_locations)[0])


@dataclasses.dataclass
class HostResult:
    """What one host produced: local JSON paths, and whether every run was complete."""
    host: Host
    results: list
    partial: bool = False


#: ``python -m device.bench`` exit codes (device/bench.py): complete, partial, an error it reported
#: (DeviceError: one line on stderr), and 1, what Python exits with on an uncaught exception
BENCH_COMPLETE, BENCH_CRASH, BENCH_ERROR, BENCH_PARTIAL = 0, 1, 2, 3

def run_on_host(host, run_plan, out_dir, key_path=None, known_hosts="~/.ssh/known_hosts", remote_dir="sea-tf-device",
                remote_python="python3", setup=False, bench_args=(), connect_timeout=10.0, command_timeout=900.0,
                keepalive_s=10.0, run_id=None, log=print, err=print, progress=None):
    """Copy, (set up,) run and fetch on one host; returns a :class:`HostResult`.

    ``remote_dir`` may hold ``{host}``, replaced by the board's ``user@host[:port]`` (boards that
    share a home directory, over NFS say, then do not overwrite each other's files).
    ``progress(stage, done=None, total=None)``, when given, is told what happens as it happens:
    ``connect``, ``copy`` (files), each model's start, ``timing`` passes and ``file K/N windows``
    from the board's ``device.bench --progress`` lines (``total`` None while unknown); threads
    may call it for several hosts at once.

    Results go to ``out_dir/<user@host>/<run_id>/<model>.json`` (a fresh directory per run, so a
    report never mixes in an earlier run's files). The remote stdout (the bench table) goes to
    ``log``; on a remote failure the remote stderr goes to ``err`` and a :class:`RemoteError` is
    raised. Every SSH or SFTP failure (paramiko's exceptions, socket errors) is a
    :class:`RemoteError` naming the host and what was being done, so the other hosts go on.
    """
    import paramiko

    remote_dir = remote_dir_for(remote_dir, host)
    run_dir = Path(out_dir) / _safe(host.label) / (run_id or new_run_id())
    progress = progress or (lambda stage, done=None, total=None: None)
    progress("connect")
    client = connect(host, key_path, known_hosts, connect_timeout, keepalive_s)
    try:
        return _run_on_host(client, host, run_plan, run_dir, remote_dir, remote_python, setup, bench_args,
                            command_timeout, log, err, progress)
    except RemoteError:
        raise
    except (paramiko.SSHException, OSError, EOFError) as exc:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            raise RemoteError(f"{host.label}: the board stopped answering ({type(exc).__name__}; nothing for "
                              f"{2 * keepalive_s:g} s); check its power and network") from None
        raise RemoteError(f"{host.label}: the SSH connection failed ({type(exc).__name__}: {exc}); check the board's "
                          "sshd (its SFTP subsystem too) and network, then run again") from None
    finally:
        client.close()


def remote_dir_for(remote_dir, host):
    """The board's working directory: ``~/`` dropped (SFTP and the shell start in $HOME), ``{host}``
    replaced by ``user@host[:port]`` made safe for a path."""
    remote_dir = remote_dir[2:] if remote_dir.startswith("~/") else remote_dir
    return remote_dir.replace("{host}", _safe(host.label))


def _run_on_host(client, host, run_plan, run_dir, remote_dir, remote_python, setup, bench_args, command_timeout,
                 log, err, progress):
    rdir = shlex.quote(remote_dir)
    audio = {a: remote_audio_name(a) for a in run_plan.audio}
    folders = ["device", "artifacts", "results", *sorted({str(Path(name).parent) for name in audio.values()})]
    code, _, stderr = execute(client, "mkdir -p " + " ".join(f"{rdir}/{shlex.quote(f)}" for f in folders),
                              command_timeout, host)
    if code:
        raise RemoteError(f"{host.label}: cannot create {remote_dir} ({stderr.strip()}); pass a writable --remote-dir")
    device_dir = _device_dir()
    uploads = [(p, f"{remote_dir}/device/{p.name}") for pattern in DEVICE_FILES
               for p in sorted(device_dir.glob(pattern))]
    requirements = device_dir.parent / REQUIREMENTS
    if requirements.exists():
        uploads.append((requirements, f"{remote_dir}/{REQUIREMENTS}"))
    needed = run_plan.embeddings + sorted({run_plan.classifier_for(m) for m in run_plan.embeddings} - {None})
    uploads += _artifact_uploads(needed, remote_dir)
    uploads += [(a, f"{remote_dir}/{name}") for a, name in audio.items()]
    sftp = client.open_sftp()
    _upload(sftp, uploads, host, remote_dir, progress)

    python = remote_python
    if setup:
        if not requirements.exists():
            raise RemoteError(f"{requirements}: not found, so --setup cannot create the board's venv")
        log(f"{host.label}: creating {remote_dir}/.venv from {REQUIREMENTS} (needs the board's internet access)")
        code, _, stderr = execute(
            client, f"cd {rdir} && {shlex.quote(remote_python)} -m venv .venv && "
                    f".venv/bin/python -m pip install -q -r {REQUIREMENTS}", command_timeout, host)
        if code:
            err(_indent(stderr))
            raise RemoteError(f"{host.label}: --setup failed (exit {code}, remote stderr above); install "
                              f"python3-venv on the board or check its internet access")
        python = ".venv/bin/python"
    code, stdout, stderr = execute(client, f"cd {rdir} && {shlex.quote(python)} -c 'import sys; print(sys.version)'",
                                   command_timeout, host)
    if code:
        raise RemoteError(f"{host.label}: {python} is not runnable on the board (exit {code}: {stderr.strip()[-200:]}); "
                          "install Python 3, pass --remote-python, or use --setup")

    result = HostResult(host, [])
    for number, model in enumerate(run_plan.embeddings, 1):
        name = f"{model.name} ({number}/{len(run_plan.embeddings)})"

        def on_line(line, name=name):
            match = PROGRESS_RE.fullmatch(line.strip())
            if match:
                what, done, total = match.groups()
                progress(f"{name} {what}", int(done), None if total == "?" else int(total))

        remote_json = f"results/{model.stem}.json"
        args = ["--model", f"artifacts/{model.name}"]
        classifier = run_plan.classifier_for(model)
        if classifier:
            args += ["--classifier", f"artifacts/{classifier.name}"]
        if audio:
            args += ["--audio", *audio.values()]
        args += [*map(str, bench_args), "--progress", "--label", host.host, "--out-file", remote_json]
        command = f"cd {rdir} && rm -f {shlex.quote(remote_json)} && {shlex.quote(python)} -m device.bench " + \
                  " ".join(shlex.quote(a) for a in args)
        log(f"{host.label}: {model.name}")
        progress(f"{name} start")
        code, stdout, stderr = execute(client, command, command_timeout, host, on_line)
        log(stdout.rstrip())
        if code not in (BENCH_COMPLETE, BENCH_PARTIAL):
            err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
            if code == BENCH_CRASH:
                raise RemoteError(f"{host.label}: device.bench crashed on {model.name} (exit 1, an uncaught exception; "
                                  "its traceback is in the remote stderr above: please report it)")
            raise RemoteError(f"{host.label}: device.bench failed on {model.name} (exit {code}; remote stderr above)")
        try:
            with sftp.open(f"{remote_dir}/{remote_json}") as remote_file:
                data = remote_file.read()
        except OSError as exc:
            raise RemoteError(f"{host.label}: the result {remote_dir}/{remote_json} could not be fetched ({exc})") from None
        local = run_dir / f"{model.stem}.json"
        atomic.write_bytes(local, data)
        result.results.append(local)
        if code == BENCH_PARTIAL:
            err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
            result.partial = True
    return result


def remote_audio_name(path):
    """Where a local audio file goes on the board: ``audio/<hash>/<name>``, the hash (sha256 of the
    absolute local path, 10 hex digits) keeping ``a/x.wav`` and ``b/x.wav`` apart."""
    path = Path(path)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    return f"audio/{digest}/{path.name}"


def _indent(text):
    return "\n".join("  | " + line for line in text.rstrip().splitlines()) or "  | (empty)"


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text)


# -- sea-tf device listen: device.listen on one board, its JSON lines streamed back live ---------------------

def listen_plan(artifacts, model=None):
    """(embedding model, classifier or None) for ``sea-tf device listen`` from ``--artifacts``.

    ``model`` picks the embedding model when there are several (its file name, or the start of it);
    the classifier is the one :meth:`RunPlan.classifier_for` pairs with it.
    """
    run_plan = plan(artifacts)
    embeddings = run_plan.embeddings
    if model:
        embeddings = [m for m in embeddings if m.name == model or m.name.startswith(model)]
        if not embeddings:
            raise RemoteError(f"--model {model}: no embedding model of that name in --artifacts; there are "
                              f"{', '.join(m.name for m in run_plan.embeddings)}")
    elif len(embeddings) > 1:
        raise RemoteError(f"--artifacts holds {len(embeddings)} embedding models "
                          f"({', '.join(m.name for m in embeddings)}); pick one with --model NAME")
    return embeddings[0], run_plan.classifier_for(embeddings[0])


def listen_on_host(host, model, classifier, out_path, source="default", listen_args=(), key_path=None,
                   known_hosts="~/.ssh/known_hosts", remote_dir="sea-tf-device", remote_python="python3",
                   connect_timeout=10.0, stop_timeout=20.0, on_line=None, err=print):
    """Copy device/ and the models to ``host``, run ``python -m device.listen`` there, stream its JSON lines.

    Every line the board prints is appended to ``out_path`` as it arrives (and passed to
    ``on_line(dict)``). Ctrl-C here (KeyboardInterrupt) closes the board's stdin: ``device.listen
    --until-stdin-closes`` then stops like a local Ctrl-C and sends its summary, which is awaited
    for ``stop_timeout`` seconds. Returns ``(summary dict or None, remote exit code, interrupted)``.

    Parameters
    ----------
    source : str
        ``default`` / a device name or index (the board's microphone), or a local audio file (copied).
    listen_args : sequence of str
        More ``device.listen`` arguments (``--hop-size``, ``--duration``, ``--trigger``...).
    """
    remote_dir = remote_dir_for(remote_dir, host)
    rdir = shlex.quote(remote_dir)
    local_source = Path(source) if source not in ("-",) and Path(source).is_file() else None
    import paramiko

    if source == "-":
        raise RemoteError("--source -: stdin of the board is how sea-tf stops it; pass a file or a microphone")
    client = connect(host, key_path, known_hosts, connect_timeout)
    try:
        code, _, stderr = execute(client, f"mkdir -p {rdir}/device {rdir}/artifacts {rdir}/audio", 60, host)
        if code:
            raise RemoteError(f"{host.label}: cannot create {remote_dir} ({stderr.strip()}); pass a writable --remote-dir")
        device_dir = _device_dir()
        uploads = [(p, f"{remote_dir}/device/{p.name}") for pattern in DEVICE_FILES for p in sorted(device_dir.glob(pattern))]
        uploads += _artifact_uploads([model] + ([classifier] if classifier else []), remote_dir)
        if local_source:
            uploads.append((local_source, f"{remote_dir}/audio/{local_source.name}"))
        sftp = client.open_sftp()
        try:
            _upload(sftp, uploads, host, remote_dir)
        finally:
            sftp.close()
        args = ["--model", f"artifacts/{model.name}", "--source", f"audio/{local_source.name}" if local_source else source,
                "--jsonl", "-", "--until-stdin-closes", *map(str, listen_args)]
        if classifier:
            args += ["--classifier", f"artifacts/{classifier.name}"]
        command = f"cd {rdir} && exec {shlex.quote(remote_python)} -m device.listen " + " ".join(shlex.quote(a) for a in args)
        return _stream_lines(client, command, out_path, host, stop_timeout, on_line, err)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise RemoteError(f"{host.label}: the SSH connection failed ({type(exc).__name__}: {exc}); check the board's "
                          "sshd (its SFTP subsystem too) and network, then run again") from None
    finally:
        client.close()


def _drain(channel, out, err):
    """Append what ``channel`` has buffered to ``out`` / ``err`` (bytearrays); True when anything came."""
    got = False
    while channel.recv_ready():
        out += channel.recv(65536)
        got = True
    while channel.recv_stderr_ready():
        err += channel.recv_stderr(65536)
        got = True
    return got


def _stream_lines(client, command, out_path, host, stop_timeout, on_line, err):
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    summary, interrupted, pending, errors = None, False, bytearray(), bytearray()
    deadline, heard = None, time.monotonic()
    with open(out_path, "w") as out:
        while True:
            try:
                got = _drain(channel, pending, errors)
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    if not raw.strip():
                        continue
                    text = raw.decode(errors="replace")
                    out.write(text + "\n")
                    out.flush()
                    try:
                        record = json.loads(text)
                    except ValueError:
                        continue
                    if record.get("event") == "summary":
                        summary = record
                    if on_line is not None:
                        on_line(record)
                if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break  # closed, not just exited: the last output can come after the exit status
                if got:
                    heard = time.monotonic()
                elif time.monotonic() - heard > client.keepalive_s:  # silent: is the board still there?
                    if not client.alive():
                        channel.close()
                        err(f"{host.label}: the board stopped answering (no reply to an SSH keepalive within "
                            f"{2 * client.keepalive_s:g} s); the stream was closed")
                        break
                    heard = time.monotonic()
                if deadline is not None and time.monotonic() > deadline:
                    channel.close()
                    err(f"{host.label}: the board did not stop within {stop_timeout:g} s of Ctrl-C; the channel was closed")
                    break
                if not got:
                    time.sleep(0.02)
            except KeyboardInterrupt:
                if interrupted:            # a second Ctrl-C: stop waiting for the board's summary
                    channel.close()
                    break
                interrupted = True
                channel.shutdown_write()   # the board's stdin ends: device.listen stops and sends its summary
                deadline = time.monotonic() + stop_timeout
    code = channel.recv_exit_status() if channel.exit_status_ready() else None
    channel.close()
    text = errors.decode(errors="replace").strip()
    if text and (code not in (0, None) or summary is None):
        err(f"--- remote stderr ({host.label}) ---\n{_indent(text)}")
    return summary, code, interrupted


def _artifact_uploads(models, remote_dir):
    """``(local, remote)`` pairs of each exported model and its JSON sidecar, into ``REMOTE_DIR/artifacts``."""
    pairs = []
    for model in models:
        pairs.append((model, f"{remote_dir}/artifacts/{model.name}"))
        sidecar = model.with_suffix(".json")
        if sidecar.exists():
            pairs.append((sidecar, f"{remote_dir}/artifacts/{sidecar.name}"))
    return pairs


def _upload(sftp, uploads, host, remote_dir, progress=None):
    """Copy every ``(local, remote)`` pair over ``sftp``; a failed copy is a RemoteError naming the file.
    ``progress("copy", done, total)`` when given, else a tqdm bar."""
    from tqdm import tqdm

    if progress is None:
        uploads = tqdm(uploads, desc=f"copy to {host.label}", unit="file", leave=False)
    for done, (local, remote) in enumerate(uploads, 1):
        if progress is not None:
            progress("copy", done, len(uploads))
        try:
            sftp.put(str(local), remote)
        except (OSError, EOFError) as exc:
            raise RemoteError(f"{host.label}: copying {local} to {remote} failed ({exc}); check free space on "
                              f"the board (df -h {remote_dir}) and that the directory is writable") from None
