"""`vlaunch doctor`: its checks on the real CLI against this machine; nothing is submitted."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

from helpers import fake_command, vlaunch

FAKE = ["-p", "cpu-tiny", "--set", fake_command()]


def checks(result) -> dict:
    return {c["name"]: c for c in json.loads(result.stdout)}


def test_a_local_job_that_can_start_passes_every_check(isolated):
    result = vlaunch("doctor", *FAKE, "-m", str(isolated), "--json")
    assert result.returncode == 0, result.stderr
    found = checks(result)
    assert list(found) == ["profile", "target", "commands", "vllm", "model", "flags"]
    assert all(c["passed"] is not False for c in found.values()), found
    assert found["vllm"]["passed"] and sys.executable in found["vllm"]["detail"]
    assert "no jobs" in vlaunch("status").stdout


def test_a_missing_model_and_a_server_command_that_cannot_start_vllm_fail_by_name(isolated):
    command = json.dumps(["python3-absent", "-m", "vllm.entrypoints.openai.api_server"])
    result = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(isolated / "absent"), "--set", f"server.command={command}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  ")}
    assert "FAILED" in lines["vllm"] and "python3-absent" in lines["vllm"], result.stdout
    assert "FAILED" in lines["model"] and "does not exist here" in lines["model"], result.stdout
    assert result.stdout.splitlines()[-1] == "doctor: 2 of 6 checks failed (vllm, model)"


def test_a_scheduler_without_its_commands_says_which_are_missing(isolated, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "true"):
        os.symlink(shutil.which(tool), bare / tool)
    result = vlaunch("doctor", *FAKE, "-b", "slurm", "-m", str(isolated), "--json", env={"PATH": str(bare)})
    assert result.returncode == 1, result.stderr
    found = checks(result)
    assert found["commands"]["passed"] is False
    assert found["commands"]["detail"].startswith("missing here: sbatch, squeue, sacct, scancel (install Slurm's")
    assert found["vllm"]["passed"] is None and "compute nodes" in found["vllm"]["detail"]


def test_a_profile_that_does_not_render_is_the_one_failed_check(isolated):
    result = vlaunch("doctor", *FAKE, "--set", "vllm.no_such_key=1", "--json")
    assert result.returncode == 1
    assert [(c["name"], c["passed"]) for c in json.loads(result.stdout)] == [("profile", False)]
    assert "no_such_key" in json.loads(result.stdout)[0]["detail"]


def test_the_vllm_check_imports_the_real_vllm_with_the_module_form(isolated):
    command = json.dumps([sys.executable, "-m", "vllm.entrypoints.openai.api_server"])
    result = vlaunch("doctor", "-p", "cpu-tiny", "-m", str(isolated), "--set", f"server.command={command}", "--json")
    assert result.returncode == 0, result.stdout
    found = checks(result)["vllm"]
    assert found["passed"] and re.fullmatch(r"\d+\.\d+\.\d+\S* here", found["detail"]), found  # vLLM's version
