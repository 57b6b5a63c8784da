"""Replica groups through the real CLI, with vLLM's real router (vllm-router) in front of the fast fake
server on the local backend: every replica serves through one endpoint, the group's key guards it, a
killed replica is taken out without a failed request and replaced, `down` leaves nothing, and bad input
is one line. The real CPU vLLM across the Slurm rig's hosts: tests/slurm/test_replicas_real.py."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time

import pytest
from helpers import (answered, assert_one_line_error, completion_status, fake_command, group_key, job_processes,
                     steady_clients, vlaunch)

from vlaunch import router
from vlaunch.group import Process

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


def group(name: str) -> dict:
    return json.loads(vlaunch("status", "--json", name).stdout)[0]


def processes_of(state: dict) -> list:
    """What still runs of a group: its replicas' processes, its router and its keeper."""
    left = [pid for r in state["replicas"] for pid in job_processes(os.path.realpath(r["run_dir"]))]
    return left + [p["pid"] for p in (state["router"], state["keeper"]) if p and Process.model_validate(p).alive()]


def test_every_replica_serves_through_one_endpoint_guarded_by_the_group_key():
    result = vlaunch("up", *FAKE, "--replicas", "3", "--name", "trio")
    assert result.returncode == 0, result.stderr
    assert "group trio is ready: http://127.0.0.1:" in result.stdout and "3 of 3 replicas serving" in result.stdout
    state = group("trio")
    url, replicas = state["router_host"], state["replicas"]
    url = f"http://{url}:{state['router_port']}"
    assert [r["name"] for r in replicas] == ["trio-r1", "trio-r2", "trio-r3"]
    assert all(r["group"] == "trio" and r["state"] == "RUNNING" for r in replicas)
    before = {r["name"]: answered(r) for r in replicas}
    assert all(completion_status(url, group_key("trio")) == 200 for _ in range(30))
    after = {r["name"]: answered(r) for r in replicas}
    assert all(after[n] - before[n] >= 5 for n in after), (before, after)  # round robin: every replica, about evenly
    assert completion_status(url, None) == 401 and completion_status(url, "not-the-key") == 401
    with open(os.path.join(os.environ["VLAUNCH_STATE_DIR"], "jobs", "trio-r1.key")) as handle:
        replica_key = handle.read().strip()
    assert replica_key != group_key("trio")  # each replica keeps its own key; clients get the group's
    assert f'OPENAI_BASE_URL={url}/v1' in vlaunch("env", "trio").stdout
    watched = vlaunch("watch", "trio", "--once", "--json", "--interval", "0.5")
    assert watched.returncode == 0, watched.stderr
    assert set(json.loads(watched.stdout)["engines"]) == {"r1/0", "r2/0", "r3/0"}
    stranger = json.loads(vlaunch("status", "--json", "trio-r1").stdout)[0]["endpoint"].replace("127.0.0.1", "localhost")
    router.add_worker(url, stranger)  # what anyone on this machine could do: the admin routes take no key
    evicted = f"{stranger} was in the router, not given by vlaunch: taken out"
    for _ in range(100):  # the keeper's rounds are at most 5 s apart
        if any(evicted in event for event in group("trio")["events"]):
            break
        time.sleep(0.1)
    assert any(evicted in event for event in group("trio")["events"])
    assert sorted(router.workers(url)) == sorted(r["endpoint"] for r in replicas)
    down = vlaunch("down", "trio")
    assert down.returncode == 0 and "group trio: ENDED" in down.stdout, down.stderr
    ended = group("trio")
    assert ended["state"] == "ENDED" and {r["state"] for r in ended["replicas"]} == {"CANCELLED"}
    assert not processes_of(ended)


def test_a_killed_replica_is_taken_out_without_a_failed_request_and_replaced():
    result = vlaunch("up", *FAKE, "--replicas", "2", "--keep", "1", "--name", "duo")
    assert result.returncode == 0, result.stderr
    state = group("duo")
    url, api_key = f"http://127.0.0.1:{state['router_port']}", group_key("duo")
    with steady_clients(url, api_key, 2, join=60) as (sent, failures):
        time.sleep(1)
        with open(os.path.join(state["replicas"][0]["run_dir"], "rendezvous.json")) as handle:
            victim = json.load(handle)["pid"]
        os.kill(victim, signal.SIGKILL)
        killed, served = len(sent), None
        for _ in range(120):
            served = group("duo")
            if served["replaced"] == 1 and len(served["serving"]) == 2:
                break
            time.sleep(0.5)
    assert not failures and len(sent) > killed + 20, (failures, len(sent), killed)
    assert served["serving"] == ["duo-r2", "duo-r3"], served
    assert any("duo-r1 ended (FAILED: server exited with status 137 (SIGKILL, killed: " in event
               and "; submitting a replacement (1 of 1)" in event for event in served["events"]), served["events"]
    table = vlaunch("status", "duo").stdout
    assert "serving 2/2  replaced 1/1" in table and "duo-r3" in table
    assert vlaunch("down", "duo").returncode == 0
    assert not processes_of(group("duo"))


