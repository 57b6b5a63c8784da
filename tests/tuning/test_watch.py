"""`vlaunch watch` through the real CLI against a server replaying recorded /metrics (real numbers in
test_real_vllm.py); plus the bad inputs of watch and bench that need no real vLLM."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from helpers import BIN, assert_one_line_error, vlaunch
from tuning_support import FIXTURES, snapshots


def test_once_json_gives_each_engine_and_the_sum(replay_job):
    name = replay_job(snapshots("dp2-full-batch-waiting"))
    result = vlaunch("watch", name, "--once", "--json", "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["engines"]) == {"0", "1"}
    assert data["total"]["running"] == 32 and data["total"]["waiting"] == 32
    total = sum(e["generation_tps"] for e in data["engines"].values())
    assert total > 0 and abs(data["total"]["generation_tps"] - total) < 1e-6
    assert data["missing"] == [] and data["job"] == name


def test_table_marks_missing_metrics_and_renamed_ones(replay_job, tmp_path):
    files = []
    for i, source in enumerate(snapshots("dp2-full-batch")):  # constructed from real snapshots
        text = "\n".join(x for x in source.read_text().splitlines() if "kv_cache_usage_perc" not in x)
        files.append(tmp_path / f"{i}.prom")
        files[-1].write_text(text.replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"))
    name = replay_job(files)
    result = vlaunch("watch", name, "--once", "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[1].split()
    assert header[:4] == ["ENGINE", "RUNNING", "WAITING", "KV%"]
    assert all(line.split()[3] == "n/a" for line in lines[2:5])  # not 0
    assert "missing from /metrics (shown as n/a): vllm:kv_cache_usage_perc" in result.stdout
    assert "vllm:time_per_output_token_seconds" in result.stdout


def test_a_restart_between_scrapes_is_said(replay_job):
    name = replay_job([snapshots("dp2-full-batch")[1], FIXTURES / "metrics" / "dp2-idle.prom"])
    data = json.loads(vlaunch("watch", name, "--once", "--json", "--interval", "0.3").stdout)
    assert data["total"]["generation_tps"] is None
    assert any("restarted" in note for note in data["notes"])


def test_server_that_stops_answering_then_ends(replay_job):
    name = replay_job(snapshots("dp2-full-batch"), down_after=2)
    proc = subprocess.Popen([str(BIN / "vlaunch"), "watch", name, "--interval", "0.3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 30
        while "server not answering" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        assert "server not answering" in seen and "ENGINE" in seen  # the table before the outage stays
        assert vlaunch("down", name).returncode == 0
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert f"job {name} ended while watching (CANCELLED" in err and len(err.strip().splitlines()) == 1


def test_watch_and_bench_refuse_jobs_they_cannot_measure(replay_job):
    assert_one_line_error(vlaunch("watch", "ghost", "--once"), "no job named 'ghost'")
    name = replay_job(snapshots("dp2-full-batch"), down_after=1)
    assert_one_line_error(vlaunch("watch", name, "--once", "--interval", "0.2"), "answered HTTP 503")
    vlaunch("down", name)
    assert_one_line_error(vlaunch("watch", name, "--once"), "has ended (CANCELLED", "no server to measure")
    assert_one_line_error(vlaunch("bench", name), "has ended (CANCELLED")
    assert_one_line_error(vlaunch("bench", name, "--num-prompts", "0"), "num-prompts must be at least 1")
    assert_one_line_error(vlaunch("bench", name, "--workload", "huge"), "unknown workload 'huge'", "smoke")
    assert_one_line_error(vlaunch("bench", "a", "b"), "one JOB")


def test_hostile_model_name_reaches_the_target_benchmark_as_one_literal_word(replay_job, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"x$(touch {marker}); touch {marker} 'q"
    name = replay_job(snapshots("dp2-full-batch"), model=hostile)
    seen = tmp_path / "argv.json"
    program = tmp_path / "fake-python"  # stands in for the target's Python: records its argv, writes no result
    program.write_text(f"#!{sys.executable}\nimport json, sys\njson.dump(sys.argv[1:], open({str(seen)!r}, 'w'))\n")
    program.chmod(0o755)
    result = vlaunch("bench", name, "--where", "target", "--python", str(program))
    assert_one_line_error(result, "benchmark failed", "log:")
    argv = json.loads(seen.read_text())
    assert argv[argv.index("--model") + 1] == hostile and argv[argv.index("--tokenizer") + 1] == hostile
    assert not marker.exists()
