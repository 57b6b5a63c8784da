"""`vlaunch render`: the flags the done-when names, byte-stable output, golden files, quoting."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from helpers import REPO, assert_one_line_error, vlaunch

GOLDEN = REPO / "tests" / "golden" / "local"
RUN_ROOT = "/srv/vlaunch/runs"


def render(*args):
    result = vlaunch("render", "--run-root", RUN_ROOT, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def vllm_line(script: str) -> list[str]:
    line = next(x for x in script.splitlines() if x.rstrip().endswith("&"))
    return shlex.split(line.rstrip(" &").replace('"$VLAUNCH_PORT"', "PORT"))


def test_turbo_flags():
    words = vllm_line(render("--profile", "turbo", "--backend", "local", "--model", "Qwen/Qwen3-VL-2B-Instruct"))
    text = " ".join(words)
    assert "--data-parallel-size 4 --max-num-seqs 512 --max-num-batched-tokens 8192 --gpu-memory-utilization 0.95" in text
    assert "--enforce-eager" not in words and "--tensor-parallel-size" not in words
    assert words[:3] == ["vllm", "serve", "Qwen/Qwen3-VL-2B-Instruct"]


def test_default_flags():
    words = vllm_line(render("--profile", "default", "--model", "m", "--name", "d"))
    assert " ".join(words).endswith(f"--tensor-parallel-size 4 --enforce-eager --config {RUN_ROOT}/d/api_key.yaml")


@pytest.mark.parametrize("profile", ["default", "turbo", "cpu-tiny"])
def test_golden_and_byte_stable(profile):
    first = render("--profile", profile, "--model", "org/model", "--name", f"{profile}-golden")
    assert render("--profile", profile, "--model", "org/model", "--name", f"{profile}-golden") == first
    golden = GOLDEN / f"{profile}.sh"
    if os.environ.get("VLAUNCH_UPDATE_GOLDEN"):
        golden.write_text(first)
    assert first == golden.read_text(), f"render drifted from {golden} (VLAUNCH_UPDATE_GOLDEN=1 rewrites it)"


def test_api_key_never_in_script():
    script = render("--profile", "cpu-tiny", "--model", "m", "--name", "k")
    assert f" --config {RUN_ROOT}/k/api_key.yaml" in script  # vLLM reads the key from the job's private file
    assert "--api-key" not in script and "VLLM_API_KEY" not in script
    assert "--config" not in render("--profile", "cpu-tiny", "--model", "m", "--set", "server.api_key=false")


# A newline is refused before anything renders (tests/core/test_inputs_as_data.py).
HOSTILE = ["x; touch {m}", "$(touch {m})", "`touch {m}`", "a'b\"c && touch {m}", "--flag touch {m}"]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_strings_reach_the_program_as_literal_words(tmp_path, template):
    """Run the rendered server block with a stand-in program: each hostile string arrives as one word."""
    marker = tmp_path / "pwned"
    hostile = template.format(m=marker)
    recorder = tmp_path / "record.sh"
    recorder.write_text('#!/bin/bash\nprintf "%s\\0" "$@" > "$RECORD"\n')
    recorder.chmod(0o755)
    script = render("--profile", "cpu-tiny", "--model", hostile, "--set", f'server.command=["{recorder}"]',
                    "--set", f"environment.variables.EVIL={json.dumps(hostile)}",
                    "--vllm-args", shlex.join([f"--served-model-name={hostile}", f"--extra={hostile}"]),
                    "--run-root", str(tmp_path / "runs"), "--name", "hostile")
    run_dir = tmp_path / "runs" / "hostile"
    run_dir.mkdir(parents=True)
    record = tmp_path / "argv"
    ran = subprocess.run(["bash", "-c", script], env={**os.environ, "RECORD": str(record)}, timeout=30)
    assert ran.returncode == 1  # the recorder exits 0 unasked: a server that stopped by itself failed
    argv = record.read_bytes().split(b"\0")[:-1]
    assert f"export EVIL={shlex.quote(hostile)}" in script
    words = [a.decode() for a in argv]
    assert _value(words, "--model") == hostile and _value(words, "--served-model-name") == hostile
    assert _value(words, "--extra") == hostile
    assert not marker.exists()


def _value(words: list[str], flag: str) -> str:
    """The value of ``flag`` in argv ``words``, given as ``flag value`` or ``flag=value``."""
    if flag in words:
        return words[words.index(flag) + 1]
    return next(w for w in words if w.startswith(f"{flag}=")).partition("=")[2]


def test_unknown_backend_lists_available():
    result = vlaunch("render", "--backend", "sluurm", "--model", "m")
    assert_one_line_error(result, "no backend named 'sluurm' (did you mean 'slurm'?)", "available:", "local")


def test_missing_model_only_matters_for_up_and_render():
    result = vlaunch("render", "--profile", "turbo")
    assert_one_line_error(result, "no model")


def test_host_means_the_ssh_backend_and_points_schedulers_to_via():
    script = render("--profile", "cpu-tiny", "--model", "m", "--host", "gpubox")
    assert "backend ssh" in script.splitlines()[1]
    result = vlaunch("render", "--profile", "cpu-tiny", "--model", "m", "--host", "gpubox", "--backend", "slurm")
    assert_one_line_error(result, "--host runs vLLM directly on a host", "use --via gpubox")


def test_usage_errors_are_one_line():
    assert_one_line_error(vlaunch("up", "--bogus"), "No such option '--bogus'", "vlaunch up --help")


def test_multi_node_profile_on_a_single_node_backend_is_refused():
    result = vlaunch("render", "-p", "turbo", "-m", "m", "--set", "resources.nodes=2", "--set", "resources.gpus_per_node=2")
    assert_one_line_error(result, "backend local starts single-node servers only; resources.nodes is 2")


@pytest.mark.parametrize("backend", ["slurm", "pbs"])
def test_multi_node_needs_the_serve_command(backend):
    """Followers run `vllm serve --headless`; the api_server module (cpu-tiny's command) has no such mode."""
    result = vlaunch("render", "--profile", "cpu-tiny", "--backend", backend, "--model", "m", "--set", "resources.nodes=2",
                     "--set", "vllm.data_parallel_size=2")
    assert_one_line_error(result, "2 nodes need vLLM's `serve` command")


def test_a_second_port_is_never_the_servers(tmp_path):
    """Multi-node's RPC port line draws again when the free port it gets is the server's own."""
    from vlaunch.script import other_free_port_line

    fake = tmp_path / "python3"  # answers the server's port first, then another
    fake.write_text('#!/bin/bash\nn=$(cat "$0.n" 2>/dev/null || echo 0); echo $((n + 1)) >"$0.n"\n'
                    '[ "$n" = 0 ] && echo 8000 || echo 8001\n')
    fake.chmod(0o755)
    line = other_free_port_line("RPC")
    out = subprocess.run(["bash", "-c", f'VLAUNCH_PORT=8000; {line}; echo "$RPC"'], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}, timeout=30)
    assert out.stdout.strip() == "8001" and (tmp_path / "python3.n").read_text().strip() == "2"
