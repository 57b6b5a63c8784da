"""The chaos suite on the ssh backend (the rig's second host): kill -9 each process of a job in turn,
the fake server in vLLM's process shape (tests/chaos.py says what must follow); the real CPU vLLM case
is in test_ssh_vllm.py."""

from __future__ import annotations

import secrets

import pytest

from chaos import FAKE_TREE, ROLES, kill_and_check
from helpers import fake_command, vlaunch


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_each_process_fails_the_job_and_leaves_nothing(remote_env, role):
    name = f"chaos-{role}-{secrets.token_hex(3)}"  # the remote run directory outlives this test's state
    up = vlaunch("up", "-p", "cpu-tiny", "-b", "ssh", "--model", "fake-model", "--set", fake_command(),
                 "--no-check-flags", *FAKE_TREE, "--set", "backend.ssh.host=vl-host2", "--name", name,
                 timeout=120)
    assert up.returncode == 0, up.stderr
    kill_and_check(name, role)
