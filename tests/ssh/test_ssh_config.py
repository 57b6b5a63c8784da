"""How a host is resolved from ~/.ssh/config and explicit settings, without connecting; and that
commands which involve no SSH job never load paramiko."""

from __future__ import annotations

import subprocess
import sys

import paramiko
import pytest

from helpers import assert_one_line_error, vlaunch
from vlaunch.errors import TransportError
from vlaunch_ssh.backend import SSHBackend, SSHOptions, SSHTarget
from vlaunch_ssh.connect import _hops, resolve

CONFIG = """
Host gpu
  HostName gpu.example.org
  User alice
  Port 2200
  IdentityFile ~/.ssh/gpu_key
  UserKnownHostsFile ~/.ssh/kh_a ~/.ssh/kh_b
  ConnectTimeout 4
Host inner
  HostName 10.0.0.5
  ProxyJump bob@bastion:2222,gpu
Host *
  User carol
"""


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "gpu_key").write_text("not parsed here")
    return paramiko.SSHConfig.from_text(CONFIG)


def test_alias_settings_come_from_the_config(config, tmp_path):
    dest = resolve(SSHTarget(host="gpu"), config)
    assert (dest.hostname, dest.port, dest.user) == ("gpu.example.org", 2200, "alice")
    assert dest.identity_files == (str(tmp_path / ".ssh" / "gpu_key"),)
    assert dest.known_hosts == (str(tmp_path / ".ssh" / "kh_a"), str(tmp_path / ".ssh" / "kh_b"))
    assert dest.timeout == 4.0 and dest.proxy_jump is None
    assert dest.label == "gpu (alice@gpu.example.org:2200)"
    assert dest.ssh_command("-N", remote=("true",)) == "ssh -N gpu true"


def test_explicit_settings_win_and_are_repeated_in_printed_commands(config, tmp_path):
    key = tmp_path / "other key"
    key.write_text("x")
    target = SSHTarget(host="dave@gpu", port=22, identity_file=str(key), known_hosts="~/kh")
    dest = resolve(target, config)
    assert (dest.user, dest.port, dest.identity_files, dest.known_hosts) == (
        "dave", 22, (str(key),), (str(tmp_path / "kh"),))
    assert dest.ssh_command() == f"ssh -p 22 -l dave -i '{key}' -o UserKnownHostsFile={tmp_path}/kh gpu"
    assert resolve(SSHTarget(host="gpu", connect_timeout=2), config).timeout == 2.0


def test_unknown_alias_is_a_host_name_with_the_wildcard_user(config, tmp_path):
    dest = resolve(SSHTarget(host="ws1.lab"), config)
    assert (dest.hostname, dest.port, dest.user) == ("ws1.lab", 22, "carol")
    assert dest.known_hosts == (str(tmp_path / ".ssh" / "known_hosts"),)
    assert dest.label == "carol@ws1.lab:22"


def test_proxyjump_chain_in_connection_order(config):
    target = SSHTarget(host="inner")
    chain = _hops(resolve(target, config), target, config)
    assert [(d.user, d.hostname, d.port) for d in chain] == [
        ("bob", "bastion", 2222), ("alice", "gpu.example.org", 2200), ("carol", "10.0.0.5", 22)]


def test_missing_identity_file_is_named(config):
    with pytest.raises(TransportError, match="identity file /nonexistent/key does not exist"):
        resolve(SSHTarget(host="gpu", identity_file="/nonexistent/key"), config)


def test_transport_spec_from_backend_options():
    spec = SSHBackend().transport_spec(SSHOptions(host="gpu", port=2200, kill_grace=3))
    assert spec == {"kind": "ssh", "host": "gpu", "port": 2200}


def test_ssh_backend_without_host_or_with_via_is_refused(isolated):
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "m", "--no-check-flags")
    assert_one_line_error(result, "backend ssh needs a host: --set backend.ssh.host=HOST")
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "m", "--no-check-flags",
                     "--set", "backend.ssh.host=gpu", "--via", "login1")
    assert_one_line_error(result, "backend ssh chooses its own host; --via does not apply")
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "m", "--set", "backend.ssh.prot=22")
    assert_one_line_error(result, "backend.ssh.prot: unknown key", "port")
    assert "no jobs" in vlaunch("status").stdout


def test_render_and_status_do_not_load_paramiko(isolated):
    # With an absolute run root render needs nothing of the host (without one it asks the host for its home).
    code = ("import sys; from vlaunch.cli import main; "
            "main(['render', '-p', 'cpu-tiny', '--on', 'gpubox', '--model', 'm', '--run-root', '/scratch/runs']);"
            " main(['status']); "
            "print('paramiko loaded:', 'paramiko' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "backend ssh" in result.stdout and "no jobs" in result.stdout
    assert "paramiko loaded: False" in result.stderr
