"""The whole up/status/logs/down path on the local backend, against the fast fake server.

These cover plumbing and readiness edge cases; test_local_vllm.py does the same against real vLLM.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

from helpers import BIN, assert_one_line_error, fake_command, live_group_members, vlaunch

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


def up(*args, env=None):
    return vlaunch("up", *FAKE, *args, env=env, timeout=120)


def records():
    return {r["name"]: r for r in json.loads(vlaunch("status", "--json").stdout)}


def test_up_status_logs_down(isolated):
    result = up("--name", "fake1")
    assert result.returncode == 0, result.stderr
    for stage in ("queued", "process", "port", "health", "models", "completion"):
        assert f"  {stage}" in result.stderr and "passed" in result.stderr
    assert "job fake1 is ready: http://127.0.0.1:" in result.stdout
    assert 'OPENAI_API_KEY="$(cat ' in result.stdout
    job = records()["fake1"]
    assert job["state"] == "RUNNING" and job["ready_at"] and job["served_model_name"] == "tiny"
    assert (isolated / "state" / "jobs" / "fake1.key").stat().st_mode & 0o777 == 0o600
    assert "fake vllm serving tiny" in vlaunch("logs", "fake1").stdout
    assert live_group_members(job["native_id"])
    down = vlaunch("down", "fake1")
    assert down.returncode == 0 and "CANCELLED" in down.stdout
    assert not live_group_members(job["native_id"])
    assert records()["fake1"]["state"] == "CANCELLED"
    again = vlaunch("down", "fake1")
    assert again.returncode == 0 and "CANCELLED" in again.stdout


def test_server_dying_at_start_fails_fast_with_exit_code_and_log_tail(isolated):
    started = time.monotonic()
    result = up("--name", "dies", env={"FAKE_EXIT_CODE": "3"})
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    assert "exited with status 3" in result.stderr and "failing at start-up as asked" in result.stderr
    assert "Traceback" not in result.stderr
    job = records()["dies"]
    assert job["state"] == "FAILED" and job["exit_code"] == 3


def test_broken_engine_caught_by_probe_completion_and_job_cancelled(isolated):
    result = up("--name", "broken", "--set", "readiness.http_timeout=3", env={"FAKE_COMPLETION_STATUS": "500"})
    assert_one_line_error(result, "stage 'completion'", "answered 500", "job was cancelled")
    job = records()["broken"]
    assert job["state"] == "CANCELLED"
    assert not live_group_members(job["native_id"])


def test_slow_health_is_waited_for(isolated):
    result = up("--name", "slow", env={"FAKE_HEALTH_DELAY": "2"})
    assert result.returncode == 0, result.stderr
    health = [line for line in result.stderr.splitlines() if "health" in line and "passed" in line][0]
    assert float(health.split()[2].rstrip("s")) >= 1.5
    vlaunch("down", "slow")


def test_probe_completion_can_be_switched_off(isolated):
    result = up("--name", "nocomp", "--set", "readiness.probe_completion=false", env={"FAKE_COMPLETION_STATUS": "500"})
    assert result.returncode == 0, result.stderr
    assert "completion skipped" in result.stderr
    vlaunch("down", "nocomp")


def test_busy_port_refused_before_launch(isolated):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = up("--port", str(port))
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is not free")
    assert vlaunch("status", "--json").stdout.strip() == "[]"


def test_no_wait_then_status_follows(isolated):
    result = up("--name", "later", "--no-wait")
    assert result.returncode == 0 and "submitted" in result.stdout
    deadline = time.monotonic() + 30
    while records()["later"]["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert records()["later"]["state"] == "RUNNING"
    assert vlaunch("down", "later").returncode == 0


def test_timeout_cancels_unless_kept(isolated):
    result = up("--name", "patience", "--timeout", "1", env={"FAKE_HEALTH_DELAY": "60"})
    assert_one_line_error(result, "not ready", "job was cancelled")
    assert records()["patience"]["state"] == "CANCELLED"
    kept = up("--name", "kept", "--timeout", "1", "--keep-on-failure", env={"FAKE_HEALTH_DELAY": "60"})
    assert_one_line_error(kept, "not ready")
    assert records()["kept"]["state"] == "RUNNING"
    assert vlaunch("down", "kept").returncode == 0


def test_port_with_only_time_wait_connections_is_free(isolated):
    """Right after a server on a fixed port stops, its closed connections linger in TIME_WAIT."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn (vLLM's server) does
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end of the connection enters TIME_WAIT
        client.close()
    result = up("--name", "samebind", "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"http://127.0.0.1:{port}/v1" in result.stdout
    assert vlaunch("down", "samebind").returncode == 0


def test_status_watch_redraws_until_ready_with_model_and_age(isolated):
    starting = subprocess.Popen([str(BIN / "vlaunch"), "up", *FAKE, "--name", "w"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "FAKE_HEALTH_DELAY": "4"})
    deadline = time.monotonic() + 60
    while not (isolated / "state" / "jobs" / "w.json").exists():
        assert time.monotonic() < deadline and starting.poll() is None, starting.communicate()
        time.sleep(0.1)
    watch = vlaunch("status", "--watch", "w", timeout=120)
    assert starting.wait(timeout=60) == 0
    assert watch.returncode == 0, watch.stderr
    tables = [line for line in watch.stdout.splitlines() if not line.startswith("NAME")]
    assert len(tables) >= 2, watch.stdout  # not a terminal: a new table each time a state changes
    assert watch.stdout.splitlines()[0].split() == ["NAME", "BACKEND", "PROFILE", "MODEL", "STATE", "READY", "AGE",
                                                    "ENDPOINT", "REASON"]
    first, last = tables[0].split(), tables[-1].split()
    assert first[3] == "tiny" and first[5] == "-" and re.fullmatch(r"\d+[smhd]", first[6]), tables
    assert last[4:6] == ["RUNNING", "yes"] and last[7].startswith("http://127.0.0.1:"), tables
    assert vlaunch("down", "w").returncode == 0
    ended = vlaunch("status", "--watch", "w", timeout=30)
    assert ended.returncode == 0 and "CANCELLED" in ended.stdout and "http://" not in ended.stdout
