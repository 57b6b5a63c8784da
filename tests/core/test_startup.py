"""`vlaunch render` and `status` stay light: no vLLM, torch, paramiko or HTTP client on their path."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ["vllm", "torch", "paramiko", "httpx", "requests", "aiohttp", "urllib.request", "http.client"]


@pytest.mark.parametrize("argv", [["render", "-p", "turbo", "-b", "local", "-m", "m"], ["status"], ["ls", "--json"]])
def test_light_commands_do_not_import_heavy_modules(argv):
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
