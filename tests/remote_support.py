"""Real OpenSSH servers on 127.0.0.1 for the ``sea-tf device`` tests (no mocks).

:func:`start_sshd` starts ``sshd -D -e -f <own config>`` on a free port with a throwaway host key
and one authorized user key; ``extra`` config lines make the faulty servers the fault tests need
(a broken SFTP subsystem, a second authentication factor). :func:`session_processes` finds the
per-connection sshd processes, so a test can SIGSTOP the one serving it (a board that stopped
answering while its TCP stack still acknowledges).
"""
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_sshd():
    """Path of the OpenSSH server, or None."""
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None)


class SSHServer:
    """A running sshd: ``info`` is the dict the tests use (port, user, key, known_hosts, ...)."""

    def __init__(self, proc, info, log):
        self.proc, self.info, self._log = proc, info, log

    def stop(self):
        for pid in session_processes(self.proc.pid):   # a stopped session must not outlive the test
            _signal(pid, signal.SIGCONT)
            _signal(pid, signal.SIGKILL)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._log.close()


def start_sshd(d, extra=(), keys_from=None):
    """Start an sshd whose files live in ``d``; returns an :class:`SSHServer`.

    Parameters
    ----------
    d : Path
        Empty directory for the keys, config, pid file and log.
    extra : sequence of str
        More sshd_config lines; a later keyword does not override an earlier one in sshd_config,
        so these go first.
    keys_from : dict, optional
        ``info`` of another server whose host and user keys to reuse (one known_hosts, one --key).
    """
    exe = find_sshd()
    if exe is None:
        raise FileNotFoundError("OpenSSH sshd not found")
    d = Path(d)
    if keys_from:
        for name in ("host_key", "user_key", "other_key"):
            for suffix in ("", ".pub"):
                shutil.copy(keys_from["dir"] / f"{name}{suffix}", d / f"{name}{suffix}")
    else:
        for name in ("host_key", "user_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = free_port()
    cfg = d / "sshd_config"
    cfg.write_text("\n".join([
        *extra, f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin yes", "StrictModes no", "UsePAM no",
        *([] if any(line.startswith("Subsystem sftp") for line in extra) else ["Subsystem sftp internal-sftp"]),
        "LogLevel VERBOSE", "MaxStartups 50", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege-separation directory sshd insists on
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([exe, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()}")
            time.sleep(0.1)
    key_type, key_b64 = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {key_type} {key_b64}\n")
    fp = subprocess.run(["ssh-keygen", "-lf", str(d / "host_key.pub")], capture_output=True, text=True).stdout.split()[1]
    info = {"port": port, "user": getpass.getuser(), "key": d / "user_key", "other_key": d / "other_key",
            "known_hosts": d / "known_hosts", "fingerprint": fp, "dir": d, "log": d / "sshd.log",
            "host_key_line": f"{key_type} {key_b64}", "pid": proc.pid}
    return SSHServer(proc, info, log)


def _children():
    """``{ppid: [pid, ...]}`` of every process, from /proc."""
    tree = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(pid))
    return tree


def session_processes(master_pid):
    """Every process below the listening sshd ``master_pid``: the per-connection sshd processes
    and what they run."""
    tree, found, todo = _children(), [], [master_pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def processes_with(text):
    """PIDs whose command line contains ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(pid))
    return found


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
