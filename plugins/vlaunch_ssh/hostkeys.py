"""Host keys: known_hosts files are the only source of trust.

An unknown host is refused with its fingerprint and the command that trusts it; with
``accept_new_host_key`` its key is appended to the user's known_hosts (and said so). Nothing is ever
added silently, and a changed key is refused by paramiko before any policy is asked.
"""

from __future__ import annotations

import os
import sys

import paramiko

from vlaunch.errors import TransportError

__all__ = ["GLOBAL_KNOWN_HOSTS", "known_hosts_name", "load_known_hosts", "policy_for"]

GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


def known_hosts_name(hostname: str, port: int) -> str:
    """How known_hosts names a host: ``name`` on port 22, ``[name]:port`` otherwise."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def load_known_hosts(client: paramiko.SSHClient, files: tuple[str, ...]) -> None:
    """Load every existing file of ``files`` and the system-wide known_hosts into ``client``."""
    keys = client.get_host_keys()
    for path in (*files, GLOBAL_KNOWN_HOSTS):
        if os.path.isfile(path):
            try:
                keys.load(path)
            except (OSError, UnicodeDecodeError) as exc:
                raise TransportError(f"cannot read known_hosts file {path}: {exc}") from None


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """The default: an unknown host is an error that tells how to trust it."""

    def __init__(self, dest):
        self.dest = dest

    def missing_host_key(self, client, hostname, key):
        trust = self.dest.ssh_command("-o", "StrictHostKeyChecking=accept-new", remote=("true",))
        raise TransportError(
            f"the host key of {self.dest.label} is unknown (not in {', '.join(self.dest.known_hosts)}); it is "
            f"{key.get_name()} {key.fingerprint}. If that is the host's key, trust it with: {trust} "
            f"(or, for the ssh backend, --set backend.ssh.accept_new_host_key=true)")


class _RecordUnknown(paramiko.MissingHostKeyPolicy):
    """Asked for explicitly: trust an unknown host and append its key to the user's known_hosts."""

    def __init__(self, dest):
        self.dest = dest

    def missing_host_key(self, client, hostname, key):
        path = self.dest.known_hosts[0]
        try:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        except OSError as exc:
            raise TransportError(f"cannot record the host key of {self.dest.label} in {path}: {exc.strerror}") from None
        client.get_host_keys().add(hostname, key.get_name(), key)
        print(f"vlaunch: trusted the new host key of {self.dest.label} ({key.get_name()} {key.fingerprint}) "
              f"and recorded it in {path}", file=sys.stderr)


def policy_for(dest) -> paramiko.MissingHostKeyPolicy:
    """The policy for a host that known_hosts does not list."""
    return _RecordUnknown(dest) if dest.accept_new else _RefuseUnknown(dest)
