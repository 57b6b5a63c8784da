"""The pbs backend's submit, poll and cancel paths against recorded PBS Pro and Torque-wrapper outputs."""

from __future__ import annotations

import pytest
from pbs_support import ReplayTransport, fixture

from vlaunch import JobState, api
from vlaunch.errors import ConfigError, SchedulerError, SubmitError
from vlaunch.registry import JobRecord
from vlaunch_pbs import PbsBackend

UNKNOWN = (153, fixture("error_cases_and_listing.txt").split("== qstat -f -F json 99.vm (unknown)\n")[1]
           .split("qstat: Unknown Job Id 99.vm\n")[1].split("rc=153")[0], "qstat: Unknown Job Id 99.vm\n")


def record(native_id: str, dialect: str = "pro", name: str | None = None) -> JobRecord:
    name = name or f"job{native_id.split('.')[0]}"
    return JobRecord(name=name, backend="pbs", profile="cpu-tiny", run_dir=f"/runs/{name}", native_id=native_id,
                     config={"backend": {"pbs": {"dialect": dialect}}})


def ok(name: str) -> tuple[int, str, str]:
    return 0, fixture(name), ""


def test_one_qstat_call_for_all_jobs():
    transport = ReplayTransport({"qstat": [ok("constructed_two_jobs.json")]})
    statuses = PbsBackend().poll([record("1.vm"), record("2.vm")], transport)
    assert transport.calls == [("qstat", "-x", "-f", "-F", "json", "1.vm", "2.vm")]
    assert statuses["job1"].state is JobState.RUNNING and statuses["job2"].state is JobState.PENDING
    assert statuses["job2"].reason.startswith("Not Running: Insufficient amount of resource: ngpus")


def test_a_job_left_out_of_a_multi_job_answer_is_asked_for_again():
    transport = ReplayTransport({"qstat": [ok("running_job.json"), ok("queued_job_gpu4_comment.json")]})
    statuses = PbsBackend().poll([record("1.vm"), record("2.vm")], transport)
    assert transport.calls[1] == ("qstat", "-x", "-f", "-F", "json", "2.vm")
    assert statuses["job2"].state is JobState.PENDING


def test_a_job_the_server_forgot_ends_by_its_exit_marker():
    job = record("9.vm")
    transport = ReplayTransport({"qstat": [UNKNOWN]}, files={job.path("exit_code"): b"0\n"})
    status = PbsBackend().poll([job], transport)["job9"]
    assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)


def test_torque_dialect_asks_the_text_form_and_leaves_completed_jobs_to_the_marker():
    job = record("9", dialect="torque")
    transport = ReplayTransport({"qstat": [ok("torque_wrapper_qstat_f_completed.txt")]},
                                files={job.path("exit_code"): b"3\n"})
    status = PbsBackend().poll([job], transport)["job9"]
    assert transport.calls == [("qstat", "-f", "9")]
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)


def test_jobs_of_both_dialects_are_polled_with_one_call_each():
    transport = ReplayTransport({"qstat": [ok("running_job.json"), ok("torque_wrapper_qstat_f_running.txt")]})
    statuses = PbsBackend().poll([record("1.vm"), record("9", dialect="torque")], transport)
    assert [call[:3] for call in transport.calls] == [("qstat", "-x", "-f"), ("qstat", "-f", "9")]
    assert {s.state for s in statuses.values()} == {JobState.RUNNING}


def test_qstat_failing_for_another_reason_is_an_error_not_a_finished_job():
    usage = (2, "", "Unknown option: x\nUsage:\n    qstat [-f] [job_id...]\n")
    with pytest.raises(SchedulerError, match="qstat failed .*dialect"):
        PbsBackend().poll([record("1.vm")], ReplayTransport({"qstat": [usage]}))


def test_malformed_qstat_output_is_an_error():
    cut = fixture("running_job.json")[:700]
    with pytest.raises(SchedulerError, match="cut short"):
        PbsBackend().poll([record("1.vm")], ReplayTransport({"qstat": [(0, cut, "")]}))


def test_cancel_waits_through_exiting_until_finished():
    running, exiting = fixture("running_job.json"), fixture("running_job.json").replace('"R"', '"E"')
    transport = ReplayTransport({"qdel": [(0, "", "")],
                                 "qstat": [(0, running, ""), (0, exiting, ""), ok("deleted_job_history.json")]})
    job = record("1.vm")
    PbsBackend().cancel(job, transport)
    assert transport.programs() == ["qdel", "qstat", "qstat", "qstat"]
    status = PbsBackend().poll([job], transport)["job1"]
    assert (status.state, status.exit_code) == (JobState.CANCELLED, 271)


def test_cancel_of_a_finished_job_is_quiet():
    transport = ReplayTransport({"qdel": [(35, "", "qdel: Job has finished 4.vm\n")],
                                 "qstat": [ok("finished_job_exit7.json")]})
    PbsBackend().cancel(record("4.vm"), transport)
    assert transport.programs() == ["qdel", "qstat", "qstat"]


def test_cancel_refused_while_running_is_an_error():
    transport = ReplayTransport({"qdel": [(159, "", "qdel: Unauthorized Request  1.vm\n")],
                                 "qstat": [ok("running_job.json")]})
    with pytest.raises(SubmitError, match="could not cancel job 1.vm: qdel: Unauthorized Request"):
        PbsBackend().cancel(record("1.vm"), transport)


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


@pytest.mark.parametrize("name, rc, words", [
    ("qsub_ngpus8_with_queue_resources_max.txt", 188, "qsub: Job violates queue and/or server resource limits"),
    ("constructed_qsub_unknown_queue.txt", 170, "qsub: Unknown queue"),
    ("constructed_qsub_hook_rejected_account.txt", 38, "qsub: Project is required: submit with -A PROJECT"),
    ("torque_wrapper_qsub_unknown_queue.txt", 1, "sbatch: error: invalid partition specified: nosuchqueue"),
])
def test_refusals_carry_the_servers_words(name, rc, words):
    recorded = fixture(name).split("qsub rc=")[0]
    answer = (rc, recorded, "") if name.startswith("torque") else (rc, "", recorded)
    with pytest.raises(SubmitError, match="qsub refused the job") as caught:
        PbsBackend().submit(spec(), "/runs/job/job.sh", ReplayTransport({"qsub": [answer]}))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_submit_without_a_job_id_is_an_error():
    with pytest.raises(SubmitError, match="qsub printed no job id"):
        PbsBackend().submit(spec(), "/runs/job/job.sh", ReplayTransport({"qsub": [(0, "hello\n", "")]}))
