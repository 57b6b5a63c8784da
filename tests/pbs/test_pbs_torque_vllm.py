"""The Torque dialect end to end with the real CPU vLLM (one start): real qsub, text qstat polling, the
server found through rendezvous.json on the node's name (it binds 0.0.0.0), a real completion, qdel."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import time
import urllib.request

import pytest
from pbs_support import require_pbs_rig

from chaos import kill_and_check
from helpers import BIN, ENGINE_RUNS_MODEL, vlaunch

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_pbs_rig()
    root = tmp_path_factory.mktemp("pbs-vllm")
    return {"VLAUNCH_STATE_DIR": str(root / "state"), "VLAUNCH_CONFIG_DIR": str(root / "config")}


@pytest.fixture(scope="module")
def job(env, tiny_model):
    """`vlaunch up --backend pbs` of cpu-tiny through the wrappers; brought down at the end."""
    setup = json.dumps([f"export PATH={shlex.quote(str(BIN))}:\"$PATH\""])
    started = time.monotonic()
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "pbs", "--model", tiny_model, "--name", "pbsreal",
                     "--set", "backend.pbs.dialect=torque", "--set", "server.host=0.0.0.0",
                     "--set", f"environment.setup={setup}", *ENGINE_RUNS_MODEL, "--json", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    record["seconds_to_ready"] = time.monotonic() - started
    yield record
    vlaunch("down", "pbsreal", env=env)


def _post(url, body, key):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return json.load(urllib.request.urlopen(request, timeout=60))


def test_ready_through_the_node_name(job):
    assert job["state"] == "RUNNING" and job["ready_at"] and job["native_id"].isdigit()
    assert job["host"] == job["node"] == socket.gethostname()
    print(f"pbs torque real vLLM: ready {job['seconds_to_ready']:.1f} s after `vlaunch up`")


def test_models_and_a_completion(job, env):
    key = open(os.path.join(env["VLAUNCH_STATE_DIR"], "jobs", "pbsreal.key")).read().strip()
    request = urllib.request.Request(f"{job['endpoint']}/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert [m["id"] for m in json.load(urllib.request.urlopen(request, timeout=30))["data"]] == ["tiny"]
    answer = _post(f"{job['endpoint']}/v1/completions", {"model": "tiny", "prompt": "Hello", "max_tokens": 4}, key)
    assert answer["usage"]["completion_tokens"] == 4


def test_one_realtime_log(job, env):
    log = vlaunch("logs", "pbsreal", env=env).stdout
    assert f"PBS job {job['native_id']} in queue" in log and "Application startup complete" in log
    assert job["log_path"] == os.path.join(job["run_dir"], "server.log")


def test_qstat_latency_and_state(job):
    timings = []
    for _ in range(5):
        started = time.monotonic()
        out = subprocess.run(["qstat", "-f", job["native_id"]], capture_output=True, text=True, timeout=30).stdout
        timings.append(time.monotonic() - started)
        assert "job_state = R" in out
    print(f"pbs torque: qstat -f took {min(timings) * 1000:.0f}-{max(timings) * 1000:.0f} ms")


def _alive(pid: int) -> bool:
    stat = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(stat) and not stat.startswith("Z")


def test_down_stops_the_server(job, env):
    pid = json.loads(open(os.path.join(job["run_dir"], "rendezvous.json")).read())["pid"]
    started = time.monotonic()
    down = vlaunch("down", "pbsreal", env=env)
    assert down.returncode == 0 and "job pbsreal: CANCELLED" in down.stdout, down.stderr
    confirmed = time.monotonic() - started
    out = subprocess.run(["qstat", "-f", job["native_id"]], capture_output=True, text=True).stdout
    assert "job_state = R" not in out
    # The wrappers report C as soon as Slurm cancels; Slurm then sends SIGTERM and, KillWait (5 s) later, SIGKILL.
    while _alive(pid):
        assert time.monotonic() - started < 20, f"vLLM (pid {pid}) still runs 20 s after `vlaunch down`"
        time.sleep(0.2)
    print(f"pbs torque: down confirmed in {confirmed:.1f} s, vLLM gone after {time.monotonic() - started:.1f} s")
    with pytest.raises(OSError):
        socket.create_connection((job["host"], job["port"]), timeout=2).close()


def test_kill_9_of_the_api_server_fails_the_job_and_leaves_nothing(env, tiny_model):
    """The chaos suite's real-vLLM case here (each backend's real-vLLM module kills another role)."""
    setup = json.dumps([f"export PATH={shlex.quote(str(BIN))}:\"$PATH\""])
    result = vlaunch("up", "-p", "cpu-tiny", "-b", "pbs", "--model", tiny_model, "--name", "pbschaos",
                     "--set", "backend.pbs.dialect=torque", "--set", f"environment.setup={setup}", *ENGINE_RUNS_MODEL,
                     env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    kill_and_check("pbschaos", "server", env)
