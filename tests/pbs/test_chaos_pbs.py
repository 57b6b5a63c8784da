"""The chaos suite through the Torque-style PBS wrappers: kill -9 each process of a job in turn, the
fake server in vLLM's process shape (tests/chaos.py says what must follow); the real CPU vLLM case is in
test_pbs_torque_vllm.py."""

from __future__ import annotations

import pytest
from pbs_support import require_pbs_rig
from test_pbs_torque_fake import torque_args

from chaos import FAKE_TREE, ROLES, kill_and_check
from helpers import vlaunch


@pytest.fixture(scope="module", autouse=True)
def pbs_rig():
    require_pbs_rig()


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_each_process_fails_the_job_and_leaves_nothing(isolated, role):
    up = vlaunch("up", *torque_args(), *FAKE_TREE, "--name", f"chaos-{role}", timeout=180)
    assert up.returncode == 0, up.stderr
    kill_and_check(f"chaos-{role}", role)
