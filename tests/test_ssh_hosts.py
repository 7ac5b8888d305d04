"""``--host`` through an ssh_config file (sea_tf/ssh_hosts.py), read with paramiko's SSHConfig: no server needed.

The journey tests/journeys/test_journey_f_ssh_config_alias.py connects through these to a real sshd.
"""
import getpass

import pytest

from sea_tf.errors import RemoteError
from sea_tf.ssh_hosts import resolve_host

CONFIG = """\
Host board
    HostName 127.0.0.1
    User pi
    Port 2222
    IdentityFile ~/keys/board_%h
    ProxyJump admin@gateway:2200

Host gateway
    HostName 127.0.0.2
    IdentityFile /keys/gw

Host chain
    HostName 10.9.8.7
    ProxyJump gateway,inner

Host inner
    HostName 10.1.1.1
    User in

Host loop
    ProxyJump loop

Host *
    IdentityFile /keys/all
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    return path


def test_alias_gives_hostname_user_port_identityfile_and_jump(config, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    host = resolve_host("board", ssh_config=config)
    assert (host.user, host.host, host.port, host.alias) == ("pi", "127.0.0.1", 2222, "board")
    assert host.identity_files == (str(tmp_path / "keys" / "board_127.0.0.1"), "/keys/all")  # ~ and %h expanded
    jump = host.jump
    assert (jump.user, jump.host, jump.port, jump.alias, jump.jump) == ("admin", "127.0.0.2", 2200, "gateway", None)
    assert jump.identity_files == ("/keys/gw", "/keys/all")
    assert host.known_hosts_name == "[127.0.0.1]:2222" and host.label == "pi@127.0.0.1:2222"
    assert host.route == "board (pi@127.0.0.1:2222 via admin@127.0.0.2:2200)"


def test_command_line_wins_over_the_file(config):
    host = resolve_host("root@board:2022", port=2111, ssh_config=config)
    assert (host.user, host.port) == ("root", 2022)     # USER@ and :PORT beat User and Port
    assert resolve_host("board", port=2111, ssh_config=config).port == 2111   # --port beats Port
    plain = resolve_host("127.0.0.1", ssh_config=config)   # no Host entry: the name itself, ssh's user
    assert (plain.user, plain.host, plain.port, plain.alias) == (getpass.getuser(), "127.0.0.1", 22, None)


def test_proxyjump_chain_goes_through_each_hop_in_order(config):
    host = resolve_host("chain", ssh_config=config)
    assert host.host == "10.9.8.7"
    assert (host.jump.user, host.jump.host) == ("in", "10.1.1.1")       # the last hop, reached through...
    assert host.jump.jump.host == "127.0.0.2" and host.jump.jump.jump is None   # ...the first


def test_proxyjump_loop_is_an_error(config):
    with pytest.raises(RemoteError, match="ProxyJump .* more than 8 hops"):
        resolve_host("loop", ssh_config=config)


def test_unresolvable_and_missing(config, tmp_path):
    with pytest.raises(RemoteError, match=r"no Host entry in .*ssh_config matches it and nowhere\.invalid does not resolve"):
        resolve_host("pi@nowhere.invalid", ssh_config=config)
    with pytest.raises(RemoteError, match="--ssh-config .*absent: file not found"):
        resolve_host("board", ssh_config=tmp_path / "absent")
    with pytest.raises(RemoteError, match="expected USER@HOST"):
        resolve_host("pi@", ssh_config=config)


def test_a_name_idna_cannot_encode_does_not_resolve(config):
    """A DNS label over 63 characters fails in the IDNA codec (UnicodeError, which has no strerror)
    before any lookup: one RemoteError, not an internal error."""
    with pytest.raises(RemoteError, match=r"x{64}\.lan does not resolve \(encoding with 'idna' codec failed"):
        resolve_host("pi@" + "x" * 64 + ".lan", ssh_config=config)


def test_the_default_config_is_home_ssh_config_unless_sea_tf_ssh_config_says(config, monkeypatch, tmp_path):
    """Without --ssh-config: ~/.ssh/config as ssh reads it; $SEA_TF_SSH_CONFIG replaces it (the suite sets
    it to /dev/null so that a developer's own ~/.ssh/config cannot change how the tests connect)."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(CONFIG)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SEA_TF_SSH_CONFIG")
    assert resolve_host("board").host == "127.0.0.1"          # ~/.ssh/config's Host entry
    monkeypatch.setenv("SEA_TF_SSH_CONFIG", "/dev/null")
    with pytest.raises(RemoteError, match="does not resolve"):
        resolve_host("board")                                   # no file: the alias is a DNS name
