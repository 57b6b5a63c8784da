"""The ``ssh`` backend through the real CLI, against the rig's second host (its own network namespace)
and the fast fake server: the whole lifecycle, hostile strings, and every kind of bad input."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import BIN, assert_one_line_error, fake_command, live_group_members, vlaunch

FAKE = ["-p", "cpu-tiny", "-b", "ssh", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


def up(name: str, *args, host: str = "vl-host2", timeout: float = 120):
    return vlaunch("up", *FAKE, "--name", name, "--set", f"backend.ssh.host={host}", *args, timeout=timeout)


def record(name: str, refresh: bool = True) -> dict:
    args = ["status", "--json", name] + ([] if refresh else ["--no-refresh"])
    return json.loads(vlaunch(*args).stdout)[0]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.fixture
def marker():
    path = Path(f"/tmp/vlaunch-ssh-marker-{secrets.token_hex(4)}")
    yield path
    assert not path.exists(), "a hostile string was executed"


def test_up_status_logs_down_through_one_connection(remote_env, rig):
    name = unique("fake")
    logins = rig.logins(2)
    result = up(name)
    assert result.returncode == 0, result.stderr
    assert rig.logins(2) - logins == 1  # preflight, upload, start, polls and the forward share one login
    assert f"job {name} is ready: http://127.0.0.1:" in result.stdout
    assert "accepting connections (seen through the ssh transport)" in result.stderr  # the port stage asks the far side
    job = record(name)
    assert job["transport"] == {"kind": "ssh", "host": "vl-host2"}
    assert job["run_dir"] == f"{rig.remote_home}/.vlaunch/runs/{name}"
    assert job["state"] == "RUNNING" and job["ready_at"] and job["host"] == "127.0.0.1"
    with pytest.raises(OSError):  # bound to the remote host's own loopback: only the forward reaches it
        socket.create_connection(("127.0.0.1", job["port"]), timeout=2).close()
    run_dir = Path(job["run_dir"])
    assert (run_dir / "api_key.yaml").stat().st_mode & 0o777 == 0o600
    assert run_dir.stat().st_mode & 0o777 == 0o700 and run_dir.owner() == rig.user
    assert "fake vllm serving tiny" in vlaunch("logs", name).stdout
    _tunnel_forwards_until_interrupted(name)
    follower = subprocess.Popen([str(BIN / "vlaunch"), "logs", "-f", name], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    down = vlaunch("down", name)
    assert down.returncode == 0 and "CANCELLED" in down.stdout
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "vlaunch: server exited with status" in out
    assert not live_group_members(job["native_id"])  # the namespace shares this machine's process table
    assert record(name)["state"] == "CANCELLED"  # the follower's refresh starts from the stored record
    assert vlaunch("forget", name).returncode == 0
    again = up(name)  # the remote run directory still holds the old rendezvous and exit marker
    assert_one_line_error(again, f"{job['run_dir']} holds the files of an earlier job named {name}")


def _tunnel_forwards_until_interrupted(name: str) -> None:
    """`vlaunch tunnel` keeps the transport's forward open until Ctrl-C, then closes it: on the first
    Ctrl-C, within 2 s, even with a connection through it still open, and even when it was started with
    SIGINT ignored (as a background job of a script is; Python then installs no Ctrl-C handler)."""
    tunnel = subprocess.Popen([str(BIN / "vlaunch"), "tunnel", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url = tunnel.stdout.readline().split()[1]  # "forwarding http://127.0.0.1:PORT -> ..."
        for _ in range(3):
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                assert response.status == 200
            time.sleep(0.5)
        host, port = url.removeprefix("http://").split(":")
        in_use = socket.create_connection((host, int(port)), timeout=5)
        in_use.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a request still being written
    finally:
        interrupted = time.monotonic()
        tunnel.send_signal(signal.SIGINT)
        try:
            _, err = tunnel.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            tunnel.send_signal(signal.SIGABRT)  # faulthandler prints where each thread is stuck
            pytest.fail(f"the tunnel did not stop within 30 s of Ctrl-C:\n{tunnel.communicate(timeout=30)[1]}")
    took = time.monotonic() - interrupted
    assert tunnel.returncode == 130 and "Traceback" not in err
    assert took < 2, f"the tunnel took {took:.1f} s to stop after Ctrl-C"
    try:  # the open connection was ended (closed, or reset with its request unread), not left hanging
        assert in_use.recv(1) == b""
    except ConnectionResetError:
        pass
    in_use.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=5)


def test_hostile_model_name_and_flags_stay_one_literal_argument(remote_env, marker):
    name = unique("hostile")
    argv_file = f"/tmp/vlaunch-argv-{name}.json"
    model = f"evil'; touch {marker}; echo '$(touch {marker})`touch {marker}`"
    served = f"tiny && touch {marker} | $(touch {marker})"
    flag = f'auto"; touch {marker}; "'
    result = vlaunch("up", *FAKE, "--name", name, "--model", model, "--set", "backend.ssh.host=vl-host2",
                     "--set", f"server.served_model_name={json.dumps(served)}",
                     "--set", f"environment.variables.FAKE_ARGV_FILE={argv_file}", "--", "--tokenizer-mode", flag,
                     timeout=120)
    assert result.returncode == 0, result.stderr  # /v1/models listed the hostile served name verbatim
    try:
        argv = json.loads(Path(argv_file).read_text())
        for option, value in (("--model", model), ("--served-model-name", served), ("--tokenizer-mode", flag)):
            assert argv[argv.index(option) + 1] == value
    finally:
        Path(argv_file).unlink(missing_ok=True)
    assert vlaunch("down", name).returncode == 0


def test_unknown_host_key_is_refused_with_the_trust_command_then_accepted_on_request(home, remote_env, tmp_path, rig):
    known = tmp_path / "known_hosts"
    name = unique("newkey")
    result = up(name, "--set", f"backend.ssh.known_hosts={known}")
    assert_one_line_error(result, "host key of vl-host2", "is unknown", "SHA256:",
                          "ssh -o UserKnownHostsFile=", "StrictHostKeyChecking=accept-new vl-host2 true",
                          "backend.ssh.accept_new_host_key=true")
    assert "no jobs" in vlaunch("status").stdout and not known.exists()
    result = up(name, "--set", f"backend.ssh.known_hosts={known}", "--set", "backend.ssh.accept_new_host_key=true")
    assert result.returncode == 0, result.stderr
    assert "trusted the new host key of vl-host2" in result.stderr
    assert known.read_text() == f"{rig.host2} {rig.host_key(2)}\n"
    assert "accept_new_host_key" not in record(name)["transport"]
    assert vlaunch("down", name).returncode == 0


def test_wrong_key_is_an_authentication_failure(home, remote_env, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    result = up(unique("wrongkey"), "--set", f"backend.ssh.identity_file={key}")
    assert_one_line_error(result, "vl-host2 (vltest@10.200.0.2:22) refused authentication as 'vltest'", str(key))


def test_unreachable_hosts_fail_fast_and_clearly(home, remote_env, rig):
    started = time.monotonic()
    result = up(unique("refused"), "--set", "backend.ssh.port=2299", "--set", "backend.ssh.user=vltest",
                host="127.0.0.1")
    assert_one_line_error(result, "cannot reach vltest@127.0.0.1:2299", "connection refused")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    result = up(unique("blackhole"), "--set", "backend.ssh.connect_timeout=2", "--set", "backend.ssh.user=vltest",
                host="10.200.0.99")
    assert_one_line_error(result, "cannot reach vltest@10.200.0.99:22")
    assert time.monotonic() - started < 8
    assert "no jobs" in vlaunch("status").stdout


def test_remote_without_vllm_names_the_remote_python(home):
    name = unique("novllm")
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "m", "--no-check-flags", "--name", name,
                     "--set", "backend.ssh.host=vl-host2")
    assert_one_line_error(result, "the remote Python /usr/bin/python3 on vl-host2 has no module 'vllm'",
                          "environment.setup")
    job = record(name)
    assert job["state"] == "FAILED" and "has no module 'vllm'" in job["reason"]
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "m", "--no-check-flags",
                     "--set", "backend.ssh.host=vl-host2", "--set", 'server.command=["vllm", "serve"]')
    assert_one_line_error(result, "'vllm' is not on the PATH of vl-host2")


def _session_monitors(rig) -> list[str]:
    """The per-connection sshd processes under the namespace host's listener."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(rig.sshd_pid(2))], capture_output=True, text=True)
    return out.stdout.split()


