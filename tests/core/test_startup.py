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
