"""Two nodes for real: the rig's namespace hosts vlnode1 and vlnode2 (own network and UTS namespaces,
scripts/rig/hosts.sh), one data-parallel rank each. The head's API server and engine on vlnode1, the
headless engine on vlnode2, met at the address on the route between them. A real CPU vLLM for what the
engines do; the fake server (vLLM's process shape, ``serve --headless`` included) for the launch and
teardown paths, which do not depend on what the processes serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from chaos import FAKE_TREE, kill_pid_and_check
from helpers import FAKE_VLLM, assert_one_line_error, job_processes, steady_clients, vlaunch
from rig_hosts import UNROUTED, host_of, processes_on, require_hosts
from slurm_support import record, squeue, state_env

pytestmark = pytest.mark.usefixtures("slurm_rig")

#: Two nodes of the partition "hosts", one engine each; vLLM's own CLI (`serve`, for `--headless`), bound
#: to every address of the head so that this machine reaches it by the head's name.
LAYOUT = ["--profile", "cpu-tiny", "--set", "resources.nodes=2", "--set", "vllm.data_parallel_size=2",
          "--set", 'server.host="0.0.0.0"']
TWO_NODES = ["--backend", "slurm", *LAYOUT, "--set", 'backend.slurm.partition="hosts"']
REAL = ["--set", "server.command=" + json.dumps(["python3", "-m", "vlaunch.testing.vllm_cli", "serve"])]
FAKE = ["--model", "fake-model", "--no-check-flags", *FAKE_TREE,
        "--set", "server.command=" + json.dumps([sys.executable, str(FAKE_VLLM), "serve"])]


@pytest.fixture(scope="module")
def env(tmp_path_factory, slurm_rig):
    require_hosts()
    return state_env(tmp_path_factory.mktemp("multinode"))


def test_the_rig_has_two_hosts_of_their_own():
    """Two hosts as Slurm sees them, each with its own name and network (one srun task on each)."""
    require_hosts()
    out = subprocess.run(["srun", "--partition=hosts", "--nodes=2", "--ntasks-per-node=1", "bash", "-c",
                          'echo "$(hostname) $(readlink /proc/self/ns/net) $(hostname -I)"'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = sorted(line.split() for line in out.stdout.splitlines())
    assert [name for name, *_ in seen] == ["vlnode1", "vlnode2"], out.stdout
    assert "10.201.0.11" in seen[0][2:] and "10.201.0.12" in seen[1][2:], out.stdout
    assert len({namespace for _, namespace, *_ in seen} | {os.readlink("/proc/self/ns/net")}) == 3


def up(env, name, *args, timeout=900):
    result = vlaunch("up", *TWO_NODES, *args, "--name", name, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return record(name, env)


def engines(run_dir: str) -> dict[str, int]:
    """vLLM's processes of the job by their titles (``EngineCore_DP0``...), wherever they run."""
    return {command.split()[0].removeprefix("VLLM::"): pid for pid, (_, command) in job_processes(run_dir).items()
            if command.startswith("VLLM::")}


def follower_server(run_dir: str) -> int:
    """The pid of vLLM's main process on vlnode2 (the headless one, not the bash program around it)."""
    found = [pid for pid, (_, command) in job_processes(run_dir).items()
             if "--headless" in command.split() and not command.startswith("/bin/bash") and host_of(pid) == "vlnode2"]
    assert len(found) == 1, job_processes(run_dir)
    return found[0]


@pytest.fixture(scope="module")
def real(env, tiny_model):
    """A real 2-node CPU vLLM job (its follower is killed by the last test that uses it)."""
    started = time.monotonic()
    job = up(env, "real", "--model", tiny_model, *REAL)
    print(f"2-node slurm + real vLLM: ready in {time.monotonic() - started:.1f} s")
    yield job
    vlaunch("down", "real", env=env)


@pytest.mark.vllm
def test_head_and_engines_on_different_hosts(real, env):
    assert real["node"] == "vlnode1" and real["endpoint"].startswith("http://vlnode1:")
    run_dir = os.path.realpath(real["run_dir"])
    head = json.loads(open(os.path.join(run_dir, "rendezvous.json")).read())["pid"]
    found = engines(run_dir)
    assert host_of(head) == "vlnode1"
    assert host_of(found["EngineCore_DP0"]) == "vlnode1" and host_of(found["EngineCore_DP1"]) == "vlnode2", found
    assert {host_of(pid) for pid in job_processes(run_dir)} == {"vlnode1", "vlnode2"}
    log = vlaunch("logs", "real", env=env).stdout
    assert "the nodes meet at 10.201.0.11" in log and "node 1 starts its engines on vlnode2" in log


def watch_while_loading(job: dict, env: dict, key: str, rank: int) -> list[dict]:
    """Two 3-s watch windows while three clients load engine ``rank`` only (vLLM's ``X-data-parallel-rank``
    header); the windows start once every client has had an answer, and the clients have finished when
    this returns."""
    only_rank = {"X-data-parallel-rank": str(rank)}
    with steady_clients(job["endpoint"], key, 3, max_tokens=16, headers=only_rank) as (sent, _):
        flowing = time.monotonic()
        while len({client for client, _ in sent}) < 3 and time.monotonic() - flowing < 300:
            time.sleep(0.2)
        watched = vlaunch("watch", job["name"], "--count", "2", "--json", "--interval", "3", env=env, timeout=120)
    assert watched.returncode == 0, watched.stderr
    windows = [json.loads(line) for line in watched.stdout.splitlines()]
    assert len(windows) == 2 and all(set(w["engines"]) == {"0", "1"} for w in windows), windows
    return windows


