"""`vlaunch render` and `status` stay light: no vLLM, torch, paramiko or HTTP client on their path; `--help`,
completion and `status` with no jobs load no models, plugins or tuning commands."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ["vllm", "torch", "paramiko", "httpx", "requests", "aiohttp", "urllib.request", "http.client"]


@pytest.mark.parametrize("argv", [["render", "-p", "turbo", "-b", "local", "-m", "m"], ["status"], ["ls", "--json"]])
def test_light_commands_do_not_import_heavy_modules(argv, tmp_path):
    from vlaunch.registry import JobRecord, Registry

    # a running job, so that status refreshes it through its backend rather than taking the no-jobs path
    Registry().create(JobRecord(name="j1", backend="local", profile="turbo", run_dir=str(tmp_path / "run"),
                                native_id="999999", state="RUNNING"))
    code = ("import sys\nfrom vlaunch.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in %r if m in sys.modules))" % (argv, HEAVY))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_help_and_profile_completion_import_no_models():
    code = ("import os, sys\nos.environ.update(_VLAUNCH_COMPLETE='bash_complete', COMP_WORDS='vlaunch up -p tu',"
            " COMP_CWORD='3')\nfrom vlaunch.cli import cli\ntry:\n    cli.main(prog_name='vlaunch')\nexcept SystemExit:\n"
            "    pass\nprint(sorted(m for m in ('pydantic', 'pluggy') if m in sys.modules))\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.stdout.splitlines() == ["plain,turbo", "[]"], completed.stderr
    code = ("import sys\nfrom vlaunch.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pydantic', 'pluggy') if m in sys.modules))")
    helped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert helped.stdout.splitlines()[-1] == "[]", helped.stderr


LIGHT_PROBE = ("import sys\nfrom vlaunch.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
               "print(sorted(m for m in ('pydantic', 'pluggy', 'vlaunch.tuning.commands') if m in sys.modules))")


def test_status_with_no_jobs_loads_nothing_it_does_not_need(tmp_path):
    env = {**os.environ, "VLAUNCH_STATE_DIR": str(tmp_path / "state")}
    for argv, shown in ((["status"], "no jobs"), (["status", "--json"], "[]"), (["ls"], "no jobs")):
        result = subprocess.run([sys.executable, "-c", LIGHT_PROBE % (argv,)], capture_output=True, text=True,
                                timeout=60, env=env)
        assert result.stdout.splitlines() == [shown, "[]"], (argv, result.stderr)


def test_the_tuning_wing_is_listed_by_name_and_loaded_only_when_used():
    from vlaunch.cli import TUNING_COMMANDS, cli
    from vlaunch.tuning.commands import COMMANDS

    assert TUNING_COMMANDS == tuple(command.name for command in COMMANDS)
    assert set(TUNING_COMMANDS) <= set(cli.list_commands(None))
    for argv, loaded in ((["up", "--help"], False), (["bench", "--help"], True)):
        result = subprocess.run([sys.executable, "-c", LIGHT_PROBE % (argv,)], capture_output=True, text=True,
                                timeout=60)
        assert ("'vlaunch.tuning.commands'" in result.stdout.splitlines()[-1]) is loaded, (argv, result.stdout)