def test_connection_dropped_while_waiting_keeps_the_job_and_status_recovers_it(remote_env, rig):
    name = unique("dropped")
    rendezvous = rig.remote_home / ".vlaunch" / "runs" / name / "rendezvous.json"
    waiting = subprocess.Popen([str(BIN / "vlaunch"), "up", *FAKE, "--name", name, "--set", "backend.ssh.host=vl-host2",
                                "--set", 'environment.variables.FAKE_HEALTH_DELAY="600"',
                                "--set", "readiness.http_timeout=600"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not rendezvous.exists():
        assert waiting.poll() is None and time.monotonic() < deadline, "the job never published its address"
        time.sleep(0.2)
    time.sleep(1)
    subprocess.run(["kill", *_session_monitors(rig)], check=True)
    dropped = time.monotonic()
    out, err = waiting.communicate(timeout=60)
    assert time.monotonic() - dropped < 10
    assert_one_line_error(subprocess.CompletedProcess(waiting.args, waiting.returncode, out, err),
                          "the ssh connection to vl-host2 (vltest@10.200.0.2:22) was lost")
    kept = record(name, refresh=False)
    assert kept["state"] in ("PENDING", "RUNNING") and not kept["ready_at"]
    assert live_group_members(kept["native_id"])
    assert record(name)["state"] == "RUNNING"
    down = vlaunch("down", name)
    assert down.returncode == 0 and "CANCELLED" in down.stdout
    assert not live_group_members(kept["native_id"])