@pytest.mark.vllm
def test_each_engine_generates_and_watch_tells_them_apart(real, env):
    """Each engine in turn takes the whole load (vLLM's ``X-data-parallel-rank`` header), and watch gives the
    tokens to that engine alone. Both engines loaded at once is no test here: the rig's two hosts share this
    machine's cores and vLLM binds each host's engine to core 0, so one engine held the core for 10-40 s at a
    time (per-engine counters scraped each second), which three fresh-clone CI runs met as an engine with no
    token in watch's windows."""
    with open(os.path.join(env["VLAUNCH_STATE_DIR"], "jobs", "real.key")) as handle:
        key = handle.read().strip()
    for busy, idle in (("1", "0"), ("0", "1")):
        windows = watch_while_loading(real, env, key, int(busy))
        generated = [{e: w["engines"][e]["generation_tps"] or 0 for e in (busy, idle)} for w in windows]
        assert all(w[busy] > 0 and w[idle] == 0 for w in generated), (busy, generated)


@pytest.mark.vllm
def test_follower_killed_fails_the_job_and_leaves_nothing(real, env):
    """Last of the real job: kill -9 vLLM's main process on vlnode2."""
    seen = kill_pid_and_check("real", follower_server(os.path.realpath(real["run_dir"])),
                              ("the engines on vlnode2 (node-1",), env, "follower")
    assert "status 137" in seen["reason"], seen
    assert (squeue(real["native_id"]) or ("left squeue",))[0] in ("left squeue", "FAILED")


def test_down_leaves_nothing_on_either_host(env):
    job = up(env, "downed", *FAKE)
    run_dir = os.path.realpath(job["run_dir"])
    assert {host_of(pid) for pid in job_processes(run_dir)} == {"vlnode1", "vlnode2"}
    assert set(engines(run_dir)) == {"EngineCore"} and len(processes_on("vlnode2", "fake-engine")) == 1
    result = vlaunch("down", "downed", env=env)
    assert result.returncode == 0, result.stderr
    assert job_processes(run_dir) == {}
    assert record("downed", env)["state"] == "CANCELLED"
    assert (squeue(job["native_id"]) or ("left squeue",))[0] in ("left squeue", "CANCELLED")


def test_pbs_torque_dialect_over_the_same_hosts(env):
    """The pbs backend (Torque dialect, the rig's qsub over Slurm) on both hosts: pbsdsh (the rig's, over
    srun) starts the follower; down leaves nothing on either host."""
    setup = json.dumps([f"export PATH={os.path.dirname(sys.executable)}:\"$PATH\""])
    result = vlaunch("up", "--backend", "pbs", *LAYOUT, *FAKE, "--name", "torque2",
                     "--set", "backend.pbs.dialect=torque", "--set", "backend.pbs.queue=hosts",
                     "--set", "backend.pbs.launcher=pbsdsh", "--set", f"environment.setup={setup}", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    job = record("torque2", env)
    run_dir = os.path.realpath(job["run_dir"])
    assert job["node"] == "vlnode1" and {host_of(pid) for pid in job_processes(run_dir)} == {"vlnode1", "vlnode2"}
    assert len(processes_on("vlnode2", "fake-engine")) == 1
    result = vlaunch("down", "torque2", env=env)
    assert result.returncode == 0, result.stderr
    assert job_processes(run_dir) == {} and record("torque2", env)["state"] == "CANCELLED"


@pytest.mark.parametrize("role", ["head", "follower-script"])
def test_a_dead_node_ends_the_other(env, role):
    """kill -9 the head's server (nothing may stay on vlnode2), or the follower's bash program on vlnode2
    (its guard ends what it started there, the head then ends the job)."""
    job = up(env, role, *FAKE)
    run_dir = os.path.realpath(job["run_dir"])
    if role == "head":
        pid, causes = json.loads(open(os.path.join(run_dir, "rendezvous.json")).read())["pid"], ("status 137",)
    else:
        pid = next(pid for pid, (_, command) in job_processes(run_dir).items()
                   if command.startswith("/bin/bash -c") and host_of(pid) == "vlnode2")
        causes = ("the engines on vlnode2 (node-1",)
    kill_pid_and_check(role, pid, causes, env, role)


@pytest.mark.parametrize("interface, words", [
    ("lo", ["the data-parallel address 127.0.0.1 (interface lo) is a loopback address",
            "set server.data_parallel_interface"]),
    (UNROUTED["vlnode1"], ["vlnode2 cannot reach the head's data-parallel address 10.211.0.1: Network is unreachable"]),
    ("nosuch0", ["no data-parallel address for the other nodes (interface nosuch0: No such device)"]),
])
def test_an_address_the_other_node_cannot_reach_fails_at_once(env, interface, words):
    """Not readiness's timeout: the job fails as soon as the head (or the follower) sees the address. (A real
    head is not ready before its followers join; the fake one is made so: its /health never answers.)"""
    name = f"addr-{interface}"
    result = vlaunch("up", *TWO_NODES, *FAKE, "--name", name, "--set", f'server.data_parallel_interface="{interface}"',
                     env={**env, "FAKE_HEALTH_DELAY": "3600"}, timeout=300)
    error = result.stderr.splitlines()[[line.startswith("error:") for line in result.stderr.splitlines()].index(True)]
    assert result.returncode != 0 and all(w in error for w in words), result.stderr
    assert "Traceback" not in result.stderr and "server ended before it was ready" in error, result.stderr
    job = record(name, env)
    assert job["state"] == "FAILED" and job_processes(os.path.realpath(job["run_dir"])) == {}


def test_a_bad_interface_name_is_refused_before_submitting(env):
    result = vlaunch("render", *TWO_NODES, *REAL, "--model", "m", "--set", 'server.data_parallel_interface="eth0; rm -rf /"', env=env)
    assert_one_line_error(result, "server.data_parallel_interface")
