"""The slurm backend on the real single-node Slurm rig, with the fast stand-in server.

Each test has its own vlaunch state directory (tests/conftest.py); every job is brought down.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from helpers import assert_one_line_error, vlaunch
from slurm_support import (ALL_GPUS, FAKE, alive, job_pids, path_without, record, records, squeue, wait_for_record,
                           wait_until)

pytestmark = pytest.mark.usefixtures("slurm_rig")


def up(*args, env=None, timeout=180):
    return vlaunch("up", *FAKE, *args, env=env, timeout=timeout)


def squeue_field(job_id: str, field: str) -> str:
    return subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={job_id}", f"--Format={field}:|"],
                          capture_output=True, text=True, timeout=20).stdout.strip().rstrip("|")


def test_up_status_down_leaves_no_job_and_no_process():
    result = up("--name", "life")
    assert result.returncode == 0, result.stderr
    for stage in ("queued", "process", "port", "health", "models", "completion"):
        assert any(line.split()[:2] == [stage, "passed"] for line in result.stderr.splitlines()), result.stderr
    job = record("life")
    assert job["state"] == "RUNNING" and job["ready_at"] and job["native_id"].isdigit()
    assert squeue(job["native_id"])[0] == "RUNNING"
    assert job["node"] == squeue_field(job["native_id"], "NodeList")
    pids = job_pids(job["native_id"])
    assert json.loads(open(os.path.join(job["run_dir"], "rendezvous.json")).read())["pid"] in pids
    down = vlaunch("down", "life")
    assert down.returncode == 0 and "job life: CANCELLED" in down.stdout, down.stderr
    assert squeue(job["native_id"]) in (None, ("CANCELLED", "None"))
    assert not [pid for pid in pids if alive(pid)]
    assert record("life")["state"] == "CANCELLED"


def test_a_job_waiting_for_gpus_shows_resources_then_runs():
    first = up(*ALL_GPUS, "--name", "gpus-a")
    assert first.returncode == 0, first.stderr
    try:
        second = up(*ALL_GPUS, "--name", "gpus-b", "--no-wait")
        assert second.returncode == 0, second.stderr
        waiting = wait_for_record("gpus-b", lambda r: (r["reason"] or "").startswith("Resources"), 15)
        assert waiting, record("gpus-b")
        assert waiting["state"] == "PENDING" and waiting["node"] is None
        assert squeue(waiting["native_id"]) == ("PENDING", "Resources")

        third = up(*ALL_GPUS, "--name", "gpus-c", "--set", "readiness.queue_timeout=3")
        assert third.returncode != 0 and "Traceback" not in third.stderr
        progress = [line.split() for line in third.stderr.splitlines() if line.startswith("  queued")]
        assert progress and progress[-1][1] == "waiting"
        # Behind a job that waits for the GPUs, Slurm says "Priority" (or "Resources" if it looked first).
        assert progress[-1][3] in ("Priority:", "Resources:"), third.stderr
        assert "stage 'queued' still waiting" in third.stderr and "job was cancelled" in third.stderr
        assert record("gpus-c")["state"] == "CANCELLED"

        assert vlaunch("down", "gpus-a").returncode == 0
        running = wait_for_record("gpus-b", lambda r: r["state"] == "RUNNING", 30)
        assert running and running["node"] == squeue_field(running["native_id"], "NodeList")
        assert running["reason"] is None
    finally:
        for name in ("gpus-a", "gpus-b", "gpus-c"):
            vlaunch("down", name)
    assert all(records()[name]["state"] == "CANCELLED" for name in ("gpus-a", "gpus-b", "gpus-c"))


def test_server_failing_at_start_fails_up_fast_with_the_log_tail():
    started = time.monotonic()
    result = up("--name", "dies", env={"FAKE_EXIT_CODE": "3"})
    assert time.monotonic() - started < 30
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "exited with status 3" in result.stderr and "failing at start-up as asked" in result.stderr
    job = record("dies")
    assert job["state"] == "FAILED" and job["exit_code"] == 3
    assert squeue(job["native_id"]) in (None, ("FAILED", "NonZeroExitCode"))


def test_without_sbatch_the_error_names_the_backend_and_the_package(tmp_path):
    result = up("--name", "nosbatch", env={"PATH": path_without("sbatch", root=tmp_path / "bin")})
    assert_one_line_error(result, "backend slurm needs `sbatch`", "apt install slurm-client")
    assert record("nosbatch")["state"] == "FAILED"


@pytest.mark.parametrize("args, words", [
    (["--set", "resources.gpus_per_node=8", "--set", "vllm.data_parallel_size=8"],
     "Requested node configuration is not available"),
    (["--set", "backend.slurm.partition=no-such-partition"], "Invalid partition name specified"),
    (["--set", "backend.slurm.constraint=no-such-feature"], "Invalid feature specification"),
])
def test_refused_submission_surfaces_slurms_words(args, words):
    name = f"refused-{abs(hash(words)) % 10**6}"
    result = up(*args, "--name", name)
    assert_one_line_error(result, "slurm: sbatch refused the job", words)
    failed = record(name)
    assert failed["state"] == "FAILED" and failed["native_id"] is None
    listed = subprocess.run(["squeue", "--noheader", "--states=PD,R,CG", f"--name={name}"],
                            capture_output=True, text=True, timeout=20).stdout
    assert listed.strip() == ""


def test_hostile_model_and_account_stay_literal(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"m; touch {marker} $(touch {marker}) `touch {marker}` 'q\"'"
    argv_file = tmp_path / "argv.json"
    result = up("--name", "hostile", "--model", hostile, "--set", f"backend.slurm.account={json.dumps(hostile)}",
                "--set", f"backend.slurm.extra_directives={json.dumps(['--comment=' + hostile])}",
                env={"FAKE_ARGV_FILE": str(argv_file)})
    try:
        assert result.returncode == 0, result.stderr
        argv = json.loads(argv_file.read_text())
        assert argv[argv.index("--model") + 1] == hostile
        # sbatch read the quoted directive back as one value (the unknown account falls back to
        # the user's default account on a cluster that does not enforce associations).
        assert squeue_field(record("hostile")["native_id"], "Comment") == hostile
        assert not marker.exists()
    finally:
        vlaunch("down", "hostile")


def test_hostile_job_name_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    result = up("--name", f"x;touch {marker}")
    assert_one_line_error(result, "job name")
    assert not marker.exists()


def test_down_of_a_job_that_already_finished():
    result = up("--name", "done", "--no-wait", env={"FAKE_EXIT_CODE": "0"})
    assert result.returncode == 0, result.stderr
    job_id = record("done")["native_id"]
    assert wait_until(lambda: squeue(job_id) in (None, ("FAILED", "NonZeroExitCode")), 30)
    down = vlaunch("down", "done")
    assert down.returncode == 0, down.stderr
    assert "job done: FAILED (the server stopped by itself with status 0, unasked" in down.stdout
    done = record("done")  # a server exiting 0 by itself (vLLM's way when its engine dies) has failed
    assert done["state"] == "FAILED" and done["exit_code"] == 1


def test_polling_many_jobs_costs_one_squeue_call():
    from vlaunch.registry import Registry
    from vlaunch.transport import LocalTransport
    from vlaunch_slurm import SlurmBackend

    for name in ("poll-1", "poll-2", "poll-3"):
        assert up("--name", name, "--no-wait").returncode == 0
    try:
        calls = []

        class Recording(LocalTransport):
            def run(self, argv, **kwargs):
                calls.append(list(argv))
                return super().run(argv, **kwargs)

        jobs, _ = Registry().all()
        statuses = SlurmBackend().poll(jobs, Recording())
        assert sorted(statuses) == ["poll-1", "poll-2", "poll-3"]
        assert all(s.state.value in ("PENDING", "RUNNING") for s in statuses.values())
        assert [c[0] for c in calls] == ["squeue"]
    finally:
        for name in ("poll-1", "poll-2", "poll-3"):
            vlaunch("down", name)


def test_down_while_scancel_fails_keeps_the_record_and_forget_force_drops_it(tmp_path):
    assert up("--name", "stuck").returncode == 0
    job_id = record("stuck")["native_id"]
    path = path_without("scancel", root=tmp_path / "bin")
    refusing = tmp_path / "bin" / "scancel"
    refusing.write_text(f"#!/bin/sh\necho 'scancel: error: Kill job error on job id {job_id}: Access/permission denied' >&2\n"
                        "exit 1\n")
    refusing.chmod(0o755)
    down = vlaunch("down", "stuck", env={"PATH": path})
    assert_one_line_error(down, f"could not cancel job {job_id}", "Access/permission denied")
    assert record("stuck")["state"] == "RUNNING"
    assert_one_line_error(vlaunch("forget", "stuck"), "job stuck is RUNNING", "forget --force")
    forced = vlaunch("forget", "--force", "stuck")
    assert forced.returncode == 0 and forced.stdout == "forgot job stuck\n"
    assert f"warning: job stuck was RUNNING when forgotten; whatever still runs of it (native id {job_id}" in forced.stderr
    assert "stuck" not in records()
    subprocess.run(["scancel", job_id], check=True)
    assert wait_until(lambda: squeue(job_id) in (None, ("CANCELLED", "None")), 30)
