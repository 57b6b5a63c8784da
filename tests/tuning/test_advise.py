"""`vlaunch advise`: each rule on /metrics snapshots.

Recorded from the real CPU vLLM with the tiny model (fixtures/metrics/README.md says how):
dp2-full-batch-waiting and dp2-full-batch (DP 2, max_num_seqs 16, 64 concurrent requests),
small-kv-preempting (an 8-block KV cache, 16 concurrent 200+200-token requests), dp2-idle.
Recorded on one H200 (vLLM 0.26.0, the 1-GPU form of turbo, 512 concurrent requests): h200-api1-c512
(one API server, at a full core) and h200-api4-c512 (four, which export no process metrics).
Constructed, by editing the values of a real snapshot and saying so in the test: the 30-80 % bands
(a CPU server with a 1 GiB cache never gets there under a tiny model), a missing KV metric and an
API server at 0.4 cores.
"""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from helpers import assert_one_line_error, vlaunch
from tuning_support import FIXTURES, config_path, scrapes, snapshots, timed_scrapes
from vlaunch.config.layers import cli_layer, resolve_profile
from vlaunch.tuning.advise import API_SERVER_BUSY, advise, api_server_check, observe, parallelism_check
from vlaunch.tuning.metrics import parse

TINY = {"max_num_seqs": 16, "tensor_parallel_size": 1, "data_parallel_size": 2}
#: The profile of the H200 recordings: turbo on one GPU.
ONE_GPU_TURBO = ["vllm.data_parallel_size=1", "resources.gpus_per_node=1"]


def _with_kv(fraction: float) -> list:
    """Constructed: the real dp2-full-batch scrapes with KV usage set to ``fraction`` and nothing waiting."""
    texts = [re.sub(r"(vllm:kv_cache_usage_perc\{[^}]*\}) \S+", rf"\1 {fraction}", f.read_text())
             for f in snapshots("dp2-full-batch")]
    return [parse(t, taken=i * 0.5) for i, t in enumerate(texts)]


def test_waiting_requests_with_a_nearly_empty_kv_cache_raise_max_num_seqs():
    advice = advise(observe(scrapes(snapshots("dp2-full-batch-waiting"))), TINY)
    assert advice.rule == "raise-batch" and advice.change == {"vllm.max_num_seqs": 32}
    assert "32 requests waited" in advice.reason and "< 30%" in advice.reason


def test_a_full_running_batch_raises_max_num_seqs_even_without_waiting():
    seen = observe(scrapes(snapshots("dp2-full-batch")))
    assert seen.waiting_peak == 0 and seen.running_peak == 16
    advice = advise(seen, TINY)
    assert advice.rule == "raise-batch" and "reached 16 per engine" in advice.reason


def test_without_max_num_seqs_in_the_profile_the_observed_batch_is_the_base():
    advice = advise(observe(scrapes(snapshots("dp2-full-batch-waiting"))), {})
    assert advice.change == {"vllm.max_num_seqs": 32} and "vLLM's default" in advice.reason
    # Nothing waiting and vLLM's own cap unknown: a busy batch alone is no reason to raise it.
    assert advise(observe(scrapes(snapshots("dp2-full-batch"))), {}).rule == "keep"


def test_a_full_kv_cache_and_preemptions_lower_max_num_seqs():
    files = snapshots("small-kv-preempting")
    seen = observe(scrapes(files))
    first, last = (float(re.search(r"vllm:num_preemptions_total\{[^}]*\} (\S+)", f.read_text()).group(1))
                   for f in (files[0], files[-1]))
    assert seen.preemptions == last - first > 0 and seen.kv_peak == 100.0
    advice = advise(seen, {"max_num_seqs": 16})
    assert advice.rule == "lower-batch" and advice.change == {"vllm.max_num_seqs": 8}
    assert f"{last - first:,.0f} requests were preempted" in advice.reason
    assert "gpu_memory_utilization 0.9 -> 0.95" in advice.reason


@pytest.mark.parametrize("fraction, words", [(0.5, "optimal band"), (0.75, "below the 80% limit")])
def test_a_kv_cache_between_30_and_80_percent_needs_no_change(fraction, words):
    advice = advise(observe(_with_kv(fraction)), TINY)
    assert advice.rule == "keep" and advice.change == {} and words in advice.reason


