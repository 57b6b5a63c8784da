"""The chaos suite on the local backend: kill -9 each process of a job in turn, the fake server in
vLLM's process shape (tests/chaos.py says what must follow); the real CPU vLLM case is in
test_local_vllm.py."""

from __future__ import annotations

import pytest

from chaos import FAKE_TREE, ROLES, kill_and_check
from helpers import fake_command, vlaunch

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags", *FAKE_TREE]


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_each_process_fails_the_job_and_leaves_nothing(isolated, role):
    up = vlaunch("up", *FAKE, "--name", f"chaos-{role}", timeout=120)
    assert up.returncode == 0, up.stderr
    kill_and_check(f"chaos-{role}", role)
