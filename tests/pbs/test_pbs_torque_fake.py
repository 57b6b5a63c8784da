"""The Torque dialect end to end through real qsub/qstat/qdel (Debian's Torque-style wrappers over the
project's Slurm rig), with the fast fake server; test_pbs_torque_vllm.py does it with real vLLM."""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest
from pbs_support import require_pbs_rig

from helpers import BIN, assert_one_line_error, fake_command, vlaunch


@pytest.fixture(scope="module", autouse=True)
def pbs_rig():
    require_pbs_rig()


def torque_args(*sets: str) -> list[str]:
    """up arguments for a Torque-dialect job whose environment is set explicitly (not inherited by luck)."""
    setup = json.dumps([f"export PATH={shlex.quote(str(BIN))}:\"$PATH\""])
    args = ["--profile", "cpu-tiny", "--backend", "pbs", "--model", "fake-model", "--no-check-flags",
            "--set", fake_command(), "--set", "backend.pbs.dialect=torque", "--set", f"environment.setup={setup}"]
    for item in sets:
        args += ["--set", item]
    return args


def record(name):
    return json.loads(vlaunch("status", "--json", name).stdout)[0]


def qstat_state(job_id):
    out = subprocess.run(["qstat", "-f", job_id], capture_output=True, text=True).stdout
    return next((line.split("=")[1].strip() for line in out.splitlines() if "job_state" in line), None)


def test_up_logs_status_down_through_the_wrappers(isolated):
    started = time.monotonic()
    up = vlaunch("up", *torque_args(), "--name", "tq1", timeout=180)
    assert up.returncode == 0, up.stderr
    ready = time.monotonic() - started
    job = record("tq1")
    assert job["state"] == "RUNNING" and job["native_id"].isdigit() and job["node"]
    assert qstat_state(job["native_id"]) == "R"
    assert f"log: {job['log_path']}" in up.stdout
    script = open(f"{job['run_dir']}/job.sh").read()
    assert "#PBS -N tq1\n#PBS -l nodes=1\n#PBS -l walltime=00:30:00\n#PBS -j oe\n" in script
    follow = subprocess.Popen([str(BIN / "vlaunch"), "logs", "-f", "tq1"], stdout=subprocess.PIPE, text=True)
    logs = vlaunch("logs", "tq1")
    assert f"PBS job {job['native_id']} in queue" in logs.stdout and "fake vllm serving tiny" in logs.stdout
    down = vlaunch("down", "tq1")
    assert down.returncode == 0 and "job tq1: CANCELLED" in down.stdout, down.stderr
    assert qstat_state(job["native_id"]) in ("C", None)
    followed, _ = follow.communicate(timeout=30)
    assert "fake vllm serving tiny" in followed and follow.returncode == 0
    print(f"pbs torque fake: ready {ready:.1f} s after `vlaunch up`")


def test_hostile_model_and_environment_values_stay_literal(isolated):
    marker = isolated / "pwned"
    hostile = f"m; touch {marker} $(touch {marker}) `touch {marker}` '\""
    argv_file = isolated / "argv.json"
    up = vlaunch("up", *torque_args(f"environment.variables.FAKE_ARGV_FILE={argv_file}",
                                    f"environment.variables.EVIL=$(touch {marker})"),
                 "--model", hostile, "--name", "tq2", timeout=180)
    assert up.returncode == 0, up.stderr
    argv = json.loads(argv_file.read_text())
    assert argv[argv.index("--model") + 1] == hostile
    assert vlaunch("down", "tq2").returncode == 0
    assert not marker.exists()


def test_server_dying_at_start_fails_fast_with_its_exit_status(isolated):
    up = vlaunch("up", *torque_args("environment.variables.FAKE_EXIT_CODE=\"3\""), "--name", "tq3", timeout=180)
    assert up.returncode != 0 and "Traceback" not in up.stderr
    assert "exited with status 3" in up.stderr and "failing at start-up as asked" in up.stderr
    job = record("tq3")
    assert job["state"] == "FAILED" and job["exit_code"] == 3


def test_unknown_queue_is_refused_with_the_schedulers_words(isolated):
    up = vlaunch("up", *torque_args("backend.pbs.queue=nosuchqueue"), "--name", "tq4", timeout=60)
    assert_one_line_error(up, "qsub refused the job", "invalid partition specified: nosuchqueue")
    assert record("tq4")["state"] == "FAILED"


def test_down_of_a_finished_job(isolated):
    up = vlaunch("up", "--no-wait", *torque_args("environment.variables.FAKE_EXIT_CODE=\"0\""), "--name", "tq5")
    assert up.returncode == 0, up.stderr
    job = record("tq5")
    deadline = time.monotonic() + 60
    while record("tq5")["state"] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    done = record("tq5")  # a server exiting 0 by itself (vLLM's way when its engine dies) has failed
    assert (done["state"], done["exit_code"]) == ("FAILED", 1) and "stopped by itself" in done["reason"], done
    down = vlaunch("down", "tq5")
    assert down.returncode == 0 and down.stdout.startswith("job tq5: FAILED (the server stopped by itself")
    assert qstat_state(job["native_id"]) in ("C", None)


def test_qdel_of_a_job_that_already_ended_is_confirmed_not_an_error(isolated):
    """The registry still says PENDING (never refreshed) when `down` runs: qdel fails, the poll confirms the end."""
    up = vlaunch("up", "--no-wait", *torque_args("environment.variables.FAKE_EXIT_CODE=\"0\""), "--name", "tq6")
    assert up.returncode == 0, up.stderr
    job_id = json.loads(vlaunch("status", "--json", "--no-refresh", "tq6").stdout)[0]["native_id"]
    deadline = time.monotonic() + 60
    while qstat_state(job_id) not in ("C", None):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.3)
    down = vlaunch("down", "tq6")
    assert down.returncode == 0, down.stderr
    assert record("tq6")["state"] in ("FAILED", "CANCELLED")
