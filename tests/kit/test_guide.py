"""The commands of docs/writing-a-backend.md run, in order, in an empty folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from helpers import BIN, REPO


def guide_commands() -> list[str]:
    text = (REPO / "docs" / "writing-a-backend.md").read_text()
    block = re.search(r"## 1\. Generate the package.*?```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_guides_commands_run(tmp_path):
    commands = guide_commands()
    assert commands[0] == "vlaunch new-backend mysched"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    try:
        for command in commands:
            run = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=300)
            assert run.returncode == 0, f"{command}: {run.stdout}{run.stderr}"
            outputs.append(run.stdout)
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "vlaunch-mysched"], capture_output=True)
    assert "14 passed" in outputs[2]
    backends = json.loads(outputs[3])["backends"]
    assert any(b["name"] == "mysched" and b["distribution"] == "vlaunch-mysched" for b in backends)
    assert outputs[4].startswith("#!/bin/bash\n#MYSCHED -J turbo")
