"""Input mistakes through the real CLI: each is one line that names where the value came from and what
to write instead, never a schema pattern, and nothing is dropped silently."""

from __future__ import annotations

import pytest

from helpers import assert_one_line_error, fake_command, vlaunch

RENDER = ["render", "-p", "turbo", "-b", "slurm", "-m", "some/model"]


def test_a_misspelt_backend_table_is_refused_with_its_file_and_a_suggestion(isolated):
    (isolated / "vlaunch.toml").write_text('[backend.slrm]\npartition = "gpu"\n')
    result = vlaunch(*RENDER)
    assert_one_line_error(result, f"{isolated / 'vlaunch.toml'}: [backend.slrm]: no backend named 'slrm' is"
                                  " installed (did you mean 'slurm'?)")
    (isolated / "vlaunch.toml").write_text('[backend.slurm]\npartition = "gpu"\n')
    assert "#SBATCH --partition=gpu" in vlaunch(*RENDER).stdout


def test_a_misspelt_backend_table_on_the_command_line_is_refused(isolated):
    result = vlaunch(*RENDER, "--set", "backend.pbss.queue=debug")
    assert_one_line_error(result, "command line: [backend.pbss]: no backend named 'pbss' is installed"
                                  " (did you mean 'pbs'?)")


@pytest.mark.parametrize(("given", "written"), [("90m", "01:30:00"), ("1h30m", "01:30:00"), ("2d", "48:00:00"),
                                                ("5d", "5-00:00:00"), ("45s", "00:00:45"), ("04:00:00", "04:00:00"),
                                                ("1-00:00:30", "1-00:00:30")])
def test_walltime_as_a_clock_or_a_duration(isolated, given, written):
    result = vlaunch(*RENDER, "--set", f"resources.walltime={given}")
    assert result.returncode == 0, result.stderr
    assert f"#SBATCH --time={written}\n" in result.stdout


@pytest.mark.parametrize(("key", "value", "advice"), [
    ("walltime", "1x", "use [D-]HH:MM:SS (01:30:00) or a duration (90m, 1h30m, 2d)"),
    ("walltime", "0m", "use [D-]HH:MM:SS (01:30:00) or a duration (90m, 1h30m, 2d)"),
    ("memory", "lots", "use a number with an optional unit K, M, G or T, e.g. 64G"),
])
def test_a_bad_size_or_time_says_what_to_write_not_a_pattern(isolated, key, value, advice):
    result = vlaunch(*RENDER, "--set", f"resources.{key}={value}")
    assert_one_line_error(result, f"command line: resources.{key}: '{value}': {advice}")
    assert "pattern" not in result.stderr


def test_a_misspelt_extends_names_the_profile_file_that_says_it(isolated):
    profiles = isolated / "config" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "mine.toml").write_text('extends = "turbbo"\n')
    result = vlaunch("render", "-p", "mine", "-m", "m")
    assert_one_line_error(result, f"{profiles / 'mine.toml'}: extends: unknown profile 'turbbo' (did you mean"
                                  " 'turbo'?); available: ")
    assert_one_line_error(vlaunch("render", "-p", "turbbo", "-m", "m"), "error: unknown profile 'turbbo'")


@pytest.fixture
def without_paramiko(tmp_path):
    """Environment for a Python where ``import paramiko`` fails, as after ``pip install vlaunch`` (no extra)."""
    site = tmp_path / "no-paramiko"
    site.mkdir()
    (site / "sitecustomize.py").write_text('import sys\nsys.modules["paramiko"] = None\n')
    return {"PYTHONPATH": str(site)}


def test_without_paramiko_ssh_is_unusable_and_up_says_what_to_install(isolated, without_paramiko):
    listing = vlaunch("backends", env=without_paramiko)
    assert listing.returncode == 0, listing.stderr
    ssh_line = next(line for line in listing.stdout.splitlines() if line.startswith("ssh "))
    assert ssh_line.endswith("UNUSABLE here, needs: paramiko (pip install paramiko)")
    local_line = next(line for line in listing.stdout.splitlines() if line.startswith("local "))
    assert "UNUSABLE" not in local_line
    result = vlaunch("up", "-p", "cpu-tiny", "--on", "gpubox", "-m", "m", "--no-check-flags", env=without_paramiko)
    assert_one_line_error(result, "ssh to gpubox needs paramiko, which this Python lacks: pip install paramiko")
    assert result.returncode != 70
    assert vlaunch("status", "--json", env=without_paramiko).stdout.strip() in ("[]", "")


FAKE_UP = ["up", "-p", "cpu-tiny", "--set", fake_command(), "--no-check-flags"]


def test_a_model_path_that_is_not_there_is_refused_before_submitting(isolated):
    result = vlaunch(*FAKE_UP, "-m", str(isolated / "no-such-model"))
    assert_one_line_error(result, f"model {isolated / 'no-such-model'} does not exist here, where the job is"
                                  " submitted; --no-check-model skips this check")
    assert vlaunch("status").stdout == "no jobs\n"
    skipped = vlaunch(*FAKE_UP, "-m", str(isolated / "no-such-model"), "--no-check-model", "--name", "skip")
    assert skipped.returncode == 0, skipped.stderr
    assert vlaunch("down", "skip").returncode == 0


def test_an_offline_hub_id_must_be_in_the_cache_the_job_reads(isolated):
    cache = isolated / "hub"
    where = ["--set", f"environment.variables.HF_HUB_CACHE={cache}"]
    result = vlaunch(*FAKE_UP, "-m", "acme/tiny-llm", *where)  # cpu-tiny runs with HF_HUB_OFFLINE=1
    assert_one_line_error(result, f"model acme/tiny-llm is not in the Hugging Face cache here ({cache}), and the"
                                  " job runs with HF_HUB_OFFLINE=1 so vLLM will not download it")
    (cache / "models--acme--tiny-llm" / "snapshots").mkdir(parents=True)
    cached = vlaunch(*FAKE_UP, "-m", "acme/tiny-llm", *where, "--name", "cached")
    assert cached.returncode == 0, cached.stderr
    assert vlaunch("down", "cached").returncode == 0


@pytest.mark.parametrize("setting, why", [("vllm.data_parallel_size=2", "1 per data-parallel engine"),
                                          ("vllm.api_server_count=3", "vllm.api_server_count")])
def test_more_api_servers_than_the_api_server_module_starts_are_refused(isolated, setting, why):
    """`python -m vllm.entrypoints.openai.api_server` starts one API server whatever it is told."""
    result = vlaunch("render", "-p", "cpu-tiny", "-m", "m", "--set", setting)
    assert_one_line_error(result, "API servers (" + why + ") need vLLM's `serve` command",
                          "'python3 -m vllm.entrypoints.openai.api_server'")
