"""A replica group whose router is its own Slurm job (``replicas.router = "job"``): two replicas (the fast
fake server) on one of the rig's namespace hosts and vLLM's real router as a job on the other, so every
request crosses hosts. Completions through the router job reach both replicas; a replica killed with
kill -9 fails no request and is replaced; a router job killed with kill -9 is submitted again and the
group serves at its new endpoint; `down`, even with the keeper killed, leaves no job in Slurm and no
process on any host; a router program the job cannot find is one line and stops everything."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest
from helpers import (answered, assert_one_line_error, completion_status, fake_command, group_key, job_processes,
                     steady_clients, vlaunch)
from rig_hosts import host_of, require_hosts
from slurm_support import squeue, state_env

from vlaunch import router

pytestmark = pytest.mark.usefixtures("slurm_rig")

ROUTER = os.path.join(os.path.dirname(sys.executable), "vllm-router")
#: Replicas pinned to vlnode1 and the router job to vlnode2, so the router reaches them across hosts.
GROUP = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags",
         "--backend", "slurm", "--set", 'backend.slurm.partition="hosts"', "--set", 'server.host="0.0.0.0"',
         "--set", 'backend.slurm.extra_directives=["--nodelist=vlnode1"]',
         "--set", 'replicas.router="job"', "--set", "replicas.router_command=" + json.dumps([ROUTER]),
         "--set", "replicas.router_set=" + json.dumps(['backend.slurm.extra_directives=["--nodelist=vlnode2"]'])]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_hosts()
    return state_env(tmp_path_factory.mktemp("router-job"))


def status(env, name: str = "hop") -> dict:
    return json.loads(vlaunch("status", "--json", name, env=env).stdout)[0]


def pid_of(record: dict) -> int:
    with open(os.path.join(os.path.realpath(record["run_dir"]), "rendezvous.json")) as handle:
        return json.load(handle)["pid"]


def wait_for(env, done, seconds: float = 120) -> dict:
    """The group's state once ``done(state)`` holds (polled every half second), or the last one seen."""
    ends = time.monotonic() + seconds
    while True:
        state = status(env)
        if done(state) or time.monotonic() > ends:
            return state
        time.sleep(0.5)


@pytest.fixture(scope="module")
def group(env):
    result = vlaunch("up", *GROUP, "--replicas", "2", "--keep", "1", "--name", "hop", env=env)
    assert result.returncode == 0, result.stderr
    yield {**status(env), "key": group_key("hop", env)}
    vlaunch("down", "hop", env=env)


def test_the_router_job_runs_on_another_host_than_the_replicas_and_reaches_them(group):
    (job,) = group["router_jobs"]
    assert job["name"] == "hop-router1" and job["serves"] == "vllm-router" and job["state"] == "RUNNING"
    assert host_of(pid_of(job)) == "vlnode2" and {host_of(pid_of(r)) for r in group["replicas"]} == {"vlnode1"}
    url = f"http://{group['router_host']}:{group['router_port']}"
    assert group["router_host"] == "vlnode2" and url == job["endpoint"], group
    assert sorted(router.workers(url)) == sorted(f"http://vlnode1:{r['port']}" for r in group["replicas"])
    before = {r["name"]: answered(r) for r in group["replicas"]}
    assert [completion_status(url, group["key"]) for _ in range(20)] == [200] * 20
    after = {r["name"]: answered(r) for r in group["replicas"]}
    assert all(after[n] - before[n] >= 5 for n in after), (before, after)
    assert completion_status(url, None) == 401


def test_a_killed_replica_fails_no_request_through_the_router_job_and_is_replaced(group, env):
    url = f"http://{group['router_host']}:{group['router_port']}"
    with steady_clients(url, group["key"], 2, join=60) as (sent, failures):
        time.sleep(1)
        os.kill(pid_of(group["replicas"][0]), signal.SIGKILL)
        killed = len(sent)
        state = wait_for(env, lambda s: s["replaced"] == 1 and len(s["serving"]) == 2)
    assert not failures and len(sent) > killed + 20, (failures, len(sent), killed)
    assert state["serving"] == ["hop-r2", "hop-r3"], state["events"]


def test_a_killed_router_job_is_submitted_again_and_serves_at_its_new_endpoint(group, env):
    first = status(env)["router_jobs"][0]
    os.kill(pid_of(first), signal.SIGKILL)
    state = wait_for(env, lambda s: len(s["router_jobs"]) == 2 and s["router_jobs"][1]["ready_at"] and s["serving"])
    assert any("router job hop-router1 ended (FAILED: server exited with status 137 (SIGKILL, killed: " in event
               and "submitting another (the endpoint changes)" in event for event in state["events"]), state
    second = state["router_jobs"][1]
    assert second["name"] == "hop-router2" and host_of(pid_of(second)) == "vlnode2"
    url = f"http://{state['router_host']}:{state['router_port']}"
    assert url == second["endpoint"] and sorted(state["serving"]) == ["hop-r2", "hop-r3"], state
    assert completion_status(url, group["key"]) == 200
    assert f"OPENAI_BASE_URL={url}/v1" in vlaunch("env", "hop", env=env).stdout


def test_with_its_keeper_killed_down_still_leaves_no_job_and_no_process_on_any_host(group, env):
    state = status(env)
    os.kill(state["keeper"]["pid"], signal.SIGKILL)  # nothing can stop the router job but down, from the records
    for _ in range(50):
        shown = vlaunch("status", "hop", env=env)
        if "its keeper" in shown.stderr:
            break
        time.sleep(0.1)
    assert shown.returncode == 1 and "is gone" in shown.stderr, shown.stderr
    assert completion_status(f"http://{state['router_host']}:{state['router_port']}", group["key"]) == 200
    result = vlaunch("down", "hop", env=env)
    assert result.returncode == 0, result.stderr
    state = status(env)
    assert state["state"] == "ENDED"
    for job in state["router_jobs"] + state["replicas"]:
        assert not job_processes(os.path.realpath(job["run_dir"])), job["name"]
        assert (squeue(job["native_id"]) or ("left squeue",))[0] in ("left squeue", "CANCELLED", "FAILED"), job["name"]


def test_a_router_program_the_job_cannot_find_is_one_line_and_stops_everything(env):
    missing = [arg if not arg.startswith("replicas.router_command=") else 'replicas.router_command=["no-such-router"]'
               for arg in GROUP]
    result = vlaunch("up", *missing, "--replicas", "2", "--name", "lost", env=env)
    assert_one_line_error(result, "router job lost-router1 did not serve", "status 127",
                          "set replicas.router_command", "group lost was stopped")
    state = status(env, "lost")
    assert state["state"] in ("ENDED", "FAILED")
    for job in state["router_jobs"] + state["replicas"]:
        assert not job_processes(os.path.realpath(job["run_dir"])), job["name"]
        assert (squeue(job["native_id"]) or ("left squeue",))[0] in ("left squeue", "CANCELLED", "FAILED"), job["name"]
