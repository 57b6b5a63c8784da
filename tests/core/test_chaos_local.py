"""The chaos suite on the local backend: kill -9 each process of a job in turn, the fake server in
vLLM's process shape (tests/chaos.py says what must follow); the real CPU vLLM case is in
test_local_vllm.py."""

from __future__ import annotations

import subprocess
import time

import pytest

from chaos import FAKE_TREE, ROLES, kill_and_check
from helpers import fake_command, vlaunch
from vlaunch.script import OWN_GROUP

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags", *FAKE_TREE]


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_each_process_fails_the_job_and_leaves_nothing(isolated, role):
    up = vlaunch("up", *FAKE, "--name", f"chaos-{role}", timeout=120)
    assert up.returncode == 0, up.stderr
    kill_and_check(f"chaos-{role}", role)


def test_a_server_slow_to_follow_its_dead_engine_is_ended_by_the_guard(isolated):
    """vLLM's API server exits seconds after its EngineCore dies (its interpreter's teardown, longer on a
    busy machine); the script's guard, watching the processes vLLM named, does not wait for it."""
    up = vlaunch("up", *FAKE, "--set", "environment.variables.FAKE_TEARDOWN=120", "--name", "slow", timeout=120)
    assert up.returncode == 0, up.stderr
    deadline = time.monotonic() + 30
    while ":EngineCore" not in vlaunch("logs", "slow").stdout:
        assert time.monotonic() < deadline, "the guard never named the EngineCore"
        time.sleep(0.2)
    seen = kill_and_check("slow", "engine")
    assert seen["reason"].startswith("vLLM's EngineCore (pid ") and "died while the server ran" in seen["reason"], seen
    assert "ending the server" in vlaunch("logs", "slow").stdout


def test_a_process_vllm_named_stays_watched_when_a_later_look_misses_it(tmp_path):
    """The guard looks for new named processes while the old ones may die: one that died during (or
    before) a later look is still reported lost, not forgotten by the new list."""
    harness = OWN_GROUP + r"""
VLAUNCH_PID=$$
(exec -a VLLM::EngineCore sleep 60) & engine=$!
for ((i = 0; i < 50; i++)); do vlaunch_vital; [ -n "${VLAUNCH_VITAL:-}" ] && break; sleep 0.1; done
[ "$VLAUNCH_VITAL" = " $engine:EngineCore" ] || { echo "not found: ${VLAUNCH_VITAL:-}"; exit 2; }
kill -9 "$engine"; wait "$engine"
vlaunch_vital
vlaunch_lost && echo "lost $VLAUNCH_LOST" && [ "$VLAUNCH_LOST" = "$engine:EngineCore" ]
"""
    run = subprocess.run(["bash", "-c", harness], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.stdout.startswith("lost "), run.stdout
