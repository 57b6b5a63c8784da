"""The pbs backend's submit, poll and cancel paths against recorded PBS Pro and Torque-wrapper outputs."""

from __future__ import annotations

import pytest
from pbs_support import ReplayTransport, answer, fixture, recorded

from vlaunch import JobState, api
from vlaunch.errors import CancelError, ConfigError, SchedulerError, SubmitError
from vlaunch.registry import JobRecord
from vlaunch_pbs import PbsBackend

def record(native_id: str, dialect: str = "pro", name: str | None = None) -> JobRecord:
    name = name or f"job{native_id.split('.')[0]}"
    return JobRecord(name=name, backend="pbs", profile="cpu-tiny", run_dir=f"/runs/{name}", native_id=native_id,
                     config={"backend": {"pbs": {"dialect": dialect}}})


def ok(name: str) -> tuple[int, str, str]:
    return 0, fixture(name), ""


DSV = ("qstat", "-f", "-F", "dsv")
#: qstat -F dsv of a job the server no longer knows: nothing on stdout, the recorded message, rc 153.
GONE = (153, "", recorded("history_off", "g_after_f_json")["stderr"])
HISTORY = ("qstat", "-x", "-f", "-F", "dsv")


def test_one_qstat_call_for_all_live_jobs():
    transport = ReplayTransport({"qstat": [answer("history_off", "d_multi_f_dsv")]})
    statuses = PbsBackend().poll([record("7.vm"), record("8.vm"), record("9.vm")], transport)
    assert transport.calls == [(*DSV, "7.vm", "8.vm", "9.vm")]
    assert [statuses[f"job{i}"].state for i in (7, 8, 9)] == [JobState.RUNNING, JobState.PENDING, JobState.PENDING]
    assert statuses["job8"].reason.startswith("Not Running: Insufficient amount of resource: ngpus")


def test_without_history_ended_jobs_are_read_from_their_markers_and_live_ones_never_asked_with_x():
    jobs = [record("7.vm"), record("5.vm"), record("6.vm")]
    files = {jobs[1].path("exit_code"): b"0\n", jobs[2].path("exit_code"): b"3\n"}
    transport = ReplayTransport({"qstat": [answer("history_off", "f_multi_live_exit0_exit3_f_dsv"),
                                           answer("history_off", "f_multi_live_exit0_exit3_xf_dsv")]}, files)
    statuses = PbsBackend().poll(jobs, transport)
    assert transport.calls == [(*DSV, "5.vm", "6.vm", "7.vm"), (*HISTORY, "5.vm", "6.vm")]
    assert statuses["job7"].state is JobState.RUNNING
    assert (statuses["job5"].state, statuses["job6"].state, statuses["job6"].exit_code) == (
        JobState.COMPLETED, JobState.FAILED, 3)


def test_with_history_ended_jobs_come_from_the_server():
    jobs = [record("29.vm"), record("27.vm"), record("28.vm")]
    transport = ReplayTransport({"qstat": [answer("history_on", "f_multi_live_exit0_exit3_f_dsv"),
                                           answer("history_on", "f_multi_live_exit0_exit3_xf_dsv")]})
    statuses = PbsBackend().poll(jobs, transport)
    assert transport.calls[1] == (*HISTORY, "27.vm", "28.vm")
    assert [statuses[f"job{i}"].state for i in (29, 27, 28)] == [JobState.RUNNING, JobState.COMPLETED, JobState.FAILED]


def test_a_job_gone_without_history_or_marker_is_lost_not_failed():
    transport = ReplayTransport({"qstat": [GONE, answer("history_off", "g_after_xf_dsv")]})
    status = PbsBackend().poll([record("7.vm")], transport)["job7"]
    assert status.state is JobState.LOST and "no exit marker" in status.reason


def test_torque_dialect_asks_the_text_form_and_leaves_completed_jobs_to_the_marker():
    job = record("9", dialect="torque")
    transport = ReplayTransport({"qstat": [ok("torque_wrapper_qstat_f_completed.txt")]},
                                files={job.path("exit_code"): b"3\n"})
    status = PbsBackend().poll([job], transport)["job9"]
    assert transport.calls == [("qstat", "-f", "9")]
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)


def test_jobs_of_both_dialects_are_polled_with_one_call_each():
    transport = ReplayTransport({"qstat": [answer("history_off", "b_running_f_dsv"),
                                           ok("torque_wrapper_qstat_f_running.txt")]})
    statuses = PbsBackend().poll([record("7.vm"), record("9", dialect="torque")], transport)
    assert [call[:3] for call in transport.calls] == [("qstat", "-f", "-F"), ("qstat", "-f", "9")]
    assert {s.state for s in statuses.values()} == {JobState.RUNNING}


def test_qstat_failing_for_another_reason_is_an_error_not_a_finished_job():
    usage = (2, "", "Unknown option: x\nUsage:\n    qstat [-f] [job_id...]\n")
    with pytest.raises(SchedulerError, match="qstat failed .*dialect"):
        PbsBackend().poll([record("1.vm")], ReplayTransport({"qstat": [usage]}))


