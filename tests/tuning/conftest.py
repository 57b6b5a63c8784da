"""Fixtures of the tuning-wing tests (helpers are in tuning_support.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers import vlaunch
from tuning_support import REPLAY


@pytest.fixture
def replay_job(tmp_path):
    """Start a job whose server replays recorded /metrics (the fake vLLM otherwise); stopped afterwards.

    Call it with the snapshot files; ``down_after=N`` makes /metrics fail after N scrapes.
    """
    started = []

    def start(files: list, name: str = "replay", down_after: int = 0, model: str = "tiny-replay") -> str:
        env = {"REPLAY_METRICS": os.pathsep.join(map(str, files)), "REPLAY_METRICS_DOWN_AFTER": str(down_after)}
        result = vlaunch("up", "-p", "cpu-tiny", "-m", model, "--name", name, "--no-check-flags",
                         "--set", "server.command=" + json.dumps([sys.executable, str(REPLAY)]), env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        started.append(name)
        return name

    yield start
    for name in started:
        vlaunch("down", name)
