"""The job registry: parallel writers, corrupt records, unknown jobs."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

from helpers import BIN, assert_one_line_error, live_group_members, vlaunch

# A server command that just sleeps: cheap enough to start 50 of them.
SLEEPER = 'server.command=["bash", "-c", "sleep 120", "sleeper"]'


def test_fifty_parallel_up_no_wait_leave_fifty_intact_records(isolated):
    def start(i):
        return subprocess.run([str(BIN / "vlaunch"), "up", "-p", "cpu-tiny", "--model", "m", "--set", SLEEPER,
                               "--no-check-flags", "--no-wait", "--name", f"par-{i:02d}"],
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(start, range(50)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    files = sorted((isolated / "state" / "jobs").glob("*.json"))
    assert len(files) == 50
    jobs = [json.loads(f.read_text()) for f in files]
    assert {j["name"] for j in jobs} == {f"par-{i:02d}" for i in range(50)}
    assert all(j["native_id"] for j in jobs)
    assert not list((isolated / "state" / "jobs").glob(".*.json.*")), "temporary files left behind"
    down = vlaunch("down", *[j["name"] for j in jobs], timeout=300)
    assert down.returncode == 0, down.stderr
    assert all(not live_group_members(j["native_id"]) for j in jobs)


def test_corrupt_record_reported_left_in_place_others_listed(isolated):
    assert vlaunch("up", "-p", "cpu-tiny", "--model", "m", "--set", SLEEPER, "--no-check-flags", "--no-wait",
                   "--name", "good").returncode == 0
    bad = isolated / "state" / "jobs" / "bad.json"
    bad.write_text("{not json")
    result = vlaunch("status")
    assert result.returncode == 1  # a problem line: the exit status says not everything could be shown
    assert "good" in result.stdout
    assert "bad.json: unreadable job record, left in place" in result.stderr
    assert bad.read_text() == "{not json"
    assert_one_line_error(vlaunch("down", "bad"), "bad.json: unreadable job record")
    assert vlaunch("down", "good").returncode == 0


def test_down_of_unknown_job(isolated):
    assert_one_line_error(vlaunch("down", "nope"), "no job named 'nope'")


def test_forget_refuses_running_and_removes_ended(isolated):
    assert vlaunch("up", "-p", "cpu-tiny", "--model", "m", "--set", SLEEPER, "--no-check-flags", "--no-wait",
                   "--name", "f1").returncode == 0
    assert_one_line_error(vlaunch("forget", "f1"), "vlaunch down f1")
    assert vlaunch("down", "f1", "--forget").returncode == 0
    assert vlaunch("status", "--json").stdout.strip() == "[]"


def test_with_json_an_error_is_also_a_json_object_on_stdout(isolated):
    for args in (["status", "--json", "nope"], ["ls", "--json", "--bogus"]):
        result = vlaunch(*args)
        assert_one_line_error(result)
        answer = json.loads(result.stdout)
        assert answer == {"error": result.stderr.strip().removeprefix("error: "), "exit_code": result.returncode}
    assert vlaunch("status", "nope").stdout == ""  # without --json, stdout stays empty
