"""How a job ended comes from evidence: the exit marker (written once every process of the server is
gone), the signalled marker, the scheduler; never from absence alone (docs/lifecycle.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import fake_command, live_group_members, vlaunch, wait_until
from vlaunch import JobState
from vlaunch.lifecycle import apply_status, ended_status
from vlaunch.registry import JobRecord, Registry
from vlaunch.states import JobStatus
from vlaunch.testing.fakes import RecordingTransport, fail, ok

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


def records():
    return {r["name"]: r for r in json.loads(vlaunch("status", "--json").stdout)}


def record(**changes) -> JobRecord:
    fields = {"name": "j", "backend": "slurm", "profile": "p", "run_dir": "/runs/j", "native_id": "7",
              "config": {"resources": {"walltime": "01:00:00"}}, **changes}
    return JobRecord(**fields)


def until_not_running(name: str, seconds: float) -> dict:
    """The job's record once it no longer says RUNNING (or the last one after ``seconds``): one
    `vlaunch status` per look."""
    deadline = time.monotonic() + seconds
    while True:
        job = records()[name]
        if job["state"] != "RUNNING" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


# -- the markers, unit by unit ----------------------------------------------------------------------
@pytest.mark.parametrize("files, state, words", [
    ({}, JobState.LOST, "left no exit marker"),
    ({"exit_code": "0\n"}, JobState.COMPLETED, "server exited normally"),
    ({"exit_code": "137\n"}, JobState.FAILED, "server exited with status 137 (SIGKILL, killed: "),
    ({"exit_code": "3\n"}, JobState.FAILED, "server exited with status 3"),
    ({"exit_code": "1 the server stopped by itself\n"}, JobState.FAILED, "the server stopped by itself"),
    ({"exit_code": "? the job script was killed\n"}, JobState.FAILED, "the job script was killed"),
    ({"exit_code": "garbage"}, JobState.FAILED, "unreadable"),
    ({"exit_code": "garbage words"}, JobState.FAILED, "unreadable"),
    ({"exit_code": "0\n", "signalled": "TERM 12\n"}, JobState.CANCELLED, "SIGTERM after 12 s"),
    ({"signalled": "TERM 12\n"}, JobState.CANCELLED, "SIGTERM after 12 s"),
    ({"exit_code": "0\n", "signalled": "TERM 3598\n"}, JobState.TIMEOUT, "walltime"),
])
def test_an_ended_job_is_read_from_its_markers(files, state, words):
    transport = RecordingTransport()
    transport.files = {f"/runs/j/{leaf}": text for leaf, text in files.items()}
    status = ended_status(record(), transport, "slurm")
    assert status.state is state and words in status.reason, status


@pytest.mark.parametrize("marker, state", [("143\n", JobState.CANCELLED), ("137\n", JobState.CANCELLED),
                                           ("3\n", JobState.FAILED)])
def test_a_server_killed_by_a_signal_after_a_cancel_was_asked_for_is_cancelled(marker, state):
    """The scheduler signals every process of the job: the server may die of it before the script hears
    its own and writes the signalled marker; a status of its own (3) still fails."""
    transport = RecordingTransport()
    transport.files = {"/runs/j/exit_code": marker}
    status = ended_status(record(cancel_requested=True, cancel_cause="cancelled by vlaunch down"), transport, "pbs")
    assert status.state is state, status


def test_lost_is_corrected_by_later_evidence_and_settled_states_stay(isolated):
    registry = Registry()
    rec = record()
    registry.create(rec)
    apply_status(registry, rec, JobStatus(JobState.LOST, "gone"))
    apply_status(registry, rec, JobStatus(JobState.FAILED, "server exited with status 3", 3))
    assert (rec.state, rec.exit_code) == (JobState.FAILED, 3)
    apply_status(registry, rec, JobStatus(JobState.LOST, "gone"))
    assert registry.get("j").state is JobState.FAILED


def test_a_marker_beats_a_scheduler_still_showing_the_job_running():
    from vlaunch_slurm import SlurmBackend

    transport = RecordingTransport()
    transport.answer("squeue", ok("7|COMPLETING|None|vm|0|\n"))
    transport.files["/runs/j/exit_code"] = "137\n"
    status = SlurmBackend().poll([record()], transport)["j"]
    assert (status.state, status.exit_code) == (JobState.FAILED, 137)


def test_cancel_that_cannot_be_confirmed_leaves_the_record_as_it_was(isolated):
    from vlaunch.plugins import get_host
    from vlaunch.session import JobSession

    registry = Registry()
    rec = record()
    registry.create(rec)
    transport = RecordingTransport()
    transport.answer("scancel", fail(1, "scancel: error: Kill job error on job id 7: Access/permission denied"))
    transport.answer("squeue", ok("7|RUNNING|None|vm|0|\n"))
    session = JobSession(get_host(), registry, rec, transport)
    with pytest.raises(Exception, match="could not cancel job 7"):
        session.cancel()
    stored = registry.get("j")
    assert not stored.cancel_requested and stored.cancel_cause is None and stored.state is JobState.PENDING


# -- the job script on the local backend, with real processes ---------------------------------------
@pytest.mark.parametrize("engine", ["term", "stubborn"])
def test_kill_9_of_the_server_ends_every_process_it_left_and_says_failed(isolated, engine):
    result = vlaunch("up", *FAKE, "--name", "k9", env={"FAKE_ENGINE": engine}, timeout=120)
    assert result.returncode == 0, result.stderr
    job = records()["k9"]
    assert len(live_group_members(job["native_id"])) >= 3  # script, server, its engine
    pid = json.loads((isolated / "state" / "runs" / "k9" / "rendezvous.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    state = until_not_running("k9", 10)
    assert time.monotonic() - killed < 5, state
    assert state["state"] == "FAILED" and state["exit_code"] == 137, state
    assert live_group_members(job["native_id"]) == []
    assert "ending processes the server left" in vlaunch("logs", "k9").stdout


def test_a_term_from_outside_is_cancelled_not_a_clean_exit(isolated):
    assert vlaunch("up", *FAKE, "--name", "t", timeout=120).returncode == 0
    job = records()["t"]
    os.killpg(int(job["native_id"]), signal.SIGTERM)  # what a scheduler's qdel or a preemption does
    state = until_not_running("t", 20)
    assert state["state"] == "CANCELLED" and "SIGTERM" in state["reason"], state


def test_a_term_that_reaches_the_server_before_the_script_is_still_a_cancel(isolated):
    """A scheduler's qdel signals the server and the script in turn; here the script's TERM comes while it
    is ending what the server left (a stubborn engine keeps it there for 3 s)."""
    assert vlaunch("up", *FAKE, "--name", "ts", env={"FAKE_ENGINE": "stubborn"}, timeout=120).returncode == 0
    job, run = records()["ts"], isolated / "state" / "runs" / "ts"
    os.kill(json.loads((run / "rendezvous.json").read_text())["pid"], signal.SIGTERM)
    # Read the log file itself: the stubborn engine holds the script there 3 s, less than `vlaunch logs` can
    # take to start on a busy machine.
    assert wait_until(lambda: "ending processes the server left" in (run / "server.log").read_text(), 20, 0.2)
    os.kill(int(job["native_id"]), signal.SIGTERM)
    state = until_not_running("ts", 20)
    assert state["state"] == "CANCELLED" and "SIGTERM" in state["reason"], state
    assert live_group_members(job["native_id"]) == []


def test_a_job_whose_processes_vanished_without_a_marker_is_lost_not_failed(isolated):
    assert vlaunch("up", *FAKE, "--name", "gone", timeout=120).returncode == 0
    job = records()["gone"]
    os.killpg(int(job["native_id"]), signal.SIGKILL)  # a node reboot, as far as the job can tell
    state = until_not_running("gone", 10)
    assert state["state"] == "LOST" and "no exit marker" in state["reason"], state
    assert vlaunch("down", "gone").returncode == 0
    assert vlaunch("forget", "gone").returncode == 0


def test_ctrl_c_during_up_cancels_and_says_so(isolated):
    process = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "vlaunch"), "up", *FAKE, "--name", "ci"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "FAKE_HEALTH_DELAY": "60"},  # and SIGINT ignored, as in a script's
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # background job
    assert wait_until(lambda: (isolated / "state" / "runs" / "ci" / "rendezvous.json").exists(), 30, 0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted: job ci cancelled"
    job = records()["ci"]
    assert job["state"] == "CANCELLED" and job["reason"] == "interrupted during vlaunch up"
    assert live_group_members(job["native_id"]) == []


def test_a_server_that_dies_before_ready_is_cancelled_and_down_still_asks(isolated):
    result = vlaunch("up", *FAKE, "--name", "dies", env={"FAKE_EXIT_CODE": "3"}, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "error: server ended before it was ready (server exited with status 3)\nlast log lines:" in result.stderr
    assert records()["dies"]["state"] == "FAILED"
    again = vlaunch("down", "dies")
    assert again.returncode == 0 and "FAILED (server exited with status 3)" in again.stdout
