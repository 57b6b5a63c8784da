"""Reading qstat: the dsv form recorded from a real OpenPBS 23.06 server (history off and on), the
text form of Torque-style wrappers and of PBS Pro, and output vlaunch cannot read."""

from __future__ import annotations

import pytest
from pbs_support import fixture, recorded

from vlaunch import JobState
from vlaunch.errors import SchedulerError
from vlaunch_pbs.qstat import exec_nodes, parse_dsv_jobs, parse_qstat


def dsv(history: str, case: str):
    return parse_qstat(recorded(history, case)["stdout"], "dsv")


def test_running_job_with_its_node_and_no_reason_from_its_start_comment():
    status = dsv("history_off", "b_running_f_dsv")["7.vm"]
    assert (status.state, status.nodes, status.reason) == (JobState.RUNNING, ("vm",), None)


def test_queued_job_gives_the_comment_as_reason():
    status = dsv("history_off", "c_queued_f_dsv")["8.vm"]
    assert status.state is JobState.PENDING
    assert status.reason == "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)"


def test_a_job_being_deleted_is_still_running_and_says_by_whom():
    answer = recorded("history_off", "g_after_qdel_running_poll")["samples"][0]["stdout"]
    status = parse_qstat(answer, "dsv")["7.vm"]
    assert status.state is JobState.RUNNING and status.reason == "being deleted by pbsuser@vm"


def test_held_job_says_who_holds_it_and_escaped_delimiters_are_undone():
    answer = recorded("history_off", "x_held_f_dsv")["stdout"]
    [(job_id, attrs)] = parse_dsv_jobs(answer).items()
    assert "PIPEVAR=c|d" in attrs["Submit_arguments"] and "BSVAR=a\\b" in attrs["Submit_arguments"]
    status = parse_qstat(answer, "dsv")[job_id]
    assert status.state is JobState.PENDING and status.reason == "held (user hold; qrls releases it)"


@pytest.mark.parametrize("case, job_id, state, code, reason", [
    ("f_exit0_xf_dsv", "27.vm", JobState.COMPLETED, 0, "server exited normally"),
    ("f_exit3_xf_dsv", "28.vm", JobState.FAILED, 3, "server exited with status 3"),
    ("g_after_xf_dsv", "29.vm", JobState.CANCELLED, 271, "deleted by pbsuser@vm (Exit_status 271)"),
    ("h_after_xf_dsv", "31.vm", JobState.CANCELLED, None, "deleted before it ran"),
    ("i_walltime_after_xf_dsv", "45.vm", JobState.TIMEOUT, -29, "killed at its walltime limit (Exit_status -29)"),
])
def test_finished_jobs_from_history(case, job_id, state, code, reason):
    [(found, status)] = [(k, v) for k, v in dsv("history_on", case).items() if "." in k]
    assert found == job_id
    assert (status.state, status.exit_code, status.reason) == (state, code, reason)


def test_one_answer_lists_every_job_asked_for():
    statuses = dsv("history_off", "d_multi_f_dsv")
    assert {k: v.state for k, v in statuses.items() if "." in k} == {
        "7.vm": JobState.RUNNING, "8.vm": JobState.PENDING, "9.vm": JobState.PENDING}
    assert statuses["7"] is statuses["7.vm"]


def test_signal_exit_status_is_decoded():
    answer = recorded("history_on", "f_exit3_xf_dsv")["stdout"].replace("Exit_status=3", "Exit_status=265")
    assert parse_qstat(answer, "dsv")["28.vm"].reason == "killed by signal 9 (Exit_status 265)"


def test_pbs_pro_text_layout_with_continued_lines():
    statuses = parse_qstat(recorded("history_off", "d_multi_f_text")["stdout"], "text")
    assert statuses["7.vm"].state is JobState.RUNNING and statuses["7.vm"].nodes == ("vm",)
    assert statuses["8.vm"].reason == "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)"


def test_torque_wrapper_text():
    running = parse_qstat(fixture("torque_wrapper_qstat_f_running.txt"), "text")
    [(job_id, status)] = running.items()
    assert job_id.isdigit() and status.state is JobState.RUNNING and status.nodes == ("vm",)


def test_torque_completed_without_exit_status_is_left_to_the_exit_marker():
    assert parse_qstat(fixture("torque_wrapper_qstat_f_completed.txt"), "text") == {}


def test_exec_host_of_several_nodes():
    assert exec_nodes("x1/0*4+x2/0*4+x1/1") == ("x1", "x2")
    assert exec_nodes(None) == ()


def test_a_dsv_line_cut_before_its_state_is_a_clear_error():
    answer = recorded("history_off", "b_running_f_dsv")["stdout"]
    with pytest.raises(SchedulerError, match="without a job_state"):
        parse_qstat(answer[: answer.index("|job_state")], "dsv")


def test_truncated_text_is_a_clear_error():
    text = fixture("torque_wrapper_qstat_f_running.txt")
    with pytest.raises(SchedulerError, match="without a job_state"):
        parse_qstat(text[: text.index("job_state")], "text")


@pytest.mark.parametrize("garbage, form", [("Segmentation fault", "dsv"), ('{"Jobs": {}}', "dsv"),
                                           ("Job Id: 5|job_state", "dsv"), ("[1, 2]", "text"),
                                           ("Job Id: 5\n    Exit_status = nope\n    job_state = F\n", "text")])
def test_unreadable_output_is_a_clear_error(garbage, form):
    with pytest.raises(SchedulerError):
        parse_qstat(garbage, form)


def test_unknown_state_letter_is_unknown_not_a_crash():
    answer = recorded("history_off", "b_running_f_dsv")["stdout"].replace("job_state=R", "job_state=M")
    assert parse_qstat(answer, "dsv")["7.vm"].state is JobState.UNKNOWN