def test_a_replica_a_user_stops_leaves_the_router_and_is_not_replaced():
    assert vlaunch("up", *FAKE, "--replicas", "2", "--keep", "1", "--name", "spare").returncode == 0
    assert vlaunch("down", "spare-r1").returncode == 0
    for _ in range(100):
        state = group("spare")
        if state["serving"] == ["spare-r2"]:
            break
        time.sleep(0.2)
    assert state["serving"] == ["spare-r2"] and state["replaced"] == 0, state
    assert any("spare-r1 ended (CANCELLED: cancelled by vlaunch down): a user stopped it, so it is not replaced"
               in event for event in state["events"]), state["events"]
    assert vlaunch("down", "spare-r2").returncode == 0  # the last one: the group ends by itself
    for _ in range(100):
        state = group("spare")
        if state["state"] == "ENDED" and not processes_of(state):
            break
        time.sleep(0.2)
    assert state["state"] == "ENDED" and state["reason"] == "every replica was stopped", state
    assert not processes_of(state)


def test_a_replica_that_never_becomes_ready_is_reported_and_the_others_serve():
    result = vlaunch("up", *FAKE, "--replicas", "2", "--name", "half", "--set", "readiness.http_timeout=3",
                     "--set", "environment.variables.FAKE_UNHEALTHY_IN=half-r2")
    assert result.returncode == 0, result.stderr
    assert "half-r2 did not become ready: not ready: stage 'health'" in result.stderr
    assert "1 of 2 replicas serving" in result.stdout
    state = group("half")
    assert state["serving"] == ["half-r1"] and state["state"] == "SERVING"
    assert {r["name"]: r["state"] for r in state["replicas"]} == {"half-r1": "RUNNING", "half-r2": "CANCELLED"}
    assert completion_status(f"http://127.0.0.1:{state['router_port']}", group_key("half")) == 200
    assert vlaunch("down", "half").returncode == 0
    assert not processes_of(group("half"))


def test_a_dead_keeper_still_lets_down_stop_the_router_and_every_replica():
    assert vlaunch("up", *FAKE, "--replicas", "2", "--name", "orphan").returncode == 0
    state = group("orphan")
    os.kill(state["keeper"]["pid"], signal.SIGKILL)
    for _ in range(50):
        shown = vlaunch("status", "orphan")
        if "its keeper" in shown.stderr:
            break
        time.sleep(0.1)
    assert shown.returncode == 1 and "its keeper" in shown.stderr and "is gone" in shown.stderr, shown.stderr
    router = f"http://127.0.0.1:{state['router_port']}"
    assert completion_status(router, group_key("orphan")) == 200  # the router still serves
    assert vlaunch("down", "orphan").returncode == 0
    assert not processes_of(group("orphan"))