def test_above_80_percent_without_preemptions_still_lowers():
    advice = advise(observe(_with_kv(0.85)), TINY)
    assert advice.rule == "lower-batch" and "85.0%" in advice.reason


def test_no_traffic_gives_no_advice_yet():
    idle = FIXTURES / "metrics" / "dp2-idle.prom"
    advice = advise(observe(scrapes([idle, idle])), TINY)
    assert advice.rule == "idle" and advice.change == {}


def test_a_missing_kv_metric_is_named_and_the_batch_rules_stay_silent():
    text = snapshots("dp2-full-batch")[0].read_text()
    edited = "\n".join(x for x in text.splitlines() if "kv_cache_usage_perc" not in x)  # constructed
    advice = advise(observe([parse(edited, taken=0.0), parse(edited, taken=1.0)]), TINY)
    assert advice.rule == "unknown" and any("vllm:kv_cache_usage_perc" in n for n in advice.notes)


def test_tensor_parallel_for_a_model_that_fits_one_gpu_suggests_data_parallel():
    vllm = {"tensor_parallel_size": 2, "data_parallel_size": 2, "max_num_seqs": 16}
    parallel, note = parallelism_check(config_path("qwen3-1.7b"), vllm, gpu_memory=80)
    assert note is None and parallel.change == {"vllm.tensor_parallel_size": 1, "vllm.data_parallel_size": 4}
    advice = advise(observe(scrapes(snapshots("dp2-full-batch-waiting"))), vllm, parallel)
    assert advice.rule == "use-dp" and "3.20 GiB" in advice.reason  # 1,720,567,808 x 2 bytes
    assert advice.then == ["raise max_num_seqs 16 -> 32"]
    lower = advise(observe(scrapes(snapshots("small-kv-preempting"))), vllm, parallel)
    assert lower.rule == "lower-batch" and lower.then == [parallel.summary]  # stability first


def test_tensor_parallel_is_kept_when_one_gpu_cannot_hold_the_model():
    parallel, note = parallelism_check(config_path("llama-3.1-70b"), {"tensor_parallel_size": 4}, gpu_memory=80)
    assert parallel is None and "tensor parallel 4 kept" in note and "131.42 GiB" in note
    parallel, note = parallelism_check(config_path("llama-3.1-8b"), {"tensor_parallel_size": 2}, gpu_memory=None)
    assert parallel is None and "--gpu-memory" in note