def test_malformed_qstat_output_is_an_error():
    rc, stdout, _ = answer("history_off", "b_running_f_dsv")
    with pytest.raises(SchedulerError, match="cut short"):
        PbsBackend().poll([record("7.vm")], ReplayTransport({"qstat": [(0, stdout[:stdout.index("|job_state")], "")]}))


def test_cancel_waits_until_the_server_no_longer_lists_the_job():
    deleting = recorded("history_off", "g_after_qdel_running_poll")["samples"][0]
    transport = ReplayTransport({"qdel": [answer("history_off", "g_qdel_running")],
                                 "qstat": [answer("history_off", "b_running_f_dsv"), (0, deleting["stdout"], ""), GONE,
                                           answer("history_off", "g_after_xf_dsv")]})
    PbsBackend().cancel(record("7.vm"), transport)
    assert transport.programs() == ["qstat", "qdel", "qstat", "qstat", "qstat"]


def test_cancel_of_a_finished_job_is_quiet():
    transport = ReplayTransport({"qdel": [answer("history_on", "j_qdel_finished")],
                                 "qstat": [answer("history_on", "f_exit0_f_dsv"), answer("history_on", "f_exit0_xf_dsv")]})
    PbsBackend().cancel(record("27.vm"), transport)
    assert transport.programs() == ["qstat", "qstat"]  # not live: nothing to delete


def test_cancel_refused_while_running_is_an_error():
    # qdel's refusal is constructed (the recording user owned every job); the running job is recorded.
    transport = ReplayTransport({"qdel": [(159, "", "qdel: Unauthorized Request  7.vm\n")],
                                 "qstat": [answer("history_off", "b_running_f_dsv")]})
    with pytest.raises(CancelError, match="could not cancel job 7.vm: qdel: Unauthorized Request"):
        PbsBackend().cancel(record("7.vm"), transport)


def spec(*sets: str, name: str = "job", run_root: str = "/runs"):
    prepared = api.prepare("cpu-tiny", "pbs", api.Overrides(sets=list(sets), model="m"))
    return prepared.job(name, f"{run_root}/{name}")


@pytest.mark.parametrize("printed, job_id", [("2.vm\n", "2.vm"), ("8\n", "8"),
                                             ("123.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov\n",
                                              "123.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov")])
def test_submit_reads_the_job_id(printed, job_id):
    transport = ReplayTransport({"qsub": [(0, printed, "")]})
    assert PbsBackend().submit(spec(), "/runs/job/job.sh", transport) == job_id
    assert transport.calls == [("qsub", "/runs/job/job.sh")]


def test_torque_dialect_passes_join_and_output_on_the_command_line():
    transport = ReplayTransport({"qsub": [(0, "8\n", "")]})
    PbsBackend().submit(spec("backend.pbs.dialect=torque"), "/runs/job/job.sh", transport)
    assert transport.calls == [("qsub", "-j", "oe", "-o", "/runs/job/pbs.out", "/runs/job/job.sh")]


def test_torque_dialect_refuses_paths_a_wrapper_would_hand_to_a_shell():
    job = spec("backend.pbs.dialect=torque", run_root="/runs/a b;touch x")
    with pytest.raises(ConfigError, match="hand to a shell"):
        PbsBackend().submit(job, job.path("job.sh"), ReplayTransport({"qsub": [(0, "8\n", "")]}))


@pytest.mark.parametrize("history, case, words", [
    ("history_off", "k_qsub_too_many_ngpus_select", "qsub: Job violates queue and/or server resource limits"),
    ("history_off", "k_qsub_unknown_queue", "qsub: Unknown queue"),
    ("history_off", "k_qsub_walltime_garbage", "qsub: Illegal attribute or resource value Resource_List.walltime"),
])
def test_refusals_carry_the_servers_words(history, case, words):
    with pytest.raises(SubmitError, match="qsub refused the job") as caught:
        PbsBackend().submit(spec(), "/runs/job/job.sh", ReplayTransport({"qsub": [answer(history, case)]}))
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name, rc, words", [
    ("constructed_qsub_hook_rejected_account.txt", 38, "qsub: Project is required: submit with -A PROJECT"),
    ("torque_wrapper_qsub_unknown_queue.txt", 1, "sbatch: error: invalid partition specified: nosuchqueue"),
])
def test_refusals_of_hooks_and_wrappers_carry_their_words(name, rc, words):
    recorded_text = fixture(name).split("qsub rc=")[0]
    reply = (rc, recorded_text, "") if name.startswith("torque") else (rc, "", recorded_text)
    with pytest.raises(SubmitError, match="qsub refused the job") as caught:
        PbsBackend().submit(spec(), "/runs/job/job.sh", ReplayTransport({"qsub": [reply]}))
    assert words in str(caught.value) and "\n" not in str(caught.value)
