"""PBS Pro through the real CLI, with qsub/qstat/qdel replaying a real OpenPBS 23.06 server (no PBS
Pro server can run in CI): many jobs over their lives with job history on and off, one qstat per
round, asynchronous deletion, refusals, bad output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pbs_support import OpenPBS, answer, replay_bin

from helpers import assert_one_line_error, fake_command, vlaunch

UP = ["up", "--no-wait", "--profile", "cpu-tiny", "--backend", "pbs", "--model", "fake-model", "--no-check-flags",
      "--set", fake_command()]


def run(bin_dir, *args):
    return vlaunch(*args, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, timeout=120)


def records(bin_dir, *names):
    result = run(bin_dir, "status", "--json", *names)
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def calls(bin_dir, program):
    path = bin_dir / f"{program}.calls"
    return path.read_text().splitlines() if path.exists() else []


def openpbs_run(pbs: OpenPBS, *args):
    return vlaunch(*args, env=pbs.env, timeout=120)


def states(pbs: OpenPBS) -> dict[str, dict]:
    result = openpbs_run(pbs, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


@pytest.mark.parametrize("history", [False, True], ids=["history-off", "history-on"])
def test_many_jobs_through_their_lives_on_a_replayed_openpbs(isolated, history):
    """Five jobs, two running and three queued behind them, then each ends another way; states come from
    the server where it keeps history and from the jobs' own markers where it does not, never from absence."""
    pbs = OpenPBS(isolated / "pbs", history=history, start="running")
    for index in range(5):
        if index == 2:
            pbs.start_as("queued")
        assert openpbs_run(pbs, *UP, "--name", f"j{index}").returncode == 0
    jobs = states(pbs)
    assert [jobs[f"j{i}"]["state"] for i in range(5)] == ["RUNNING"] * 2 + ["PENDING"] * 3
    assert jobs["j3"]["reason"] == "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)"
    assert "Not Running: Insufficient amount of resource: ngpus (R: 4 A: 0 T: 4)" in openpbs_run(pbs, "status").stdout
    assert pbs.calls("qstat")[-1] == ["-f", "-F", "dsv", "1.vm", "2.vm", "3.vm", "4.vm", "5.vm"]  # one call

    run_dir = {name: Path(job["run_dir"]) for name, job in jobs.items()}
    # j0 exits 0; j1 is deleted behind vlaunch's back (its script notes the TERM); j2 vanishes with its node.
    (run_dir["j0"] / "exit_code").write_text("0\n")
    (run_dir["j1"] / "signalled").write_text("TERM 40\n")
    (run_dir["j1"] / "exit_code").write_text("0\n")
    for job_id, state in [("1.vm", "finished-0"), ("2.vm", "deleted-running"), ("3.vm", "finished-3")]:
        pbs.set(job_id, state)
    if not history:  # the server forgets ended jobs at once
        for job_id in ("1.vm", "2.vm", "3.vm"):
            pbs.forget(job_id)
    jobs = states(pbs)
    assert jobs["j0"]["state"] == "COMPLETED" and jobs["j1"]["state"] == "CANCELLED"
    assert jobs["j2"]["state"] == ("FAILED" if history else "LOST")
    assert "deleted by pbsuser@vm" in jobs["j1"]["reason"] if history else "SIGTERM after 40 s" in jobs["j1"]["reason"]
    live_then = ["-f", "-F", "dsv", "1.vm", "2.vm", "3.vm", "4.vm", "5.vm"]
    # a job that vanished without a trace is looked for once more before it is called LOST
    confirm = [["-f", "-F", "dsv", "3.vm"], ["-x", "-f", "-F", "dsv", "3.vm"]] if not history else []
    assert pbs.calls("qstat")[-2 - len(confirm):] == [live_then, ["-x", "-f", "-F", "dsv", "1.vm", "2.vm", "3.vm"],
                                                      *confirm]

    for index in range(5):
        down = openpbs_run(pbs, "down", f"j{index}")
        assert down.returncode == 0, down.stderr
    assert not any(state in ("queued", "running", "deleting") for state in pbs.jobs().values())
    assert sorted(call[0] for call in pbs.calls("qdel")) == ["4.vm", "5.vm"]  # the ones it still listed
    final = states(pbs)
    assert [final[f"j{i}"]["state"] for i in range(5)] == [jobs["j0"]["state"], "CANCELLED",
                                                         "FAILED" if history else "LOST", "CANCELLED", "CANCELLED"]


