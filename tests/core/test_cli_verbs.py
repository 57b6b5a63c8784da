"""Verbs users reach for, through the real CLI with the fast fake server on the local backend:
`down --all`, `logs -n`, `env NAME`, and the client lines printed once a job is ready."""

from __future__ import annotations

import json
import os
import subprocess

from helpers import BIN, assert_one_line_error, fake_command, vlaunch

FAKE = ["--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


def states() -> dict[str, str]:
    return {r["name"]: r["state"] for r in json.loads(vlaunch("status", "--json").stdout)}


def test_ready_prints_exports_and_a_request_that_works(isolated):
    result = vlaunch("up", *FAKE, "--name", "hello")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    exports, curl = lines[-2], lines[-1]
    assert exports.startswith("export OPENAI_BASE_URL=http://127.0.0.1:") and "OPENAI_API_KEY=" in exports
    assert curl.startswith('try it: curl -s "$OPENAI_BASE_URL/completions" -H "Authorization: Bearer')
    env = vlaunch("env", "hello")
    assert env.returncode == 0 and env.stdout.strip() == exports
    answer = subprocess.run(["bash", "-c", f'eval "$(vlaunch env hello)"; {curl.removeprefix("try it: ")}'],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert json.loads(answer.stdout)["choices"], answer.stdout + answer.stderr
    assert vlaunch("down", "hello").returncode == 0
    assert_one_line_error(vlaunch("env", "hello"), "job hello has no endpoint to point clients at (state CANCELLED: ")


def test_logs_n_starts_with_the_last_lines(isolated):
    assert vlaunch("up", *FAKE, "--name", "talk").returncode == 0
    whole = vlaunch("logs", "talk").stdout.splitlines(keepends=True)
    assert len(whole) >= 2
    assert vlaunch("logs", "-n", "1", "talk").stdout == whole[-1]
    assert vlaunch("logs", "--lines", "0", "talk").stdout == ""
    assert vlaunch("down", "talk").returncode == 0


def test_down_all_stops_every_job_that_has_not_ended(isolated):
    for name in ("one", "two"):
        assert vlaunch("up", *FAKE, "--name", name).returncode == 0
    assert vlaunch("down", "one").returncode == 0
    result = vlaunch("down", "--all")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["job two: CANCELLED (cancelled by vlaunch down)"]
    assert states() == {"one": "CANCELLED", "two": "CANCELLED"}
    assert vlaunch("down", "--all").stdout == "no running or queued jobs\n"
    assert_one_line_error(vlaunch("down"), "name the jobs to stop, or give --all (not both)")
    assert_one_line_error(vlaunch("down", "--all", "one"), "name the jobs to stop, or give --all (not both)")


def test_up_says_when_auto_could_not_plan_the_model(isolated):
    result = vlaunch("up", "-m", "org/not-in-any-cache", "--set", fake_command(), "--no-check-flags", "--no-wait",
                     "--name", "fallback")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith(
        "vlaunch: auto: cannot read the config.json of org/not-in-any-cache here (`vlaunch plan -m MODEL` says why),"
        " so no memory math: tensor_parallel_size 1 x data_parallel_size 4"), result.stderr
    assert vlaunch("down", "fallback").returncode == 0
    planned = vlaunch("up", *FAKE, "--name", "planned")  # a profile without auto: nothing to say
    assert planned.returncode == 0 and "auto:" not in planned.stderr, planned.stderr
    assert vlaunch("down", "planned").returncode == 0