def test_down_all_stops_groups_and_jobs():
    assert vlaunch("up", *FAKE, "--replicas", "2", "--name", "pair").returncode == 0
    assert vlaunch("up", *FAKE, "--name", "single").returncode == 0
    result = vlaunch("down", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["group pair: ENDED (router and 2 replicas stopped)",
                                          "job single: CANCELLED (cancelled by vlaunch down)"]


@pytest.mark.parametrize("args, fragments", [
    (["--replicas", "2", "--set", 'replicas.policy="fastest"'], ["replicas.policy", "round_robin"]),
    (["--replicas", "2", "--backend", "local,nowhere"], ["nowhere"]),
    (["--replicas", "2", "--name", "x" * 55], ["at most 54 characters"]),
    (["--replicas", "2", "--set", 'replicas.router="cloud"'], ["replicas.router", "here", "job"]),
    (["--replicas", "2", "--backend", "local,slurm", "--set", 'replicas.router="job"'],
     ['replicas.router = "job"', "one backend", "local, slurm"]),
    (["--replicas", "2", "--backend", "slurm", "--set", 'replicas.router="job"'],
     ["they bind 127.0.0.1", 'server.host = "0.0.0.0"']),
    (["--replicas", "0"], ["--replicas"]),
])
def test_bad_group_input_is_one_line_and_submits_nothing(args, fragments):
    result = vlaunch("up", *FAKE, *args)
    assert_one_line_error(result, *fragments)
    assert vlaunch("status").stdout.strip() == "no jobs"


def test_a_router_that_cannot_start_fails_up_in_one_line_and_leaves_nothing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = vlaunch("up", *FAKE, "--replicas", "2", "--name", "noport", "--set", f"replicas.router_port={port}")
    assert_one_line_error(result, f"vLLM's router did not start on 127.0.0.1:{port}", "group noport was stopped")
    state = group("noport")
    assert state["state"] == "FAILED" and f"did not start on 127.0.0.1:{port}" in state["reason"], state
    assert {r["state"] for r in state["replicas"]} == {"CANCELLED"}, state
    assert not processes_of(state)


def test_a_missing_router_is_named_before_anything_is_submitted(monkeypatch, capsys):
    from vlaunch import cli, router

    monkeypatch.setattr(router, "PROGRAM", "vllm-router-not-installed")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["up", *FAKE, "--replicas", "2"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: replicas need vLLM's router, and vllm-router-not-installed is not installed here: pip"
                   " install vllm-router (from vlaunch's checkout: pip install '.[router]')")
    assert vlaunch("status").stdout.strip() == "no jobs"


def test_replicas_that_would_serve_different_models_are_refused(monkeypatch):
    """A site plugin may amend the profile per backend; a group whose backends would then serve different
    models is refused before anything is submitted."""
    from vlaunch import api, replicas
    from vlaunch.errors import ConfigError
    from vlaunch.hookspecs import hookimpl
    from vlaunch.plugins import get_host

    class OtherModelOnSsh:
        @hookimpl
        def vlaunch_amend_config(self, profile, backend):
            if backend == "ssh":
                profile.server.model = "another-model"

    host, plugin = get_host(), OtherModelOnSsh()
    host.register(plugin, name="other-model-on-ssh", distribution="tests")
    try:
        with pytest.raises(ConfigError, match="the replicas of one group must serve one model, but local serves"
                                              " 'fake-model' as 'tiny', ssh serves 'another-model' as 'tiny'"):
            replicas.up_group("cpu-tiny", "local", api.Overrides(model="fake-model", sets=[
                fake_command(), 'replicas.backends=["local", "ssh"]', 'backend.ssh.host="nowhere"']))
    finally:
        host.unregister(plugin)
    assert vlaunch("status").stdout.strip() == "no jobs"


ROUTER = os.path.join(os.path.dirname(sys.executable), "vllm-router")
ROUTER_JOB = ["--set", 'replicas.router="job"', "--set", "replicas.router_command=" + json.dumps([ROUTER])]


def test_a_router_job_that_ends_is_submitted_again_even_after_a_failed_submission():
    """The router as its own job (local backend): killed, it is submitted again; a submission that fails
    (its script cannot be written) is noted and tried again until one succeeds, under the same name."""
    result = vlaunch("up", *FAKE, *ROUTER_JOB, "--replicas", "2", "--name", "relay")
    assert result.returncode == 0, result.stderr
    state = group("relay")
    assert [j["name"] for j in state["router_jobs"]] == ["relay-router1"] and state["router"] is None
    assert f"http://127.0.0.1:{state['router_port']}" == state["router_jobs"][0]["endpoint"]
    blocker = os.path.join(os.environ["VLAUNCH_STATE_DIR"], "runs", "relay-router2", "job.sh")
    os.makedirs(blocker)  # a directory where the next router job's script would go
    with open(os.path.join(state["router_jobs"][0]["run_dir"], "rendezvous.json")) as handle:
        os.kill(json.load(handle)["pid"], signal.SIGKILL)
    for _ in range(100):
        state = group("relay")
        if any("no router job could be submitted (tried again, at most a minute apart)" in e for e in state["events"]):
            break
        time.sleep(0.2)
    assert state["router_port"] is None and state["serving"] == [] and state["state"] == "STARTING", state
    refused = state["router_jobs"][1]
    assert (refused["name"], refused["state"], refused["native_id"]) == ("relay-router2", "FAILED", None), refused
    os.rmdir(blocker)
    for _ in range(150):  # the first try again comes 5 s after the refusal
        state = group("relay")
        if state["serving"] and state["router_jobs"][-1]["ready_at"]:
            break
        time.sleep(0.2)
    assert [j["name"] for j in state["router_jobs"]] == ["relay-router1", "relay-router2"], state["router_jobs"]
    assert sorted(state["serving"]) == ["relay-r1", "relay-r2"], state
    assert completion_status(f"http://127.0.0.1:{state['router_port']}", group_key("relay")) == 200
    assert vlaunch("down", "relay").returncode == 0
    ended = group("relay")
    assert not processes_of(ended) and not any(job_processes(os.path.realpath(j["run_dir"]))
                                               for j in ended["router_jobs"])


def test_router_jobs_that_keep_failing_after_one_served_end_the_group_and_leave_nothing(tmp_path):
    """Once a router job has served, one that does not is followed by another; after three in a row the
    keeper gives up: the group is FAILED and every job of it is stopped, though `up` returned long ago."""
    broken = tmp_path / "broken"
    wrapper = ["bash", "-c", f'[ -e {shlex.quote(str(broken))} ] && exit 3; exec "$0" "$@"', ROUTER]
    result = vlaunch("up", *FAKE, "--set", 'replicas.router="job"', "--set", "replicas.router_command="
                     + json.dumps(wrapper), "--replicas", "2", "--name", "flaky")
    assert result.returncode == 0, result.stderr
    first = group("flaky")["router_jobs"][0]
    broken.touch()  # every router job from now on exits 3 at once
    with open(os.path.join(first["run_dir"], "rendezvous.json")) as handle:
        os.kill(json.load(handle)["pid"], signal.SIGKILL)
    for _ in range(300):
        state = group("flaky")
        if state["state"] == "FAILED" and not Process.model_validate(state["keeper"]).alive():
            break
        time.sleep(0.2)
    assert state["state"] == "FAILED", state["events"]
    assert "router job flaky-router4 did not serve: server ended before it was ready (server exited with status 3" \
        in state["reason"], state["reason"]
    events = "\n".join(state["events"])
    assert "flaky-router2 did not serve" in events and "submitting another (1 failed in a row" in events, events
    assert "flaky-router3 did not serve" in events and "submitting another (2 failed in a row" in events, events
    assert {r["state"] for r in state["replicas"] + state["router_jobs"]} <= {"CANCELLED", "FAILED"}, state
    assert not processes_of(state)
    assert not any(job_processes(os.path.realpath(j["run_dir"])) for j in state["router_jobs"])


def _wait_for_event(name: str, words: str, tries: int = 300) -> dict:
    """The group's record once one of its events holds ``words`` (looked at every 0.2 s)."""
    for _ in range(tries):
        state = group(name)
        if any(words in event for event in state["events"]):
            return state
        time.sleep(0.2)
    raise AssertionError(f"no event with {words!r}: {state['events']}")


def _serving_again(name: str, served: int) -> dict:
    """The group's record once ``served`` replicas are back in a router that answers."""
    for _ in range(300):
        state = group(name)
        if len(state["serving"]) == served and state["router_port"] and router.healthy(
                f"http://127.0.0.1:{state['router_port']}"):
            return state
        time.sleep(0.2)
    raise AssertionError(state)


def test_a_router_here_that_stops_answering_is_killed_and_started_again():
    """A router that runs but answers nothing (SIGSTOP: as a hung one) is not left as the endpoint: after
    replicas.router_timeout the keeper kills it and starts another on the same port."""
    result = vlaunch("up", *FAKE, "--replicas", "2", "--set", "replicas.router_timeout=2", "--name", "mute")
    assert result.returncode == 0, result.stderr
    state = group("mute")
    hung, port = state["router"]["pid"], state["router_port"]
    os.kill(hung, signal.SIGSTOP)
    state = _wait_for_event("mute", f"has not answered its /health for 2 s; killing it (pid {hung})")
    state = _serving_again("mute", 2)
    assert state["router"]["pid"] != hung and state["router_port"] == port and state["state"] == "SERVING", state
    assert not Process.model_validate({**state["router"], "pid": hung}).alive()
    assert completion_status(f"http://127.0.0.1:{port}", group_key("mute")) == 200
    assert vlaunch("down", "mute").returncode == 0
    assert not processes_of(group("mute"))


def test_a_router_job_that_stops_answering_is_stopped_and_another_serves():
    """The same for a router job: its job still runs, so only the keeper's look at /health can tell; the
    job is stopped (nothing of it left) and the next one serves the replicas."""
    result = vlaunch("up", *FAKE, *ROUTER_JOB, "--replicas", "2", "--set", "replicas.router_timeout=2",
                     "--name", "mutejob")
    assert result.returncode == 0, result.stderr
    first = group("mutejob")["router_jobs"][0]
    with open(os.path.join(first["run_dir"], "rendezvous.json")) as handle:
        os.kill(json.load(handle)["pid"], signal.SIGSTOP)
    _wait_for_event("mutejob", "has not answered its /health for 2 s though its job mutejob-router1 runs")
    state = _serving_again("mutejob", 2)
    jobs = {j["name"]: j for j in state["router_jobs"]}
    assert list(jobs) == ["mutejob-router1", "mutejob-router2"] and jobs["mutejob-router1"]["state"] == "CANCELLED"
    assert not job_processes(os.path.realpath(first["run_dir"]))
    assert completion_status(f"http://127.0.0.1:{state['router_port']}", group_key("mutejob")) == 200
    assert vlaunch("down", "mutejob").returncode == 0
    ended = group("mutejob")
    assert not processes_of(ended) and not any(job_processes(os.path.realpath(j["run_dir"]))
                                               for j in ended["router_jobs"])