def test_down_of_a_running_job_waits_for_the_asynchronous_delete(isolated):
    pbs = OpenPBS(isolated / "pbs", history=True)
    assert openpbs_run(pbs, *UP, "--name", "d").returncode == 0
    down = openpbs_run(pbs, "down", "d")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "job d: CANCELLED (deleted by pbsuser@vm (Exit_status 271))"
    assert pbs.jobs() == {"1.vm": "deleted-running"}


def test_a_live_job_is_never_asked_about_with_x_on_a_server_without_history(isolated):
    pbs = OpenPBS(isolated / "pbs", history=False)
    assert openpbs_run(pbs, *UP, "--name", "live").returncode == 0
    for _ in range(3):
        assert states(pbs)["live"]["state"] == "RUNNING"
    assert all("-x" not in call for call in pbs.calls("qstat"))
    assert openpbs_run(pbs, "down", "live").returncode == 0


def test_down_of_a_finished_job(tmp_path):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "28.vm\n", ""))
    replay_bin(bin_dir, "qstat", answer("history_on", "f_exit3_f_dsv"), answer("history_on", "f_exit3_xf_dsv"))
    replay_bin(bin_dir, "qdel", (35, "", "qdel: Job has finished 28.vm\n"))
    assert run(bin_dir, *UP, "--name", "done").returncode == 0
    down = run(bin_dir, "down", "done")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "job done: FAILED (server exited with status 3)"
    again = run(bin_dir, "down", "done")
    assert again.returncode == 0 and again.stdout == down.stdout
    # Whatever the record says, down asks the scheduler (a recorded end may have been inferred wrongly),
    # and deletes only what it still lists as live.
    assert calls(bin_dir, "qstat").count("-f -F dsv 28.vm") >= 3 and calls(bin_dir, "qdel") == []
    assert records(bin_dir)["done"]["exit_code"] == 3


@pytest.mark.parametrize("garbage", ["Job Id: 1.vm|Job_Name=cut|Job_Ow", "Segmentation fault\n"])
def test_unreadable_qstat_output_is_a_clear_error_and_the_record_stays(tmp_path, garbage):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "1.vm\n", ""))
    replay_bin(bin_dir, "qstat", (0, garbage, ""))
    assert run(bin_dir, *UP, "--name", "cut").returncode == 0
    status = run(bin_dir, "status", "--json")
    assert status.returncode == 1  # not refreshed: said in the exit status too
    assert "warning: pbs: cannot refresh 1 job(s): qstat" in status.stderr and "Traceback" not in status.stderr
    [job] = json.loads(status.stdout)
    assert job["name"] == "cut" and job["state"] == "PENDING" and job["native_id"] == "1.vm"


def test_no_qstat_on_the_target_is_one_line_and_the_record_stays(tmp_path):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", (0, "1.vm\n", ""))
    assert run(bin_dir, *UP, "--name", "noqstat").returncode == 0
    status = vlaunch("status", "noqstat", env={"PATH": str(bin_dir)})
    assert status.returncode == 1 and "backend pbs needs `qstat` on the target" in status.stderr
    assert "PENDING" in status.stdout


@pytest.mark.parametrize("history, case, words", [
    ("history_off", "k_qsub_too_many_ngpus_select", "qsub: Job violates queue and/or server resource limits"),
    ("history_off", "k_qsub_unknown_queue", "qsub: Unknown queue"),
])
def test_qsub_refusals_are_one_line_errors_and_recorded(tmp_path, history, case, words):
    bin_dir = tmp_path / "bin"
    replay_bin(bin_dir, "qsub", answer(history, case))
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
