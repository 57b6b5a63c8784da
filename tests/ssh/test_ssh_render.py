"""`vlaunch render` prints byte for byte what `up` submits on remote targets too: the run directory
under the remote home (render asks the host, as `up` does), `--via` for a scheduler behind a login
node, and the same refusal when the ssh backend has no host."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

from helpers import assert_one_line_error, fake_command, vlaunch

FAKE = ["-p", "cpu-tiny", "--model", "fake-model", "--set", fake_command()]


def submitted_script(name: str) -> str:
    job = json.loads(vlaunch("status", "--json", "--no-refresh", name).stdout)[0]
    return (Path(job["run_dir"]) / "job.sh").read_text()  # the rig's hosts share this filesystem


def assert_render_is_what_up_submits(name: str, target: list[str], remote_home: Path) -> None:
    rendered = vlaunch("render", *target, "--name", name)
    assert rendered.returncode == 0, rendered.stderr
    assert f"VLAUNCH_RUN_DIR={remote_home}/.vlaunch/runs/{name}\n" in rendered.stdout
    started = vlaunch("up", *target, "--name", name, "--no-check-flags", "--no-wait")
    assert started.returncode == 0, started.stderr
    assert submitted_script(name) == rendered.stdout
    assert vlaunch("down", name).returncode == 0


def test_render_over_ssh_is_what_up_submits(remote_env, rig):
    assert_render_is_what_up_submits(f"render-{secrets.token_hex(3)}", [*FAKE, "--on", "vl-host2"], rig.remote_home)


def test_render_via_a_login_node_is_what_up_submits(home, rig):
    assert "is UP" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).stdout
    assert_render_is_what_up_submits(f"render-via-{secrets.token_hex(3)}", [*FAKE, "-b", "slurm", "--via", "vl-host1"],
                                     rig.remote_home)


def test_render_refuses_what_up_refuses(home):
    assert_one_line_error(vlaunch("render", *FAKE, "-b", "ssh"), "backend ssh needs a host")
    assert_one_line_error(vlaunch("render", *FAKE, "--on", "vl-host2", "--via", "vl-host1"),
                          "backend ssh chooses its own host; --via does not apply")
