"""Fixtures for the SSH tests: the rig of scripts/rig/ssh-up.sh and a laptop-like HOME that reaches it.

The rig's hosts: ``vl-host1`` (sshd on this machine's 127.0.0.1, a login node), ``vl-host2`` (sshd in a
network namespace: a remote workstation whose loopback is its own) and ``vl-inner`` (only reachable
with ProxyJump vl-host2). Jobs run there as the rig's test user, who can run this checkout's venv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import BIN, vlaunch


def _rig_root() -> Path:
    root = os.environ.get("RIG_ROOT") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "vlaunch-rig")
    return Path(os.environ.get("SSH_RIG") or os.path.join(root, "ssh"))


@dataclass(frozen=True)
class Rig:
    """What ssh-up.sh made, read from its ``rig.env``."""

    root: Path
    user: str
    port: int
    host2: str

    @property
    def client(self) -> Path:
        """The client side: id_ed25519, known_hosts, ssh_config."""
        return self.root / "client"

    @property
    def remote_home(self) -> Path:
        """The test user's home (the same directory on both hosts: the namespace shares the filesystem)."""
        return Path(os.path.expanduser(f"~{self.user}"))

    def host_key(self, n: int) -> str:
        """``TYPE BASE64`` of host ``n``'s key."""
        return " ".join((self.root / f"host{n}_key.pub").read_text().split()[:2])

    def sshd_pid(self, n: int) -> int:
        """The listening sshd of host ``n``."""
        return int((self.root / f"sshd{n}.pid").read_text())

    def logins(self, n: int) -> int:
        """How many logins sshd ``n`` has accepted so far."""
        return (self.root / f"sshd{n}.log").read_text().count("Accepted publickey for")


@pytest.fixture(scope="session")
def rig() -> Rig:
    """The running rig, or a failure that says how to start it."""
    root = _rig_root()
    env_file = root / "rig.env"
    if not env_file.is_file():
        pytest.fail(f"the SSH test rig is not up (no {env_file}): run scripts/rig/ssh-up.sh", pytrace=False)
    facts = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    if facts.get("WITH_NETNS") != "1":
        pytest.fail("the SSH tests need the rig's second host: run scripts/rig/ssh-up.sh with WITH_NETNS=1",
                    pytrace=False)
    rig = Rig(root, facts["SSH_USER"], int(facts["SSH_PORT"]), facts["HOST2_ADDR"])
    for n in (1, 2):
        if subprocess.run(["kill", "-0", str(rig.sshd_pid(n))], capture_output=True).returncode:
            pytest.fail(f"sshd{n} of the SSH rig is not running: run scripts/rig/ssh-down.sh, then ssh-up.sh",
                        pytrace=False)
    return rig


@pytest.fixture
def home(rig, isolated, monkeypatch) -> Path:
    """A laptop's HOME whose ~/.ssh/config has the rig's aliases; no ssh-agent. Jobs left running by
    the test are brought down afterwards."""
    home = isolated / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(rig.client / "ssh_config", home / ".ssh" / "config")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield home
    if not list((isolated / "state" / "jobs").glob("*.json")):
        return
    listed = vlaunch("status", "--json")
    for record in json.loads(listed.stdout or "[]"):
        if record["state"] not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            vlaunch("down", record["name"])


@pytest.fixture
def remote_env(isolated, home) -> Path:
    """A project vlaunch.toml, as a user would write it, so remote jobs find this checkout's venv
    (and its vLLM) as ``python3``."""
    path = isolated / "vlaunch.toml"
    setup = f'export PATH={shlex.quote(str(BIN))}:"$PATH"'
    path.write_text(f"[environment]\nsetup = [{json.dumps(setup)}]\n")
    return path
