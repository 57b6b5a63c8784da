"""The SSH transport against the rig's real sshd: quoting, files, detached processes, port forwards,
connection reuse, ProxyJump, the agent, and host keys (refused, trusted with the printed command,
accepted on request, changed)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import time
import urllib.request

import pytest

from vlaunch.errors import CommandNotFound, TransportError
from vlaunch.plugins import get_host

HOSTILE = ["plain", "two words", "it's", '"double"', "$(touch {m})", "`touch {m}`", "; touch {m}", "| touch {m}",
           "&& touch {m} &", "*", "~", "$HOME", "back\\slash", "new\nline; touch {m}", "tab\there", "-n", "", "ünï"]


def connect(**spec):
    """An SSH transport, connected the way vlaunch connects a job record's spec."""
    return get_host().transport({"kind": "ssh", **spec})


@pytest.fixture
def host1(home):
    transport = connect(host="vl-host1")
    yield transport
    transport.close()


@pytest.fixture
def marker():
    path = f"/tmp/vlaunch-ssh-marker-{secrets.token_hex(4)}"
    yield path
    assert not os.path.exists(path), "a hostile string was executed"


def test_argv_reaches_the_remote_word_for_word_and_nothing_runs(host1, marker):
    words = [w.format(m=marker) for w in HOSTILE]
    result = host1.run(["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *words])
    assert result.ok, result.stderr
    assert json.loads(result.stdout) == words
    assert host1.run(["id", "-un"]).stdout.strip() == "vltest"


def test_input_exit_status_and_separate_streams(host1):
    result = host1.run(["sh", "-c", "cat; echo oops >&2; exit 3"], input="hello\n")
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello\n", "oops\n")


def test_missing_command_and_timeout_are_clear(host1):
    with pytest.raises(CommandNotFound, match="command not found on vl-host1 .*: no-such-tool"):
        host1.run(["no-such-tool", "--version"])
    started = time.monotonic()
    with pytest.raises(TransportError, match="running sleep did not finish within 1 s"):
        host1.run(["sleep", "4"], timeout=1)
    assert time.monotonic() - started < 3
    assert host1.run(["true"]).ok  # the connection is still good


def test_files_are_atomic_private_and_read_from_an_offset(host1):
    root = f"{host1.home()}/.vlaunch/test-{secrets.token_hex(3)}"
    path = f"{root}/a/b/secret"
    try:
        host1.write_file(path, "first\n", mode=0o600)
        host1.write_file(path, "0123456789", mode=0o600)
        modes = host1.run(["stat", "-c", "%a %n", path, f"{root}/a", f"{root}/a/b"]).stdout.split("\n")
        assert modes[:3] == [f"600 {path}", f"700 {root}/a", f"700 {root}/a/b"]
        assert host1.run(["ls", "-A", f"{root}/a/b"]).stdout.split() == ["secret"]  # no temporary left
        assert host1.read_file(path) == b"0123456789"
        assert host1.read_file(path, 7) == b"789"
        assert host1.read_file(path, 10) == b""
        assert host1.read_file(f"{root}/missing") is None
        big = "x" * 3_000_000
        host1.write_file(path, big)
        assert host1.read_file(path, 1) == big[1:].encode()
    finally:
        host1.run(["rm", "-rf", root])


def test_spawn_detaches_a_new_session_that_outlives_the_connection(home, host1):
    run_dir = f"{host1.home()}/.vlaunch/test-{secrets.token_hex(3)}"
    host1.write_file(f"{run_dir}/job.sh", "echo started in $PWD\nexec sleep 300\n")
    started = time.monotonic()
    pid = host1.spawn(["bash", f"{run_dir}/job.sh"], cwd=run_dir, log=f"{run_dir}/out.log")
    assert time.monotonic() - started < 2
    host1.close()
    again = connect(host="vl-host1")
    try:
        assert again.run(["ps", "-o", "pgid=,sid=", "-p", str(pid)]).stdout.split() == [str(pid), str(pid)]
        assert again.read_file(f"{run_dir}/out.log") == f"started in {run_dir}\n".encode()
        assert again.run(["kill", "-KILL", "--", f"-{pid}"]).ok
        with pytest.raises(TransportError, match="cannot start bash in /nonexistent"):
            again.spawn(["bash", "x"], cwd="/nonexistent", log="/tmp/x.log")
    finally:
        again.run(["rm", "-rf", run_dir])
        again.close()


def _get(address) -> int:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/", timeout=5) as response:
        return response.status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_forward_reaches_the_remote_loopback_until_close(home):
    host2 = connect(host="vl-host2")
    port = _free_port()  # free here; the namespace's loopback is empty
    pid = host2.spawn(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=host2.home(),
                      log=f"{host2.home()}/forward-test.log")
    try:
        address = host2.forward("127.0.0.1", port)
        assert address[0] == "127.0.0.1" and address[1] != port
        assert host2.forward("127.0.0.1", port) == address
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _get(address) == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "the forwarded server never answered"
                time.sleep(0.2)
        with pytest.raises(OSError):  # only the forward reaches the remote loopback
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for _ in range(3):
            time.sleep(0.5)
            assert _get(address) == 200
        assert host2.port_open("127.0.0.1", port)  # what the readiness "port" stage asks: the far side
        assert not host2.port_open("127.0.0.1", _free_port())
    finally:
        host2.run(["kill", "--", f"-{pid}"])
        host2.close()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()


def test_one_login_serves_every_call_of_a_transport(home, rig):
    before = rig.logins(1)
    transport = connect(host="vl-host1")
    try:
        path = f"{transport.home()}/.vlaunch/reuse-{secrets.token_hex(3)}"
        for i in range(5):
            assert transport.run(["echo", str(i)]).stdout == f"{i}\n"
        transport.write_file(path, "x")
        assert transport.read_file(path) == b"x"
        transport.run(["rm", "-f", path])
    finally:
        transport.close()
    assert rig.logins(1) - before == 1


def test_proxyjump_reaches_a_host_only_the_jump_host_sees(home, rig):
    with pytest.raises(OSError):  # nothing on this machine's port 22: vl-inner is the namespace's own loopback
        socket.create_connection(("127.0.0.1", 22), timeout=2).close()
    jumps_before, inner_before = rig.logins(2), (rig.root / "sshd2.log").read_text().count("Connection from 127.0.0.1")
    transport = connect(host="vl-inner")
    try:
        assert rig.host2 in transport.run(["hostname", "-I"]).stdout
    finally:
        transport.close()
    assert rig.logins(2) - jumps_before == 2  # the jump host, then the inner host through it
    assert (rig.root / "sshd2.log").read_text().count("Connection from 127.0.0.1") == inner_before + 1


def test_keys_from_the_ssh_agent(home, rig, tmp_path, monkeypatch):
    spec = dict(host="127.0.0.1", port=rig.port, user=rig.user, known_hosts=str(rig.client / "known_hosts"))
    with pytest.raises(TransportError, match="no key to offer vltest@127.0.0.1:2222: no identity file"):
        connect(**spec)  # no agent, no key in ~/.ssh
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        subprocess.run(["ssh-add", "-q", str(rig.client / "id_ed25519")], check=True, capture_output=True)
        transport = connect(**spec)
        assert transport.run(["id", "-un"]).stdout.strip() == rig.user
        transport.close()
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_describe_keeps_what_it_takes_to_reconnect(home, rig, tmp_path):
    known = tmp_path / "known_hosts"
    explicit = dict(host="127.0.0.1", port=rig.port, user=rig.user, identity_file=str(rig.client / "id_ed25519"),
                    known_hosts=str(known), accept_new_host_key=True)
    first = connect(**explicit)
    spec = first.describe()
    first.close()
    assert spec == {"kind": "ssh", **{k: v for k, v in explicit.items() if k != "accept_new_host_key"}}
    again = connect(**spec)
    assert again.run(["true"]).ok
    again.close()
    alias = connect(host="vl-host1")
    assert alias.describe() == {"kind": "ssh", "host": "vl-host1"}
    alias.close()


def _fingerprint(rig, n: int) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(rig.root / f"host{n}_key.pub")], capture_output=True, text=True)
    return out.stdout.split()[1]