def test_advise_cli_over_a_replayed_window_and_write(replay_job, tmp_path):
    name = replay_job(snapshots("small-kv-preempting"), name="hot")
    result = vlaunch("advise", name, "--window", "2", "--interval", "0.4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["advice"]["rule"] == "lower-batch" and data["observed"]["kv_peak"] == 100.0
    written = vlaunch("advise", name, "--window", "1", "--interval", "0.4", "--write", "tiny-next")
    assert written.returncode == 0, written.stderr
    assert "next change: lower max_num_seqs 16 -> 8" in written.stdout
    profile = tomllib.loads((tmp_path / "config" / "profiles" / "tiny-next.toml").read_text())
    assert profile["extends"] == "cpu-tiny" and profile["vllm"]["max_num_seqs"] == 8
    assert profile["server"]["model"] == "tiny-replay"  # the job's own override is kept


def test_advise_keeps_what_it_read_when_the_server_stops_answering(replay_job):
    name = replay_job(snapshots("dp2-full-batch-waiting"), name="flaky", down_after=2)
    result = vlaunch("advise", name, "--window", "3", "--interval", "0.4")
    assert result.returncode == 0, result.stderr
    assert "raise max_num_seqs" in result.stdout and "window cut short" in result.stdout


def test_advise_bad_input(replay_job):
    assert_one_line_error(vlaunch("advise", "no-such-job"), "no job named 'no-such-job'")
    name = replay_job(snapshots("dp2-full-batch"), name="down", down_after=1)
    assert_one_line_error(vlaunch("advise", name, "--window", "1"), "/metrics answered HTTP 503")
    vlaunch("down", name)
    assert_one_line_error(vlaunch("advise", name), f"job {name} has ended (CANCELLED")


def _profile(name: str, *sets: str):
    return resolve_profile(name, cli_layer(list(sets))).profile


def _cpu_counter(scenario: str) -> list[float]:
    return [float(re.search(r"^process_cpu_seconds_total (\S+)$", f.read_text(), re.M).group(1))
            for f in snapshots(scenario)]


def test_one_api_server_at_a_full_core_gets_more_api_servers():
    seen = observe(timed_scrapes("h200-api1-c512"))
    cpu, taken = _cpu_counter("h200-api1-c512"), timed_scrapes("h200-api1-c512")
    assert seen.api_server_cores == pytest.approx((cpu[-1] - cpu[0]) / (taken[-1].taken - taken[0].taken))
    # vLLM's own inter-token latency (15.7 ms) is lower than with four API servers (19.4 ms): the batch
    # dips between refills; the clients measured 29.4 ms against 20.2 ms.
    assert seen.api_server_cores > API_SERVER_BUSY and seen.itl_mean_ms == pytest.approx(15.69, abs=0.01)
    front = api_server_check(seen, _profile("turbo", *ONE_GPU_TURBO, "server.api_servers_per_engine=1"))
    advice = advise(seen, {"max_num_seqs": 512}, front_end=front)
    assert advice.rule == "api-servers" and advice.change == {"server.api_servers_per_engine": 4}
    assert advice.summary == "API servers 1 -> 4 (4 per engine x 1)"
    assert f"used {seen.api_server_cores:.2f} cores" in advice.reason


def test_four_api_servers_export_no_process_cpu_and_the_rule_stays_silent():
    seen = observe(timed_scrapes("h200-api4-c512"))
    assert seen.api_server_cores is None and seen.generation_tokens > 0 and seen.itl_mean_ms == pytest.approx(19.37, abs=0.01)
    assert api_server_check(seen, _profile("turbo", *ONE_GPU_TURBO)) is None
    assert advise(seen, {"max_num_seqs": 512}).rule != "api-servers"


def test_an_api_server_below_a_full_core_is_left_alone():
    """Constructed: the one-API-server recording with its CPU counter rising 0.4 s per second."""
    files, taken = snapshots("h200-api1-c512"), timed_scrapes("h200-api1-c512")
    texts = [re.sub(r"^process_cpu_seconds_total \S+$", f"process_cpu_seconds_total {100 + 0.4 * s.taken}",
                    f.read_text(), flags=re.M) for f, s in zip(files, taken)]
    seen = observe([parse(t, taken=s.taken) for t, s in zip(texts, taken)])
    assert seen.api_server_cores == pytest.approx(0.4)
    assert api_server_check(seen, _profile("turbo", *ONE_GPU_TURBO, "server.api_servers_per_engine=1")) is None


def test_the_module_form_and_an_explicit_count_are_changed_in_their_own_keys():
    seen = observe(timed_scrapes("h200-api1-c512"))
    front = api_server_check(seen, _profile("cpu-tiny", "vllm.data_parallel_size=2", "vllm.api_server_count=1"))
    assert front.summary == "API servers 1 -> 8 (4 per engine x 2)"
    assert front.change == {"vllm.api_server_count": 8,
                            "server.command": ["python3", "-m", "vllm.entrypoints.cli.main", "serve"]}
    assert "serve form" in front.reason


def test_advise_cli_names_more_api_servers_and_writes_them(replay_job, tmp_path):
    name = replay_job(snapshots("h200-api1-c512"), name="front")
    result = vlaunch("advise", name, "--window", "2", "--interval", "0.4")
    assert result.returncode == 0, result.stderr
    assert "next change: API servers 1 -> 4 (4 per engine x 1)" in result.stdout
    assert "try: vlaunch up -p cpu-tiny --set server.api_servers_per_engine=4" in result.stdout
    written = vlaunch("advise", name, "--window", "1", "--interval", "0.4", "--write", "tiny-front")
    assert written.returncode == 0, written.stderr
    profile = tomllib.loads((tmp_path / "config" / "profiles" / "tiny-front.toml").read_text())
    assert profile["server"]["api_servers_per_engine"] == 4
