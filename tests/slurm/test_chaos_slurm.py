"""The chaos suite on the Slurm rig: kill -9 each process of a job in turn, the fake server in vLLM's
process shape (tests/chaos.py says what must follow); the real CPU vLLM case is in test_slurm_e2e.py."""

from __future__ import annotations

import pytest

from chaos import FAKE_TREE, ROLES, kill_and_check
from helpers import vlaunch
from slurm_support import FAKE, squeue, wait_until

pytestmark = pytest.mark.usefixtures("slurm_rig")


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_each_process_fails_the_job_and_leaves_nothing(role):
    up = vlaunch("up", *FAKE, *FAKE_TREE, "--name", f"chaos-{role}", "--json", timeout=180)
    assert up.returncode == 0, up.stderr
    job = kill_and_check(f"chaos-{role}", role)
    assert wait_until(lambda: squeue(job["native_id"]) in (None, ("FAILED", "NonZeroExitCode")), 30)
