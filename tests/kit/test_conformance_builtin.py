"""The built-in backends run the same conformance suite a third-party backend runs."""

from __future__ import annotations

import json

import pytest

from helpers import REPO

from vlaunch import JobState
from vlaunch.testing import BatchConformance, ProcessConformance, TransportConformance

GOLDEN = REPO / "tests" / "golden" / "conformance"
PBS = REPO / "tests" / "fixtures" / "pbs" / "openpbs-23.06"


def _recorded(history: str, case: str) -> str:
    return json.loads((PBS / history / f"{case}.json").read_text())["stdout"]


class TestLocalConformance(ProcessConformance):
    backend_name = "local"
    golden_dir = GOLDEN / "local"


class TestLocalTransportConformance(TransportConformance):
    kind = "local"

    @pytest.fixture
    def spec(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))  # the suite's scratch directory goes under the home
        return {"kind": "local"}


class TestSshConformance(ProcessConformance):
    backend_name = "ssh"
    sets = ['backend.ssh.host="gpubox"']
    golden_dir = GOLDEN / "ssh"
    submit_answers = {"bash": "vlaunch-preflight: ok\n"}  # the backend's check that vLLM is on the host


class TestSlurmConformance(BatchConformance):
    backend_name = "slurm"
    golden_dir = GOLDEN / "slurm"
    submit_stdout = "4242\n"  # sbatch --parsable
    submit_job_id = "4242"
    native_states = ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED", "FAILED", "CANCELLED",
                     "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "SUSPENDED", "REQUEUED", "BOOT_FAIL",
                     "DEADLINE"]
    # Lines squeue printed on the test rig (format: JobID|State|Reason|NodeList|exit_code|).
    status_samples = [("12|PENDING|Resources|||\n14|RUNNING|None|vm|0|\n17|TIMEOUT|TimeLimit|vm|0|\n",
                       {"12": JobState.PENDING, "14": JobState.RUNNING, "17": JobState.TIMEOUT})]
    pending_sample = ("12|PENDING|Resources|||\n", "12", "busy")
    refusal_stderr = "sbatch: error: Batch job submission failed: Requested node configuration is not available"


class TestPbsConformance(BatchConformance):
    backend_name = "pbs"
    golden_dir = GOLDEN / "pbs"
    submit_stdout = "2.vm\n"  # qsub on OpenPBS 23.06
    submit_job_id = "2.vm"
    native_states = ["Q", "H", "W", "T", "S", "U", "R", "E", "B", "F", "X"]
    # Recorded from a real OpenPBS 23.06 server (tests/fixtures/pbs/README.md).
    status_samples = [(_recorded("history_off", "b_running_f_dsv"), {"7.vm": JobState.RUNNING}),
                      (_recorded("history_off", "d_multi_f_dsv"),
                       {"7.vm": JobState.RUNNING, "8.vm": JobState.PENDING, "9.vm": JobState.PENDING}),
                      (_recorded("history_on", "f_exit3_xf_dsv"), {"28.vm": JobState.FAILED}),
                      (_recorded("history_on", "g_after_xf_dsv"), {"29.vm": JobState.CANCELLED})]
    pending_sample = (_recorded("history_off", "c_queued_f_dsv"), "8.vm", "Insufficient amount of resource")
    refusal_stderr = "qsub: Unknown queue"
