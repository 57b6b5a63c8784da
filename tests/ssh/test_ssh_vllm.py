"""End to end over SSH with the real CPU vLLM (one start): `vlaunch up --backend ssh` on the rig's
namespace host, ready through the SSH forward, a completion, logs, and `down` leaving nothing."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from chaos import kill_and_check
from helpers import BIN, live_group_members, vlaunch

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def env(rig, tmp_path_factory):
    """State, config and a laptop HOME (with the rig's ssh aliases) shared by this module's tests."""
    root = tmp_path_factory.mktemp("ssh-vllm")
    (root / "home" / ".ssh").mkdir(parents=True)
    shutil.copy(rig.client / "ssh_config", root / "home" / ".ssh" / "config")
    return {"VLAUNCH_STATE_DIR": str(root / "state"), "VLAUNCH_CONFIG_DIR": str(root / "config"),
            "HOME": str(root / "home")}


@pytest.fixture(scope="module")
def remote_model(rig, tiny_model) -> str:
    """The tiny model placed on the remote host, owned by the remote user (as on a real workstation)."""
    target = rig.remote_home / "vlaunch-test-models" / "tiny"
    shutil.copytree(tiny_model, target, dirs_exist_ok=True)
    subprocess.run(["chown", "-R", f"{rig.user}:", str(target.parent)], check=True)
    return str(target)


@pytest.fixture(scope="module")
def name() -> str:
    """A name no earlier run used: the remote run directory outlives the local registry."""
    return f"ssh-real-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def job(env, remote_model, name):
    """The one real vLLM start over SSH (brought down by the last test, or here if that failed)."""
    setup = f'export PATH={shlex.quote(str(BIN))}:"$PATH"'
    started = time.monotonic()
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--set", "backend.ssh.host=vl-host2",
                     "--model", remote_model, "--name", name, "--no-wait",
                     "--set", f"environment.setup={json.dumps([setup])}", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    while time.monotonic() - started < 600:  # each status looks through the SSH transport, as up would
        record = json.loads(vlaunch("status", "--json", name, env=env).stdout)[0]
        if record["ready_at"] or record["state"] not in ("PENDING", "RUNNING"):
            break
        time.sleep(1)
    print(f"\nssh e2e: `vlaunch up --backend ssh --no-wait`, real vLLM ready in `vlaunch status` after"
          f" {time.monotonic() - started:.1f} s")
    yield record
    vlaunch("down", name, env=env)


def _post(base: str, body: dict, key: str) -> dict:
    request = urllib.request.Request(f"{base}/v1/completions", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return json.load(urllib.request.urlopen(request, timeout=60))


def test_ready_on_the_remote_loopback_only(job, rig):
    assert job["state"] == "RUNNING" and job["ready_at"] and job["transport"] == {"kind": "ssh", "host": "vl-host2"}
    assert job["host"] == "127.0.0.1" and "--host 127.0.0.1" in job["command"]
    assert job["run_dir"] == f"{rig.remote_home}/.vlaunch/runs/{job['name']}"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", job["port"]), timeout=2).close()


def test_completion_through_the_transport_forward(job, name, env, monkeypatch):
    from vlaunch.plugins import get_host

    monkeypatch.setenv("HOME", env["HOME"])
    key = (Path(env["VLAUNCH_STATE_DIR"]) / "jobs" / f"{name}.key").read_text().strip()
    started = time.monotonic()
    transport = get_host().transport(job["transport"])
    print(f"\nssh e2e: connect + authenticate to vl-host2 in {time.monotonic() - started:.3f} s")
    try:
        host, port = transport.forward(job["host"], job["port"])
        answer = _post(f"http://{host}:{port}", {"model": "tiny", "prompt": "Hello", "max_tokens": 4}, key)
        assert answer["usage"]["completion_tokens"] == 4 and answer["model"] == "tiny"
    finally:
        transport.close()


def test_the_printed_ssh_tunnel_command_reaches_the_server(job, name, env, rig, monkeypatch):
    from vlaunch.plugins import get_host

    monkeypatch.setenv("HOME", env["HOME"])
    key = (Path(env["VLAUNCH_STATE_DIR"]) / "jobs" / f"{name}.key").read_text().strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    transport = get_host().transport(job["transport"])
    command = shlex.split(transport.tunnel_command(job["host"], job["port"], local))
    transport.close()
    assert command[:4] == ["ssh", "-N", "-L", f"{local}:127.0.0.1:{job['port']}"] and command[-1] == "vl-host2"
    # OpenSSH reads the passwd home's config, not $HOME's: point it at the laptop's.
    command[1:1] = ["-F", os.path.join(env["HOME"], ".ssh", "config"), "-o", "BatchMode=yes",
                    "-o", "ExitOnForwardFailure=yes"]
    tunnel = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = _post(f"http://127.0.0.1:{local}", {"model": "tiny", "prompt": "Hi", "max_tokens": 2}, key)
                break
            except OSError:
                assert tunnel.poll() is None and time.monotonic() < deadline, tunnel.stderr.read()
                time.sleep(0.2)
        assert answer["usage"]["completion_tokens"] == 2
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=10)


def test_logs_come_from_the_remote(job, name, env):
    text = vlaunch("logs", name, env=env).stdout
    assert "vlaunch: job starting on" in text and "Application startup complete" in text


def test_down_leaves_nothing_running(job, name, env, rig):
    down = vlaunch("down", name, env=env)
    assert down.returncode == 0 and "CANCELLED" in down.stdout
    assert not live_group_members(job["native_id"])
    remote = subprocess.run(["ps", "-u", rig.user, "-o", "stat=,args="], capture_output=True, text=True).stdout
    assert not [line for line in remote.splitlines() if "vllm" in line and not line.startswith("Z")]


def test_kill_9_of_a_worker_fails_the_job_and_leaves_nothing(env, remote_model):
    """The chaos suite's real-vLLM case here (each backend's real-vLLM module kills another role)."""
    name = f"ssh-chaos-{secrets.token_hex(3)}"
    setup = f'export PATH={shlex.quote(str(BIN))}:"$PATH"'
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--set", "backend.ssh.host=vl-host2", "--model",
                     remote_model, "--name", name, "--set", f"environment.setup={json.dumps([setup])}", env=env,
                     timeout=900)
    assert result.returncode == 0, result.stderr
    kill_and_check(name, "worker", env)
