"""A replica group of real CPU vLLM servers behind vLLM's real router: two replicas on the Slurm rig's
namespace hosts (one whole node each) and one on this machine (local), one endpoint. Completions reach
every replica, kill -9 of one replica's server fails no client request and `--keep 1` brings a new one,
and `down` leaves nothing on any host and no job in Slurm."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import ENGINE_RUNS_MODEL, answered, completion_status, group_key, job_processes, steady_clients, vlaunch
from rig_hosts import host_of, require_hosts
from slurm_support import squeue, state_env

from vlaunch.group import Process

pytestmark = [pytest.mark.usefixtures("slurm_rig"), pytest.mark.vllm]

#: Replicas in turn on slurm (a whole namespace host each) and local; vLLM's own CLI, bound to every
#: address so that the router here reaches the replicas on the hosts by their names. The hosts share
#: this machine's two cores: by default every CPU vLLM binds its threads to core 0, and a replacement
#: starting beside two busy replicas waited minutes for it; unbound, the kernel shares both cores.
GROUP = ["--profile", "cpu-tiny", "--backend", "slurm,local", "--replicas", "3", "--keep", "1",
         "--set", 'server.host="0.0.0.0"', "--set", 'backend.slurm.partition="hosts"',
         "--set", 'backend.slurm.extra_directives=["--exclusive"]',
         "--set", "server.command=" + json.dumps(["python3", "-m", "vlaunch.testing.vllm_cli", "serve"]),
         "--set", 'environment.variables.VLLM_CPU_OMP_THREADS_BIND="nobind"', *ENGINE_RUNS_MODEL]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    require_hosts()
    return state_env(tmp_path_factory.mktemp("replicas"))


def status(env) -> dict:
    return json.loads(vlaunch("status", "--json", "real", env=env).stdout)[0]


def server_pid(replica: dict) -> int:
    with open(os.path.join(os.path.realpath(replica["run_dir"]), "rendezvous.json")) as handle:
        return json.load(handle)["pid"]


@pytest.fixture(scope="module")
def group(env, tiny_model):
    started = time.monotonic()
    result = vlaunch("up", *GROUP, "--model", tiny_model, "--name", "real", env=env, timeout=1200)
    assert result.returncode == 0, result.stderr
    print(f"3 real replicas (2 slurm hosts + local) behind the router: ready in {time.monotonic() - started:.1f} s")
    yield {**status(env), "key": group_key("real", env)}
    vlaunch("down", "real", env=env)


def test_replicas_run_on_two_hosts_and_here(group):
    replicas = {r["name"]: r for r in group["replicas"]}
    assert [r["backend"] for r in replicas.values()] == ["slurm", "local", "slurm"]
    assert sorted(group["serving"]) == sorted(replicas), group
    where = {name: host_of(server_pid(r)) for name, r in replicas.items()}
    assert where["real-r2"] is None  # local: this machine's own namespace
    assert {where["real-r1"], where["real-r3"]} == {"vlnode1", "vlnode2"}, where


def test_completions_through_the_router_reach_every_replica(group):
    url = f"http://{group['router_host']}:{group['router_port']}"
    before = {r["name"]: answered(r) for r in group["replicas"]}
    assert [completion_status(url, group["key"], 4) for _ in range(12)] == [200] * 12
    after = {r["name"]: answered(r) for r in group["replicas"]}
    assert all(after[n] - before[n] >= 3 for n in after), (before, after)
    assert completion_status(url, "not-the-key") == 401


def test_bench_and_watch_take_the_group(group, env):
    bench = vlaunch("bench", "real", "--json", "--num-prompts", "12", "--input-len", "16", "--output-len", "8",
                    "--concurrency", "6", env=env, timeout=600)
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert result["status"] == "complete" and result["url"].startswith("http://127.0.0.1:"), result
    watched = vlaunch("watch", "real", "--once", "--json", "--interval", "2", env=env, timeout=120)
    assert watched.returncode == 0, watched.stderr
    assert set(json.loads(watched.stdout)["engines"]) == {"r1/0", "r2/0", "r3/0"}


def test_a_killed_replica_fails_no_request_and_is_replaced(group, env):
    """Kill -9 of real-r1's server under three steady clients, which go on until a few seconds after the
    keeper took it out of the router; then its replacement (same backend) starts without that load."""
    url = f"http://{group['router_host']}:{group['router_port']}"
    victim = next(r for r in group["replicas"] if r["name"] == "real-r1")
    with steady_clients(url, group["key"], 3, max_tokens=4) as (sent, failures):
        time.sleep(2)
        os.kill(server_pid(victim), signal.SIGKILL)
        killed = time.monotonic()
        while "real-r1" in status(env)["serving"] and time.monotonic() - killed < 60:
            time.sleep(0.5)
        out_after, at_out = time.monotonic() - killed, len(sent)
        time.sleep(5)
    print(f"kill -9 of real-r1's server: out of the router after {out_after:.1f} s; {len(sent)} requests,"
          f" {len(failures)} failed, {len(sent) - at_out} after it was out")
    assert not failures, failures
    assert out_after < 30 and len(sent) > at_out, (out_after, len(sent), at_out)
    while time.monotonic() - killed < 600:
        state = status(env)
        if "real-r4" in state["serving"]:
            break
        time.sleep(2)
    print(f"real-r4 (the replacement) serving {time.monotonic() - killed:.1f} s after the kill")
    replicas = {r["name"]: r for r in state["replicas"]}
    assert sorted(state["serving"]) == ["real-r2", "real-r3", "real-r4"], state["events"]
    assert replicas["real-r4"]["backend"] == "slurm" and state["replaced"] == 1
    assert replicas["real-r1"]["state"] == "FAILED" and "137" in replicas["real-r1"]["reason"], replicas["real-r1"]
    assert not job_processes(os.path.realpath(replicas["real-r1"]["run_dir"]))
    assert completion_status(url, group["key"], 4) == 200


def test_down_leaves_nothing_anywhere(group, env):
    result = vlaunch("down", "real", env=env)
    assert result.returncode == 0, result.stderr
    state = status(env)
    assert state["state"] == "ENDED"
    for replica in state["replicas"]:
        assert not job_processes(os.path.realpath(replica["run_dir"])), replica["name"]
        if replica["backend"] == "slurm":
            assert (squeue(replica["native_id"]) or ("left squeue",))[0] in ("left squeue", "CANCELLED", "FAILED")
    assert not any(Process.model_validate(state[what]).alive() for what in ("router", "keeper"))
