"""The transport seam: every command vlaunch runs and every file it writes on a target goes through here.

A :class:`Transport` runs argv lists (never shell strings built by callers), reads and writes files and
starts detached processes. :class:`LocalTransport` does it with :mod:`subprocess`; the SSH transport
(``vlaunch_ssh``) does the same over one SSH connection, so every backend composes with either.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CommandNotFound, TransportError

__all__ = ["CommandResult", "Transport", "TransportKind", "LocalTransport"]


@dataclass(frozen=True)
class CommandResult:
    """What one command did: its argv, exit status and decoded output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0

    def message(self) -> str:
        """The command's own words about a failure, reduced to one line."""
        text = (self.stderr.strip() or self.stdout.strip() or f"exit status {self.returncode}")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return "; ".join(lines[-3:])


class Transport(ABC):
    """Runs commands and moves files on the machine where jobs are submitted or started."""

    #: A short word for the registry and messages ("local", "ssh").
    kind: str = "abstract"

    @abstractmethod
    def run(self, argv: Sequence[str], *, input: str | None = None, timeout: float | None = 60.0) -> CommandResult:
        """Run ``argv`` (no shell) and return its result; raise :class:`CommandNotFound` if ``argv[0]`` is missing."""

    @abstractmethod
    def write_file(self, path: str, data: str, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically, creating parent directories, with ``mode`` from the start."""

    @abstractmethod
    def read_file(self, path: str, offset: int = 0) -> bytes | None:
        """Return the bytes of ``path`` from ``offset``, or ``None`` when it does not exist."""

    @abstractmethod
    def spawn(self, argv: Sequence[str], *, cwd: str, log: str) -> int:
        """Start ``argv`` detached in a new session (output appended to ``log``) and return its pid."""

    @abstractmethod
    def home(self) -> str:
        """The user's home directory on the target."""

    def port_open(self, host: str, port: int) -> bool:
        """Whether ``host:port`` accepts a TCP connection as the target sees it (the readiness "port" stage).

        The default connects to :meth:`forward`'s address from this machine: right for a target whose
        network is this machine's. A transport whose forward listens here whatever the far side does
        (SSH) overrides it and asks the far side.
        """
        try:
            with socket.create_connection(self.forward(host, port), timeout=1.0):
                return True
        except OSError:
            return False

    def forward(self, host: str, port: int, local_port: int = 0) -> tuple[str, int]:
        """Return an address on this machine that reaches ``host:port`` as the target sees it
        (a remote transport listens on ``local_port``, or on a free port when it is 0)."""
        return host, port

    def tunnel_command(self, host: str, port: int, local_port: int) -> str | None:
        """The shell command that opens the same forward as :meth:`forward` by hand, where there is one."""
        return None

    def describe(self) -> dict:
        """A JSON-able description stored in the job registry, enough to reconnect later."""
        return {"kind": self.kind}

    def close(self) -> None:
        """Release connections and forwards."""


@dataclass(frozen=True)
class TransportKind:
    """A kind of transport, as a plugin registers it (hook ``vlaunch_register_transports``).

    ``spec_model`` is the pydantic model that validates a job record's transport spec, less its
    ``kind`` (it should forbid unknown keys); ``connect`` turns a validated spec into a connected
    :class:`Transport`. Every command loads the plugins, so import heavy clients inside ``connect``.
    """

    kind: str
    spec_model: type
    connect: Callable[[Any], Transport]
    description: str = ""


class LocalTransport(Transport):
    """Runs everything on this machine."""

    kind = "local"

    def run(self, argv, *, input=None, timeout=60.0):
        argv = tuple(str(a) for a in argv)
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise CommandNotFound(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise TransportError(f"{argv[0]} did not answer within {timeout:g} s") from None
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)

    def write_file(self, path, data, mode=0o644):
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_file(self, path, offset=0):
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return None

    def spawn(self, argv, *, cwd, log):
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            try:
                proc = subprocess.Popen(
                    [str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                )
            except FileNotFoundError:
                raise CommandNotFound(f"command not found: {argv[0]}") from None
        return proc.pid

    def home(self):
        return str(Path.home())
