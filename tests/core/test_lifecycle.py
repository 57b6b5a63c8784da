"""The lifecycle engine's rules (docs/lifecycle.md), unit by unit: a failed observation is no evidence,
absence is confirmed before a live job is LOST, a cancel is confirmed, waiting callers retry."""

from __future__ import annotations

import pytest

from vlaunch import JobState, lifecycle
from vlaunch.errors import CancelError, ConnectionLost, TransportError
from vlaunch.registry import JobRecord
from vlaunch.states import JobStatus
from vlaunch.testing.fakes import RecordingTransport, fail, ok, process_list
from vlaunch_local import LocalBackend
from vlaunch_slurm import SlurmBackend

JOB_LINE = "   77 S    bash /runs/j/job.sh"


def record(**changes) -> JobRecord:
    fields = {"name": "j", "backend": "local", "profile": "p", "run_dir": "/runs/j", "native_id": "77",
              "state": JobState.RUNNING, **changes}
    return JobRecord(**fields)


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch):
    monkeypatch.setattr(lifecycle.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize("listing, words", [
    (fail(1, "ps: cannot read /proc"), r"ps failed \(exit status 1\): ps: cannot read /proc"),
    (ok(f"{JOB_LINE}\n"), "incomplete process list"),
])
def test_a_failed_process_listing_is_no_evidence(listing, words):
    transport = RecordingTransport()
    transport.answer("ps", listing)
    with pytest.raises(TransportError, match=words):
        LocalBackend().poll([record()], transport)


def test_a_live_job_missing_once_is_looked_for_again_before_it_is_lost():
    transport = RecordingTransport()
    transport.answer("ps", process_list(), process_list(JOB_LINE))
    assert LocalBackend().poll([record()], transport)["j"].state is JobState.RUNNING
    assert len(transport.commands("ps")) == 2


def test_a_job_missing_twice_is_lost_and_a_lost_one_is_not_looked_for_twice():
    transport = RecordingTransport()
    transport.answer("ps", process_list())
    assert LocalBackend().poll([record()], transport)["j"].state is JobState.LOST
    assert len(transport.commands("ps")) == 2
    assert LocalBackend().poll([record(state=JobState.LOST)], transport)["j"].state is JobState.LOST
    assert len(transport.commands("ps")) == 3


def test_a_group_of_a_run_directory_with_a_longer_name_is_not_the_job():
    transport = RecordingTransport()
    transport.answer("ps", process_list("   77 S    bash /runs/j-2/job.sh"))
    assert LocalBackend().poll([record()], transport)["j"].state is JobState.LOST


def test_many_jobs_cost_one_scheduler_round():
    transport = RecordingTransport()
    transport.answer("squeue", ok("1|RUNNING|None|n1|0|\n2|PENDING|Resources||0|\n3|RUNNING|None|n2|0|\n"))
    jobs = [record(name=f"j{i}", backend="slurm", native_id=str(i), run_dir=f"/runs/j{i}") for i in (1, 2, 3)]
    statuses = SlurmBackend().poll(jobs, transport)
    assert [statuses[f"j{i}"].state for i in (1, 2, 3)] == [JobState.RUNNING, JobState.PENDING, JobState.RUNNING]
    assert [call[0] for call in transport.calls] == ["squeue"]


def test_a_group_that_outlives_sigkill_is_a_clear_error():
    transport = RecordingTransport()
    transport.answer("ps", process_list(JOB_LINE))
    job = record(config={"backend": {"local": {"kill_grace": 0.01}}})
    with pytest.raises(CancelError, match="local: job 77 is still RUNNING"):
        LocalBackend().cancel(job, transport)
    assert [call[:2] for call in transport.commands("kill")] == [("kill", "-TERM"), ("kill", "-KILL")]


def test_a_refused_signal_is_a_clear_error():
    transport = RecordingTransport()
    transport.answer("ps", process_list(JOB_LINE))
    transport.answer("kill", fail(1, "kill: (77) - Operation not permitted"))
    with pytest.raises(CancelError, match="could not cancel job 77: kill: .* Operation not permitted"):
        LocalBackend().cancel(record(), transport)


class _Session:
    """What :class:`lifecycle.Liveness` uses of a job session: a transport, a record, a refresh."""

    def __init__(self, *outcomes):
        self.transport, self.record, self.backend = RecordingTransport(), record(), LocalBackend()
        self.outcomes = list(outcomes)

    def refresh(self):
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_waiting_callers_retry_an_observation_that_fails():
    running = JobStatus(JobState.RUNNING)
    liveness = lifecycle.Liveness(_Session(TransportError("ps printed an incomplete process list"), running))
    assert liveness.check(force=True) == (None, None)
    assert liveness.problem == "cannot observe the job (retrying): ps printed an incomplete process list"
    assert liveness.check(force=True) == (running, None) and liveness.problem is None


def test_waiting_callers_give_up_after_their_patience(monkeypatch):
    clock = iter([0.0, 1.0, lifecycle.OBSERVE_PATIENCE + 0.5])  # patience counts from the first failure
    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: next(clock))
    failure = TransportError("scheduler down")
    liveness = lifecycle.Liveness(_Session(failure, failure, failure))
    assert liveness.check(force=True) == (None, None)
    assert liveness.check(force=True) == (None, None)
    with pytest.raises(TransportError, match="scheduler down"):
        liveness.check(force=True)


def test_a_lost_connection_is_not_retried():
    liveness = lifecycle.Liveness(_Session(ConnectionLost("the ssh connection to gpu was lost")))
    with pytest.raises(ConnectionLost):
        liveness.check(force=True)


def test_down_waits_for_the_scripts_word_after_the_scheduler_let_go(monkeypatch):
    """Slurm's Torque wrappers list a COMPLETING job as ended: a cancelled job whose server had started is
    confirmed once its script wrote the exit marker (its word that no process is left), not before."""
    transport = RecordingTransport()
    transport.answer("squeue", ok("5|RUNNING|None|n1|0|\n"), ok(""))
    transport.answer("sacct", ok("5|CANCELLED by 0|0:15|n1|\n"))
    job = record(backend="slurm", native_id="5")
    transport.files[job.path("rendezvous.json")] = '{"host": "n1", "port": 1, "pid": 2}'
    pauses = []

    def pause(seconds):
        pauses.append(seconds)
        if len(pauses) == 3:
            transport.files[job.path(lifecycle.EXIT_MARKER)] = "143\n"

    monkeypatch.setattr(lifecycle.time, "sleep", pause)
    SlurmBackend().cancel(job, transport)
    assert transport.commands("scancel") and len(pauses) == 3


def test_a_process_backend_does_not_wait_for_the_marker(monkeypatch):
    transport = RecordingTransport()
    transport.answer("ps", process_list(JOB_LINE), process_list())
    job = record()
    transport.files[job.path("rendezvous.json")] = '{"host": "h", "port": 1, "pid": 77}'
    read = []
    monkeypatch.setattr(transport, "read_file", lambda path, offset=0: read.append(path))
    LocalBackend().cancel(job, transport)
    assert [call[:2] for call in transport.commands("kill")] == [("kill", "-TERM")]
    assert read == []  # its group is gone only when every process of it is: nothing to wait for
