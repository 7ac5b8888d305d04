"""Run the board-side benchmark on remote machines over SSH (``sea-tf device run``).

For each host: connect with paramiko (host key checked against known_hosts, key or agent
authentication only), copy ``device/`` and the artifacts into a remote directory with SFTP,
optionally create a venv there from ``requirements-device.txt``, run ``python -m device.bench``
once per embedding model, and fetch its JSON. Nothing about the remote host is ever written to
known_hosts by sea-tf: an unknown host is refused with its fingerprint and the command to accept it.
"""
import base64
import dataclasses
import hashlib
import importlib.util
import json
import re
import shlex
import socket
import time
from pathlib import Path

from sea_tf import atomic
from sea_tf.errors import RemoteError

DEVICE_FILES = ("*.py",)
REQUIREMENTS = "requirements-device.txt"


@dataclasses.dataclass(frozen=True)
class Host:
    """A remote machine: ``user@host`` and a port."""
    user: str
    host: str
    port: int = 22

    @property
    def label(self):
        """``user@host[:port]`` as the user would type it."""
        return f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")

    @property
    def known_hosts_name(self):
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_host(text, default_port=22):
    """Parse ``USER@HOST`` or ``USER@HOST:PORT`` into a :class:`Host`."""
    match = re.fullmatch(r"([^@\s]+)@(\[[^\]]+\]|[^:@\s]+)(?::(\d+))?", text or "")
    if not match:
        raise RemoteError(f"--host {text!r}: expected USER@HOST or USER@HOST:PORT, e.g. pi@raspberrypi.local")
    user, host, port = match.groups()
    return Host(user, host.strip("[]"), int(port) if port else int(default_port))


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
    return (meta.get("model_card") or {}).get("embedding_size")


def _is_classifier(path):
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        return False
    try:
        meta = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return bool(meta.get("classes")) or (meta.get("model_card") or {}).get("kind") == "classifier"


