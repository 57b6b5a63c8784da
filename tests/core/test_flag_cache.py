"""The flag check of `up` against the vLLM installed here: vLLM's own parser decides, and what it defines
is cached per installation so a repeat check needs nothing of vLLM (no import, milliseconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import assert_one_line_error, vlaunch

#: Runs check_flags on each flag list given (JSON) in one process and prints, for each, whether vLLM's parser
#: was built for it ("asked") or the cache decided ("cache"), and the refusal if any; then whether vLLM was
#: imported at all. One process: each start of vLLM's parser in a new process is an import of 11-16 s.
CHECK = """import json, sys
from vlaunch import vllm_args
from vlaunch.errors import ConfigError
built = []
parser = vllm_args._parser
vllm_args._parser = lambda: built.append(1) or parser()
for flags in json.loads(sys.argv[1]):
    before = len(built)
    try:
        vllm_args.check_flags('m', flags)
        refusal = ''
    except ConfigError as exc:
        refusal = ' refused: ' + str(exc)
    print(('asked' if len(built) > before else 'cache') + refusal)
print('vllm imported:', 'vllm' in sys.modules)
"""


def check(*flag_lists: list[str], env: dict) -> list[str]:
    """What :data:`CHECK` prints for ``flag_lists`` checked in turn by one new process."""
    result = subprocess.run([sys.executable, "-c", CHECK, json.dumps(flag_lists)], capture_output=True, text=True,
                            env=env, timeout=300)
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
    seen = check(good, good,
                 ["--max-num-seqs", "many"],  # the cache never refuses: vLLM does, in its words
                 ["--max-num-sequences", "8"],
                 ["--max-num-seq", "8"],  # argparse takes the prefix: ask
                 ["--dtype", "float64"],
                 ["--max-num-seqs", "1"],
                 ["--max-num-batched-tokens", "8k"],  # a human-readable int: only vLLM reads it
                 env=cache_env)
    assert seen[:2] == ["asked", "cache"] and seen[-1] == "vllm imported: True", seen
    assert seen[2].startswith("asked refused: vLLM rejects the flags: ") and "many" in seen[2]
    assert seen[3].startswith("asked refused: vLLM does not know --max-num-sequences 8")
    assert seen[4] == "asked"
    assert seen[5].startswith("asked refused: vLLM rejects the flags: ")
    assert seen[6:8] == ["cache", "asked"]
    options = json.loads(cache_file().read_text())
    assert options["--max-num-seqs"] == {"nargs": None, "kind": "int", "choices": None}
    assert check(good, env=cache_env) == ["cache", "vllm imported: False"]  # a new process: nothing of vLLM


def test_up_refuses_a_bad_flag_before_submitting(isolated, cache_env):
    result = vlaunch("up", "-p", "cpu-tiny", "-m", "m", "--", "--no-such-flag", "1", env=cache_env)
    assert_one_line_error(result, "vLLM does not know --no-such-flag 1")
    assert "no jobs" in vlaunch("status").stdout
