"""The Slurm rig's namespace hosts (scripts/rig/hosts.sh): their names, addresses, and which of this
machine's processes run on which host (a process's network namespace is its host)."""

from __future__ import annotations

import os
import subprocess

import pytest

__all__ = ["HOSTS", "RIG_BRIDGE", "UNROUTED", "require_hosts", "host_of", "processes_on"]

#: The hosts' names, in the partition "hosts".
HOSTS = ("vlnode1", "vlnode2")
#: This machine's address on the hosts' bridge (where the hosts reach the controller).
RIG_BRIDGE = "10.201.0.1"
#: Each host's interface that no other host has a route to.
UNROUTED = {"vlnode1": "vlx1", "vlnode2": "vlx2"}


def _namespace(host: str) -> int:
    return os.stat(f"/run/netns/vlaunch-n{HOSTS.index(host) + 1}").st_ino


def require_hosts() -> None:
    """Fail (never skip) with the command to run when the namespace hosts are not up and idle in Slurm."""
    try:
        states = subprocess.run(["sinfo", "-h", "-p", "hosts", "-o", "%n %t"], capture_output=True, text=True,
                                timeout=20).stdout.split("\n")
        up = all(os.path.exists(f"/run/netns/vlaunch-n{k}") for k in range(1, len(HOSTS) + 1))
    except FileNotFoundError:
        states, up = [], False
    if not up or sorted(line.split()[0] for line in states if line.strip()) != list(HOSTS):
        pytest.fail("the Slurm rig's namespace hosts are not up: start the rig with `scripts/rig/slurm-up.sh`"
                    " (as root) or run the suite with `make test`", pytrace=False)


def host_of(pid: int) -> str | None:
    """The namespace host ``pid`` runs on; None for this machine itself (or a process that ended)."""
    try:
        inode = os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, PermissionError):
        return None
    return next((host for host in HOSTS if _namespace(host) == inode), None)


def _live(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_on(host: str, *words: str) -> dict[int, str]:
    """Live processes on ``host`` whose command line holds one of ``words`` (all when none): pid -> argv."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or host_of(int(entry)) != host or not _live(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except FileNotFoundError:
            continue
        if argv and (not words or any(word in argv for word in words)):
            found[int(entry)] = argv
    return found