def test_unknown_host_is_refused_then_trusted_with_the_printed_command(home, rig, tmp_path):
    known = tmp_path / "known_hosts"
    with pytest.raises(TransportError) as refused:
        connect(host="vl-host1", known_hosts=str(known))
    message = str(refused.value)
    assert "host key of vl-host1 (vltest@127.0.0.1:2222) is unknown" in message
    assert f"ssh-ed25519 {_fingerprint(rig, 1)}" in message
    assert not known.exists()
    command = shlex.split(message.split("trust it with: ")[1].split(" (or, ")[0])
    assert command[-2:] == ["vl-host1", "true"] and "StrictHostKeyChecking=accept-new" in command
    # OpenSSH reads the passwd home's config, not $HOME's: point it at ours, never prompt, and hash
    # the recorded name as Debian's /etc/ssh/ssh_config does (paramiko must read hashed entries).
    command[1:1] = ["-F", str(home / ".ssh" / "config"), "-o", "BatchMode=yes", "-o", "HashKnownHosts=yes"]
    assert subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    assert known.read_text().startswith("|1|")
    transport = connect(host="vl-host1", known_hosts=str(known))
    assert transport.run(["true"]).ok
    transport.close()


def test_accept_new_host_key_records_it_and_says_so(home, rig, tmp_path, capsys):
    known = tmp_path / "sub" / "known_hosts"
    connect(host="vl-host1", known_hosts=str(known), accept_new_host_key=True).close()
    assert known.read_text() == f"[127.0.0.1]:{rig.port} {rig.host_key(1)}\n"
    assert known.stat().st_mode & 0o777 == 0o600
    assert f"trusted the new host key of vl-host1 (vltest@127.0.0.1:{rig.port})" in capsys.readouterr().err
    connect(host="vl-host1", known_hosts=str(known)).close()
    assert len(known.read_text().splitlines()) == 1


def test_changed_host_key_is_refused_even_with_accept_new(home, rig, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{rig.port} {rig.host_key(2)}\n")
    with pytest.raises(TransportError) as refused:
        connect(host="vl-host1", known_hosts=str(known), accept_new_host_key=True)
    message = str(refused.value)
    assert "host key of vl-host1 (vltest@127.0.0.1:2222) has CHANGED" in message
    assert _fingerprint(rig, 1) in message and _fingerprint(rig, 2) in message
    assert f"ssh-keygen -R '[127.0.0.1]:{rig.port}' -f {known}" in message
    assert known.read_text() == f"[127.0.0.1]:{rig.port} {rig.host_key(2)}\n"


def test_passphrase_protected_key_points_to_the_agent(home, tmp_path):
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True)
    with pytest.raises(TransportError, match=f"protected by a passphrase; add it to ssh-agent: ssh-add {key}"):
        connect(host="vl-host1", identity_file=str(key))
