"""End to end on the real Slurm rig: one real CPU vLLM job (started once for the module), and, queued
beside it so their waits overlap, a job killed by its time limit and jobs that end and leave squeue."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from datetime import datetime

import pytest

from chaos import kill_and_check
from helpers import ENGINE_RUNS_MODEL, vlaunch
from slurm_support import (FAKE, alive, job_pids, path_without, record, squeue, state_env, wait_for_record,
                           wait_until)

pytestmark = [pytest.mark.vllm, pytest.mark.usefixtures("slurm_rig")]


@pytest.fixture(scope="module")
def env(tmp_path_factory, slurm_rig):
    return state_env(tmp_path_factory.mktemp("slurm-e2e"))


@pytest.fixture(scope="module")
def background(env):
    """Queued first: a fake server with a one-minute limit, and two servers that exit 3 at once."""
    submitted = time.monotonic()
    jobs = [("walltime", ["--set", 'resources.walltime="00:01:00"'], {}),
            ("exits-a", [], {"FAKE_EXIT_CODE": "3"}), ("exits-b", [], {"FAKE_EXIT_CODE": "3"})]
    for name, args, extra in jobs:
        result = vlaunch("up", *FAKE, *args, "--name", name, "--no-wait", env={**env, **extra})
        assert result.returncode == 0, result.stderr
    yield submitted
    for name, _, _ in jobs:
        vlaunch("down", name, env=env)


@pytest.fixture(scope="module")
def served(env, background, tiny_model):
    """`vlaunch up --backend slurm --profile cpu-tiny` with the real vLLM (flags checked here too)."""
    started = time.monotonic()
    submitted = vlaunch("up", "--backend", "slurm", "--profile", "cpu-tiny", "--model", tiny_model, "--name", "real",
                        "--no-wait", *ENGINE_RUNS_MODEL, env=env, timeout=900)
    assert submitted.returncode == 0, submitted.stderr
    result = vlaunch("wait", "real", env=env, timeout=900)  # the same stages as up's, for a job up left
    assert result.returncode == 0, result.stderr
    print(f"slurm + real vLLM: ready in {time.monotonic() - started:.1f} s\n{result.stderr}")
    yield result
    vlaunch("down", "real", env=env)


def test_ready_through_every_stage(served, env):
    passed = [line.split()[0] for line in served.stderr.splitlines() if line.split()[1:2] == ["passed"]]
    assert passed == ["queued", "process", "port", "health", "models", "completion"], served.stderr
    job = record("real", env)
    assert job["state"] == "RUNNING" and job["ready_at"] and job["backend"] == "slurm"
    nodelist = subprocess.run(["squeue", "--noheader", f"--jobs={job['native_id']}", "--Format=NodeList:|"],
                              capture_output=True, text=True, timeout=20).stdout.strip().rstrip("|")
    assert job["node"] == nodelist and job["endpoint"].startswith("http://127.0.0.1:")
    assert f"is ready: {job['endpoint']}/v1" in served.stdout


def test_answers_a_completion(served, env):
    job = record("real", env)
    key = open(os.path.join(env["VLAUNCH_STATE_DIR"], "jobs", "real.key")).read().strip()
    request = urllib.request.Request(f"{job['endpoint']}/v1/completions", method="POST",
                                     data=json.dumps({"model": "tiny", "prompt": "Hello", "max_tokens": 5}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    answer = json.load(urllib.request.urlopen(request, timeout=120))
    assert answer["usage"]["completion_tokens"] == 5 and answer["choices"][0]["text"]
    assert "vlaunch: slurm job " + job["native_id"] in vlaunch("logs", "real", env=env).stdout


def test_down_leaves_no_job_and_no_process(served, env):
    job = record("real", env)
    pids = job_pids(job["native_id"])
    vllm_pid = json.loads(open(os.path.join(job["run_dir"], "rendezvous.json")).read())["pid"]
    assert vllm_pid in pids and len(pids) >= 3  # batch shell, API server, engine core
    started = time.monotonic()
    down = vlaunch("down", "real", env=env)
    assert down.returncode == 0 and "job real: CANCELLED" in down.stdout, down.stderr
    print(f"down confirmed in {time.monotonic() - started:.1f} s")
    assert squeue(job["native_id"]) in (None, ("CANCELLED", "None"))
    assert not [pid for pid in pids if alive(pid)]
    assert record("real", env)["state"] == "CANCELLED"


def _started_at(job_id: str) -> float | None:
    """When Slurm started the job (epoch seconds, from sacct's Start), or None while it has not."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "Start", "-j", job_id],
                         capture_output=True, text=True, timeout=20).stdout.strip()
    return datetime.fromisoformat(out).timestamp() if out[:1].isdigit() else None


def test_time_limit_shows_timeout(background, env):
    """Counted from the job's start, not its submission (a busy queue may hold it): Slurm checks time
    limits every 30 s and then allows KillWait (5 s on the rig) before it settles the job."""
    native = json.loads(vlaunch("status", "--json", "--no-refresh", "walltime", env=env).stdout)[0]["native_id"]
    started = wait_until(lambda: _started_at(native), 600, interval=2)
    assert started, "the time-limited job never started"
    settles_by = started + 60 + 30 + 5 + 15
    job = wait_for_record("walltime", lambda r: r["state"] not in ("PENDING", "RUNNING"),
                          max(10.0, settles_by - time.time()), env)
    assert job and job["state"] == "TIMEOUT", job
    # In Slurm's words once it has settled the job; from the script's signalled marker when vlaunch looked
    # while Slurm still listed the job as ending and the exit marker was already there.
    assert job["reason"].startswith(("TIMEOUT: killed at its time limit",
                                     "stopped at its walltime limit (SIGTERM")), job
    print(f"time limit 60 s: TIMEOUT seen {time.time() - started:.0f} s after the job started")


def test_jobs_that_left_squeue_are_resolved_by_sacct_or_the_exit_marker(background, env, tmp_path):
    ids = {}
    for name in ("exits-a", "exits-b"):
        stored = json.loads(vlaunch("status", "--json", "--no-refresh", name, env=env).stdout)[0]
        ids[name] = stored["native_id"]
        assert stored["state"] == "PENDING"  # nothing has refreshed them since submission
    # Slurm forgets finished jobs MinJobAge (10 s on the rig) after they end, at its next purge.
    assert wait_until(lambda: all(squeue(i) is None for i in ids.values()), 120, interval=2), ids
    with_sacct = record("exits-a", env)
    assert with_sacct["state"] == "FAILED" and with_sacct["exit_code"] == 3
    assert with_sacct["reason"] == "server exited with status 3 (slurm: FAILED: exit code 3)"  # the marker's cause first
    no_sacct = record("exits-b", {**env, "PATH": path_without("sacct", root=tmp_path / "bin")})
    assert no_sacct["state"] == "FAILED" and no_sacct["exit_code"] == 3
    assert no_sacct["reason"] == "server exited with status 3"


def test_kill_9_of_the_job_script_fails_the_job_and_leaves_nothing(env, tiny_model):
    """The chaos suite's real-vLLM case here (each backend's real-vLLM module kills another role)."""
    result = vlaunch("up", "--backend", "slurm", "--profile", "cpu-tiny", "--model", tiny_model, "--name", "chaos",
                     *ENGINE_RUNS_MODEL, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    kill_and_check("chaos", "script", env)