def fingerprint(key):
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def connect(host, key_path=None, known_hosts="~/.ssh/known_hosts", timeout=10.0):
    """An authenticated :class:`paramiko.SSHClient` to ``host``.

    Parameters
    ----------
    host : Host
    key_path : str or Path, optional
        Private key file; without it, the ssh-agent and the default keys in ``~/.ssh`` are tried.
    known_hosts : str or Path
        known_hosts file with the host's key; an unknown host is refused (see module docstring).
    timeout : float
        Seconds for the TCP connection, the SSH banner and authentication.
    """
    import paramiko

    known_hosts = Path(known_hosts).expanduser()

    class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            kind = key.get_name()
            keyscan_type = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa"}.get(kind, "ecdsa")
            raise RemoteError(
                f"{host.label}: unknown host key {kind} {fingerprint(key)} (not in {known_hosts}); sea-tf never "
                f"accepts host keys by itself. Check the fingerprint on the board (ssh-keygen -lf "
                f"/etc/ssh/ssh_host_{keyscan_type}_key.pub), then accept it with: "
                f"ssh-keyscan -p {host.port} -t {keyscan_type} {host.host} >> {known_hosts}")

    client = paramiko.SSHClient()
    if known_hosts.exists():
        try:
            client.load_system_host_keys(str(known_hosts))  # read only: never saved back
        except (OSError, paramiko.SSHException) as exc:
            raise RemoteError(f"{known_hosts}: unreadable known_hosts file ({exc}); fix or move it") from exc
    client.set_missing_host_key_policy(RefuseUnknownHost())
    key_path = str(Path(key_path).expanduser()) if key_path else None
    if key_path and not Path(key_path).is_file():
        raise RemoteError(f"--key {key_path}: private key file not found")
    try:
        client.connect(host.host, port=host.port, username=host.user, key_filename=key_path,
                       allow_agent=True, look_for_keys=key_path is None, password=None,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    except RemoteError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise RemoteError(
            f"{host.label}: the host key ({fingerprint(exc.key)}) does NOT match the one in {known_hosts}; "
            "this may be an attack or a reinstalled board. If the board was reinstalled, remove the old entry "
            f"with ssh-keygen -R '{host.known_hosts_name}' -f {known_hosts} and accept the new key") from None
    except paramiko.PasswordRequiredException:
        client.close()
        raise RemoteError(f"{host.label}: the key {key_path} is passphrase-protected; add it to ssh-agent "
                          "(ssh-add) and run again without --key") from None
    except paramiko.AuthenticationException as exc:
        client.close()
        how = f"the key {key_path}" if key_path else "the ssh-agent and ~/.ssh keys"
        raise RemoteError(f"{host.label}: authentication failed with {how} ({exc}); install the public key in "
                          f"the board's ~/.ssh/authorized_keys (ssh-copy-id) or pass --key") from None
    except (socket.timeout, TimeoutError) as exc:
        client.close()
        raise RemoteError(f"{host.label}: no answer within {timeout:g} s; check the address and that the "
                          "board is on the network") from exc
    except (OSError, paramiko.SSHException) as exc:
        client.close()
        raise RemoteError(f"{host.label}: cannot reach {host.host}:{host.port} ({exc}); check the address, "
                          "the port, and that sshd runs on the board") from None
    return client


def execute(client, command, timeout, host=None):
    """Run ``command`` on the remote shell; returns (exit code, stdout, stderr) as str.

    Raises :class:`RemoteError` when it runs longer than ``timeout`` seconds (the channel is closed).
    """
    channel = client.get_transport().open_session(timeout=timeout)
    channel.exec_command(command)
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    while True:
        while channel.recv_ready():
            out += channel.recv(65536)
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(65536)
        if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
            break
        if time.monotonic() > deadline:
            channel.close()
            raise RemoteError(f"{host.label if host else 'remote'}: `{command}` did not finish within {timeout:g} s "
                              "(raise timeouts.command_s, or use fewer --runs)")
        time.sleep(0.01)
    code = channel.recv_exit_status()
    channel.close()
    return code, out.decode(errors="replace"), err.decode(errors="replace")


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


def run_on_host(host, run_plan, out_dir, key_path=None, known_hosts="~/.ssh/known_hosts", remote_dir="sea-tf-device",
                remote_python="python3", setup=False, bench_args=(), connect_timeout=10.0, command_timeout=900.0,
                log=print, err=print):
    """Copy, (set up,) run and fetch on one host; returns a :class:`HostResult`.

    The remote stdout (the bench table) goes to ``log``; on a remote failure the remote stderr goes
    to ``err`` and a :class:`RemoteError` is raised.
    """
    remote_dir = remote_dir[2:] if remote_dir.startswith("~/") else remote_dir  # SFTP and shell start in $HOME
    rdir = shlex.quote(remote_dir)
    client = connect(host, key_path, known_hosts, connect_timeout)
    try:
        code, _, stderr = execute(client, f"mkdir -p {rdir}/device {rdir}/artifacts {rdir}/audio {rdir}/results",
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
        uploads += [(a, f"{remote_dir}/audio/{a.name}") for a in run_plan.audio]
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(command_timeout)
        _upload(sftp, uploads, host, remote_dir)

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
        for model in run_plan.embeddings:
            remote_json = f"results/{model.stem}.json"
            args = ["--model", f"artifacts/{model.name}"]
            classifier = run_plan.classifier_for(model)
            if classifier:
                args += ["--classifier", f"artifacts/{classifier.name}"]
            if run_plan.audio:
                args += ["--audio", *[f"audio/{a.name}" for a in run_plan.audio]]
            args += [*map(str, bench_args), "--label", host.host, "--json", remote_json]
            command = f"cd {rdir} && rm -f {shlex.quote(remote_json)} && {shlex.quote(python)} -m device.bench " + \
                      " ".join(shlex.quote(a) for a in args)
            log(f"{host.label}: {model.name}")
            code, stdout, stderr = execute(client, command, command_timeout, host)
            log(stdout.rstrip())
            if code not in (0, 1):
                err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
                raise RemoteError(f"{host.label}: device.bench failed on {model.name} (exit {code}; remote stderr above)")
            try:
                data = sftp.open(f"{remote_dir}/{remote_json}").read()
            except OSError as exc:
                raise RemoteError(f"{host.label}: the result {remote_dir}/{remote_json} could not be fetched ({exc})") from None
            local = Path(out_dir) / _safe(host.label) / f"{model.stem}.json"
            atomic.write_bytes(local, data)
            result.results.append(local)
            if code == 1:
                err(f"--- remote stderr ({host.label}) ---\n{_indent(stderr)}")
                result.partial = True
        return result
    finally:
        client.close()


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
    remote_dir = remote_dir[2:] if remote_dir.startswith("~/") else remote_dir
    rdir = shlex.quote(remote_dir)
    local_source = Path(source) if source not in ("-",) and Path(source).is_file() else None
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
    finally:
        client.close()


def _stream_lines(client, command, out_path, host, stop_timeout, on_line, err):
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    summary, interrupted, pending, errors = None, False, b"", bytearray()
    deadline = None
    with open(out_path, "w") as out:
        while True:
            try:
                got = False
                while channel.recv_ready():
                    pending += channel.recv(65536)
                    got = True
                while channel.recv_stderr_ready():
                    errors += channel.recv_stderr(65536)
                    got = True
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
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
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


def _upload(sftp, uploads, host, remote_dir):
    """Copy every ``(local, remote)`` pair over ``sftp``; a failed copy is a RemoteError naming the file."""
    from tqdm import tqdm

    for local, remote in tqdm(uploads, desc=f"copy to {host.label}", unit="file", leave=False):
        try:
            sftp.put(str(local), remote)
        except (OSError, EOFError) as exc:
            raise RemoteError(f"{host.label}: copying {local} to {remote} failed ({exc}); check free space on "
                              f"the board (df -h {remote_dir}) and that the directory is writable") from None
