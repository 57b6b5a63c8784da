"""The flag check of `up` against the vLLM installed here: vLLM's own parser decides, and what it defines
is cached per installation so a repeat check needs nothing of vLLM (no import, milliseconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import assert_one_line_error, vlaunch

CHECK = ("import sys; from vlaunch.errors import ConfigError; from vlaunch.vllm_args import check_flags\n"
         "try:\n    check_flags('m', sys.argv[1:])\nexcept ConfigError as exc:\n    print('refused:', exc)\n"
         "print('vllm imported:', 'vllm' in sys.modules)\n")


def check(*flags: str, env: dict) -> list[str]:
    result = subprocess.run([sys.executable, "-c", CHECK, *flags], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_the_first_check_asks_vllm_and_caches_what_its_parser_defines(cache_env):
    from vlaunch.vllm_args import cache_file

    good = ["--data-parallel-size", "4", "--max-num-seqs", "512", "--enforce-eager", "--dtype", "bfloat16",
            "--gpu-memory-utilization", "0.95", "--served-model-name", "a", "b"]
    assert check(*good, env=cache_env) == ["vllm imported: True"]
    options = json.loads(cache_file().read_text())
    assert options["--max-num-seqs"] == {"nargs": None, "kind": "int", "choices": None}
    assert check(*good, env=cache_env) == ["vllm imported: False"]  # decided from the cache
    refused = check("--max-num-seqs", "many", env=cache_env)  # the cache never refuses: vLLM does, in its words
    assert refused[0].startswith("refused: vLLM rejects the flags: ") and "many" in refused[0]
    assert refused[1] == "vllm imported: True"
    unknown = check("--max-num-sequences", "8", env=cache_env)
    assert unknown[0].startswith("refused: vLLM does not know --max-num-sequences 8")
    assert check("--max-num-seq", "8", env=cache_env)[-1] == "vllm imported: True"  # argparse takes the prefix; ask
    assert check("--dtype", "float64", env=cache_env)[0].startswith("refused: vLLM rejects the flags: ")


def test_a_value_only_vllm_can_read_is_asked_of_vllm(cache_env):
    check("--max-num-seqs", "1", env=cache_env)
    assert check("--max-num-batched-tokens", "8k", env=cache_env) == ["vllm imported: True"]  # human-readable int


def test_up_refuses_a_bad_flag_before_submitting(isolated, cache_env):
    result = vlaunch("up", "-p", "cpu-tiny", "-m", "m", "--", "--no-such-flag", "1", env=cache_env)
    assert_one_line_error(result, "vLLM does not know --no-such-flag 1")
    assert "no jobs" in vlaunch("status").stdout
