"""JobSession: stored state wins over stale copies, final states stay, unreachable loopback servers."""

from __future__ import annotations

import pytest

from vlaunch.errors import NotReady
from vlaunch.plugins import get_host
from vlaunch.registry import JobRecord, Registry
from vlaunch.lifecycle import apply_status
from vlaunch.session import JobSession
from vlaunch.states import JobState, JobStatus
from vlaunch.testing import RecordingTransport, ok, process_list


def record(**changes):
    return JobRecord(name="j", backend="local", profile="cpu-tiny", run_dir="/srv/j", native_id="5", **changes)


def test_a_final_state_is_not_rewritten(isolated):
    registry = Registry()
    rec = record(state=JobState.CANCELLED, reason="cancelled by vlaunch down")
    registry.create(rec)
    apply_status(registry, rec, JobStatus(JobState.FAILED, "server exited with status 143", exit_code=143))
    assert registry.get("j").state is JobState.CANCELLED


def test_refresh_starts_from_the_stored_record(isolated):
    registry = Registry()
    stale = record(state=JobState.RUNNING)
    registry.create(stale)
    stored = registry.get("j")
    stored.cancel_requested = True
    registry.save(stored)
    transport = RecordingTransport()
    transport.answer("ps", process_list("    1 Ss   /sbin/init"))  # group 5 is gone
    transport.files["/srv/j/exit_code"] = "143\n"
    transport.files["/srv/j/signalled"] = "TERM 30\n"  # what the script writes when down stops it
    session = JobSession(get_host(), registry, stale, transport)
    status = session.refresh()  # cancel_requested came from the registry: "by vlaunch down", not "SIGTERM"
    assert (status.state, status.reason) == (JobState.CANCELLED, "cancelled by vlaunch down")
    assert registry.get("j").state is JobState.CANCELLED


def test_loopback_server_on_another_node_is_reported(isolated):
    registry = Registry()
    rec = record()
    registry.create(rec)
    transport = RecordingTransport()
    transport.answer("hostname", ok("login1\n"))
    session = JobSession(get_host(), registry, rec, transport)
    with pytest.raises(NotReady, match=r"binds 127.0.0.1 on node gpu7, which login1 cannot reach; set server.host"):
        session.publish({"host": "gpu7", "port": 8000, "pid": 1})
