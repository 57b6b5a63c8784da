"""Schedulers behind a login node: `vlaunch up --backend slurm|pbs --via vl-host1` from a "laptop",
against the project's real Slurm rig (and its Torque-style PBS wrappers), with the fast fake server.
The login node is the rig's sshd on this machine; jobs are submitted, and run, as its test user."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess

import pytest

from helpers import assert_one_line_error, fake_command, vlaunch

FAKE = ["-p", "cpu-tiny", "--model", "fake-model", "--set", fake_command(), "--no-check-flags"]


@pytest.fixture(scope="module", autouse=True)
def slurm_rig():
    """The Slurm rig must run (scripts/rig/slurm-up.sh, or pbs-up.sh for the PBS wrappers too)."""
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).stdout
    except FileNotFoundError:
        out = ""
    if "is UP" not in out:
        pytest.fail("the Slurm test rig is not running: start it with scripts/rig/up.sh", pytrace=False)


def record(name: str) -> dict:
    return json.loads(vlaunch("status", "--json", name).stdout)[0]


def squeue_user_state(job_id: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%u %T"],
                         capture_output=True, text=True, timeout=20).stdout
    return out.split()


def test_slurm_via_a_login_node(home, rig):
    name = f"via-slurm-{secrets.token_hex(3)}"
    logins = rig.logins(1)
    result = vlaunch("up", *FAKE, "-b", "slurm", "--via", "vl-host1", "--name", name, timeout=180)
    assert result.returncode == 0, result.stderr
    assert rig.logins(1) - logins == 1  # sbatch, squeue, uploads and the forward: one login
    assert "accepting connections (seen through the ssh transport)" in result.stderr
    job = record(name)
    assert job["transport"] == {"kind": "ssh", "host": "vl-host1"} and job["state"] == "RUNNING"
    assert job["run_dir"] == f"{rig.remote_home}/.vlaunch/runs/{name}"
    assert squeue_user_state(job["native_id"]) == [rig.user, "RUNNING"]
    assert "fake vllm serving tiny" in vlaunch("logs", name).stdout
    down = vlaunch("down", name)
    assert down.returncode == 0 and "CANCELLED" in down.stdout, down.stderr
    assert squeue_user_state(job["native_id"]) in ([], [rig.user, "CANCELLED"])
    assert record(name)["state"] == "CANCELLED"


def test_pbs_via_a_login_node(home, rig):
    if shutil.which("qsub") is None:
        pytest.fail("the PBS wrappers are not installed: start the rigs with scripts/rig/up.sh", pytrace=False)
    name = f"via-pbs-{secrets.token_hex(3)}"
    result = vlaunch("up", *FAKE, "-b", "pbs", "--set", "backend.pbs.dialect=torque", "--via", "vl-host1",
                     "--name", name, timeout=180)
    assert result.returncode == 0, result.stderr
    job = record(name)
    assert job["transport"] == {"kind": "ssh", "host": "vl-host1"} and job["state"] == "RUNNING"
    assert squeue_user_state(job["native_id"]) == [rig.user, "RUNNING"]
    down = vlaunch("down", name)
    assert down.returncode == 0 and "CANCELLED" in down.stdout, down.stderr


def test_via_an_unknown_host_prints_the_ssh_command_that_trusts_it(home, rig, tmp_path):
    with (home / ".ssh" / "config").open("a") as config:  # the rig's login node under a second name
        config.write(f"Host stranger-login\n  HostName 127.0.0.1\n  Port {rig.port}\n  User {rig.user}\n"
                     f"  IdentityFile {rig.client / 'id_ed25519'}\n  UserKnownHostsFile {tmp_path / 'empty'}\n")
    result = vlaunch("up", *FAKE, "-b", "slurm", "--via", "stranger-login")
    assert_one_line_error(result, "host key of stranger-login (vltest@127.0.0.1:2222) is unknown",
                          "ssh -o StrictHostKeyChecking=accept-new stranger-login true")
    assert "no jobs" in vlaunch("status").stdout
