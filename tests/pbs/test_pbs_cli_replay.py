"""PBS Pro through the real CLI, with qsub/qstat/qdel replaying recorded OpenPBS outputs (no PBS Pro
server can run here): pending reasons, one qstat per round, asynchronous deletion, refusals, bad output."""

from __future__ import annotations

import json
import os

import pytest
from pbs_support import fixture, replay_bin

from helpers import assert_one_line_error, fake_command, vlaunch

UP = ["up", "--no-wait", "--profile", "cpu-tiny", "--backend", "pbs", "--model", "fake-model", "--no-check-flags",
      "--set", fake_command()]


def as_job(name: str, job_id: str) -> str:
    """A recorded answer about job ``job_id`` instead of the one it was recorded for."""
    text = fixture(name)
    recorded = next(iter(json.loads(text)["Jobs"]))
    return text.replace(f'"{recorded}"', f'"{job_id}"')


def run(bin_dir, *args):
    return vlaunch(*args, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, timeout=120)


def records(bin_dir, *names):
    result = run(bin_dir, "status", "--json", *names)
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def calls(bin_dir, program):
    path = bin_dir / f"{program}.calls"
    return path.read_text().splitlines() if path.exists() else []


def test_pending_reason_running_and_asynchronous_delete(tmp_path):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "2.vm\n", ""))
    replay_bin(bin_dir, "qstat", (0, fixture("queued_job_gpu4_comment.json"), ""), (0, as_job("running_job.json", "2.vm"), ""),
               (0, as_job("running_job.json", "2.vm").replace('"R"', '"E"'), ""),
               (0, as_job("deleted_job_history.json", "2.vm"), ""))
    replay_bin(bin_dir, "qdel", (0, "", ""))
    submitted = run(bin_dir, *UP, "--name", "pro1")
    assert submitted.returncode == 0, submitted.stderr
    assert "pbs id 2.vm" in submitted.stdout
    script_path = calls(bin_dir, "qsub")[0]
    assert script_path.endswith("/pro1/job.sh") and "#PBS -l select=1\n" in open(script_path).read()
    pending = records(bin_dir)["pro1"]
    assert pending["state"] == "PENDING"
    assert pending["reason"] == "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)"
    assert calls(bin_dir, "qstat") == ["-x -f -F json 2.vm"]
    running = records(bin_dir)["pro1"]
    assert running["state"] == "RUNNING" and running["node"] == "vm"
    down = run(bin_dir, "down", "pro1")
    assert down.returncode == 0, down.stderr
    assert "job pro1: CANCELLED" in down.stdout and "terminated by pbsuser@localhost" in down.stdout
    assert calls(bin_dir, "qdel") == ["2.vm"] and len(calls(bin_dir, "qstat")) >= 4


def test_status_asks_about_all_jobs_in_one_qstat_call(tmp_path):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "1.vm\n", ""), (0, "2.vm\n", ""))
    replay_bin(bin_dir, "qstat", (0, fixture("constructed_two_jobs.json"), ""))
    for name in ("a", "b"):
        assert run(bin_dir, *UP, "--name", name).returncode == 0
    states = {name: r["state"] for name, r in records(bin_dir).items()}
    assert states == {"a": "RUNNING", "b": "PENDING"}
    assert calls(bin_dir, "qstat") == ["-x -f -F json 1.vm 2.vm"]


def test_down_of_a_finished_job(tmp_path):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "4.vm\n", ""))
    replay_bin(bin_dir, "qstat", (0, fixture("finished_job_exit7.json"), ""))
    replay_bin(bin_dir, "qdel", (35, "", "qdel: Job has finished 4.vm\n"))
    assert run(bin_dir, *UP, "--name", "done").returncode == 0
    down = run(bin_dir, "down", "done")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "job done: FAILED (server exited with status 7)"
    again = run(bin_dir, "down", "done")
    assert again.returncode == 0 and again.stdout == down.stdout
    assert calls(bin_dir, "qdel") == ["4.vm"]
    assert records(bin_dir)["done"]["exit_code"] == 7


@pytest.mark.parametrize("cut", [120, 700])
def test_truncated_qstat_output_is_a_clear_error_and_the_record_stays(tmp_path, cut):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "1.vm\n", ""))
    replay_bin(bin_dir, "qstat", (0, fixture("running_job.json")[:cut], ""))
    assert run(bin_dir, *UP, "--name", "cut").returncode == 0
    status = run(bin_dir, "status", "--json")
    assert status.returncode == 0
    assert "warning: pbs: cannot refresh 1 job(s): qstat printed JSON that cannot be read" in status.stderr
    assert "Traceback" not in status.stderr
    [job] = json.loads(status.stdout)
    assert job["name"] == "cut" and job["state"] == "PENDING" and job["native_id"] == "1.vm"


@pytest.mark.parametrize("name, rc, words", [
    ("qsub_ngpus8_with_queue_resources_max.txt", 188, "qsub: Job violates queue and/or server resource limits"),
    ("constructed_qsub_unknown_queue.txt", 170, "qsub: Unknown queue"),
    ("constructed_qsub_hook_rejected_account.txt", 38, "qsub: Project is required"),
])
def test_qsub_refusals_are_one_line_errors_and_recorded(tmp_path, name, rc, words):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (rc, "", fixture(name).split("qsub rc=")[0]))
    result = run(bin_dir, *UP, "--name", "refused")
    assert_one_line_error(result, "qsub refused the job", words)
    job = records(bin_dir)["refused"]
    assert job["state"] == "FAILED" and words in job["reason"]


def test_no_qsub_on_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = vlaunch(*UP, "--name", "noqsub", env={"PATH": str(empty)})
    assert_one_line_error(result, "backend pbs needs `qsub` on the target, which has none")
    assert records(empty, "noqsub")["noqsub"]["state"] == "FAILED"


@pytest.mark.parametrize("name", ["$(touch pwned)", "a;touch pwned", "`touch pwned`", "-N evil"])
def test_hostile_job_names_are_refused(tmp_path, name):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "1.vm\n", ""))
    assert_one_line_error(run(bin_dir, *UP, "--name", name), "job name")
    assert not calls(bin_dir, "qsub") and not (tmp_path / "pwned").exists()
