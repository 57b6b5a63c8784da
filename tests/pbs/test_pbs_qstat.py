"""Reading qstat: recorded OpenPBS JSON, recorded Torque-wrapper text, PBS Pro's text layout, bad output."""

from __future__ import annotations

import pytest
from pbs_support import fixture

from vlaunch import JobState
from vlaunch.errors import SchedulerError
from vlaunch_pbs.qstat import exec_nodes, parse_qstat


def test_running_job_with_its_node():
    status = parse_qstat(fixture("running_job.json"))["1.vm"]
    assert status.state is JobState.RUNNING and status.native_state == "R"
    assert status.nodes == ("vm",)


def test_queued_job_gives_the_comment_as_reason():
    status = parse_qstat(fixture("queued_job_gpu4_comment.json"))["2.vm"]
    assert status.state is JobState.PENDING
    assert status.reason == "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)"


def test_job_that_can_never_run_stays_pending_with_pbs_words():
    status = parse_qstat(fixture("queued_job_gpu8_never_run.json"))["3.vm"]
    assert status.state is JobState.PENDING and status.reason.startswith("Can Never Run: Insufficient amount")


def test_held_job_says_who_holds_it():
    status = parse_qstat(fixture("constructed_held_job.json"))["2.vm"]
    assert status.state is JobState.PENDING and status.native_state == "H"
    assert status.reason == "held (user hold; qrls releases it)"


@pytest.mark.parametrize("name, job_id, state, code", [
    ("finished_job_exit0.json", "2.vm", JobState.COMPLETED, 0),
    ("finished_job_exit7.json", "4.vm", JobState.FAILED, 7),
    ("deleted_job_history.json", "1.vm", JobState.CANCELLED, 271),
    ("deleted_queued_job.json", "3.vm", JobState.CANCELLED, None),
])
def test_finished_jobs_from_history(name, job_id, state, code):
    status = parse_qstat(fixture(name))[job_id]
    assert (status.state, status.exit_code, status.native_state) == (state, code, "F")


def test_finished_reasons_are_readable():
    assert parse_qstat(fixture("finished_job_exit7.json"))["4.vm"].reason == "server exited with status 7"
    assert "terminated by pbsuser@localhost" in parse_qstat(fixture("deleted_job_history.json"))["1.vm"].reason


def test_walltime_kill_is_a_timeout():
    text = fixture("finished_job_exit7.json").replace('"Exit_status":\t7', '"Exit_status":\t-29')
    status = parse_qstat(text)["4.vm"]
    assert status.state is JobState.TIMEOUT and "walltime" in status.reason


def test_signal_exit_status_is_decoded():
    text = fixture("finished_job_exit7.json").replace('"Exit_status":\t7', '"Exit_status":\t265')
    assert parse_qstat(text)["4.vm"].reason == "killed by signal 9 (Exit_status 265)"


def test_several_jobs_in_one_answer_and_bare_sequence_numbers():
    statuses = parse_qstat(fixture("constructed_two_jobs.json"))
    assert statuses["1.vm"].state is JobState.RUNNING and statuses["2.vm"].state is JobState.PENDING
    assert statuses["1"] is statuses["1.vm"] and statuses["2"] is statuses["2.vm"]


def test_finished_job_without_x_lists_nothing():
    skeleton = fixture("error_cases_and_listing.txt").split("\n", 2)[2].split("rc=35")[0]
    assert skeleton.lstrip().startswith("{") and parse_qstat(skeleton) == {}


def test_pbs_pro_text_layout_with_continued_lines():
    statuses = parse_qstat(fixture("constructed_pro_text_qstat_xf.txt"))
    assert statuses["1.vm"].state is JobState.RUNNING and statuses["1.vm"].nodes == ("vm",)
    assert statuses["3.vm"].reason == "Can Never Run: Insufficient amount of resource: ngpus (R: 8 A: 4 T: 4)"
    assert (statuses["4.vm"].state, statuses["4.vm"].exit_code) == (JobState.FAILED, 7)


def test_torque_wrapper_text():
    running = parse_qstat(fixture("torque_wrapper_qstat_f_running.txt"))
    [(job_id, status)] = running.items()
    assert job_id.isdigit() and status.state is JobState.RUNNING and status.nodes == ("vm",)


def test_torque_completed_without_exit_status_is_left_to_the_exit_marker():
    assert parse_qstat(fixture("torque_wrapper_qstat_f_completed.txt")) == {}


def test_exec_host_of_several_nodes():
    assert exec_nodes("x1/0*4+x2/0*4+x1/1") == ("x1", "x2")
    assert exec_nodes(None) == ()


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_json_is_a_clear_error(cut):
    text = fixture("running_job.json")
    with pytest.raises(SchedulerError, match="cannot be read .*cut short"):
        parse_qstat(text[: int(len(text) * cut)])


def test_truncated_text_is_a_clear_error():
    text = fixture("torque_wrapper_qstat_f_running.txt")
    with pytest.raises(SchedulerError, match="without a job_state"):
        parse_qstat(text[: text.index("job_state")])


@pytest.mark.parametrize("garbage", ["Segmentation fault", '{"Jobs": ["1.vm"]}', "[1, 2]",
                                     "Job Id: 5\n    Exit_status = nope\n    job_state = F\n"])
def test_unreadable_output_is_a_clear_error(garbage):
    with pytest.raises(SchedulerError):
        parse_qstat(garbage)


def test_unknown_state_letter_is_unknown_not_a_crash():
    text = fixture("running_job.json").replace('"job_state":\t"R"', '"job_state":\t"M"')
    assert parse_qstat(text)["1.vm"].state is JobState.UNKNOWN
