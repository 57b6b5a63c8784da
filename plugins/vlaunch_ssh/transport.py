"""The SSH transport: the core's :class:`~vlaunch.transport.Transport` over one paramiko connection.

Commands are argv lists joined into one shell line by :func:`vlaunch.shell.join` (the remote login
shell must be POSIX-like: bash, zsh, dash, ksh). Files move over SFTP. One connection (plus its jump
hosts) serves every call of one vlaunch command, port forwards included, until :meth:`close`.
Every paramiko or socket failure surfaces as one :class:`~vlaunch.errors.TransportError` line.
"""

from __future__ import annotations

import logging
import posixpath
import secrets
import threading
import time
from contextlib import contextmanager

import paramiko

from vlaunch import shell
from vlaunch.errors import CommandNotFound, ConnectionLost, TransportError, VlaunchError
from vlaunch.transport import CommandResult, Transport

from .backend import SSHSpec
from .connect import open_clients
from .forward import LocalForward

__all__ = ["SSHTransport"]

# paramiko logs refused forward channels and lost connections at ERROR; vlaunch reports failures itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def _drain(recv, into: bytearray) -> None:
    """Append what ``recv`` gives to ``into`` until the end of the stream (or the channel closes)."""
    while True:
        try:
            data = recv(65536)
        except TimeoutError:  # the channel's timeout is the reader's deadline step, not an end
            continue
        if not data:
            return
        into += data


class SSHTransport(Transport):
    """Runs commands, moves files, starts detached processes and forwards ports on an SSH host."""

    kind = "ssh"

    def __init__(self, target: SSHSpec):
        """Connect to ``target`` (a job record's spec dict is connected by ``get_host().transport(spec)``)."""
        self.target = target
        self.destination, self._clients = open_clients(self.target)
        self._sftp_client: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()
        self._forwards: dict[tuple, LocalForward] = {}
        self._home: str | None = None

    @property
    def label(self) -> str:
        """The host as messages name it."""
        return self.destination.label

    # -- plumbing -------------------------------------------------------------------------------
    def _ssh(self) -> paramiko.Transport:
        ssh = self._clients[-1].get_transport() if self._clients else None
        if ssh is None or not ssh.is_active():
            raise ConnectionLost(f"the ssh connection to {self.label} was lost")
        return ssh

    @contextmanager
    def _guard(self, doing: str):
        """Turn paramiko and socket failures while ``doing`` something into one TransportError line."""
        try:
            yield
        except VlaunchError:
            raise
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._ssh()  # raises "connection lost" when that is the cause
            raise TransportError(f"ssh {self.label}: {doing} failed: {exc or type(exc).__name__}") from None

    def _sftp(self) -> paramiko.SFTPClient:
        if self._sftp_client is None:
            self._sftp_client = self._clients[-1].open_sftp()
        return self._sftp_client

    def _exec(self, command: str, input: str | None, timeout: float | None, doing: str) -> tuple[int, str, str]:
        with self._guard(doing):
            channel = self._ssh().open_session(timeout=self.destination.timeout)
            try:
                # Without input, stdin is /dev/null and no EOF is sent: paramiko sends a channel's EOF
                # after releasing its lock, so a fast command's close, handled in between, can reach
                # sshd first, and sshd then ends the whole connection ("ieof packet referred to
                # nonexistent channel", seen in the rig's sshd log under load).
                channel.exec_command(command if input is not None else f"{command} </dev/null")
                if input is not None:
                    channel.sendall(input.encode())
                    channel.shutdown_write()
                out, err = self._collect(channel, timeout, doing)
                code = channel.recv_exit_status()
            finally:
                channel.close()
        if code == -1:
            self._ssh()
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def _collect(self, channel: paramiko.Channel, timeout: float | None, doing: str) -> tuple[bytes, bytes]:
        """Read stdout here and stderr in a helper thread until the host has ended both and sent the exit
        status (both drained, so neither can block the command; the protocol lets the status come before
        the last of the output). Blocking reads, never ``select()``: a channel's ``fileno()`` gives
        paramiko a pipe that closing the channel races with (see :mod:`.forward`)."""
        deadline = time.monotonic() + timeout if timeout else None

        def left() -> float:
            if deadline is None:
                return 1.0
            if (remaining := deadline - time.monotonic()) <= 0:
                raise TransportError(f"ssh {self.label}: {doing} did not finish within {timeout:g} s")
            return min(remaining, 1.0)

        out, err = bytearray(), bytearray()
        stderr = threading.Thread(target=_drain, args=(channel.recv_stderr, err), daemon=True)
        stderr.start()
        while True:
            channel.settimeout(left())
            try:
                data = channel.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            out += data
        while stderr.is_alive() or not channel.status_event.is_set():
            stderr.join(left())
            channel.status_event.wait(left())
        return bytes(out), bytes(err)

    # -- the Transport seam ---------------------------------------------------------------------
    def run(self, argv, *, input=None, timeout=60.0):
        """Run ``argv`` on the host, every word quoted once; rc 127 "not found" raises CommandNotFound."""
        argv = tuple(str(a) for a in argv)
        code, out, err = self._exec(shell.join(argv), input, timeout, f"running {argv[0]}")
        if code == 127 and "not found" in err:
            raise CommandNotFound(f"command not found on {self.label}: {argv[0]}")
        return CommandResult(argv, code, out, err)

    def write_file(self, path, data, mode=0o644):
        """Write over SFTP to a temporary name (mode set before any byte), then rename into place."""
        directory, name = posixpath.split(path)
        temporary = f"{directory}/.{name}.{secrets.token_hex(4)}"
        with self._sftp_lock, self._guard(f"writing {path}"):
            sftp = self._sftp()
            self._makedirs(sftp, directory)
            try:
                with sftp.open(temporary, "wx") as handle:
                    handle.chmod(mode)
                    handle.write(data.encode())
                sftp.posix_rename(temporary, path)
            except BaseException:
                try:
                    sftp.remove(temporary)
                except (OSError, paramiko.SSHException):
                    pass
                raise

    @staticmethod
    def _makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
        parts = [p for p in directory.split("/") if p]
        current = "/" if directory.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                sftp.stat(current)
            except FileNotFoundError:
                sftp.mkdir(current, mode=0o700)

    def read_file(self, path, offset=0):
        """The bytes of ``path`` from ``offset`` (None when it does not exist), read with prefetching."""
        with self._sftp_lock, self._guard(f"reading {path}"):
            try:
                handle = self._sftp().open(path, "rb")
            except FileNotFoundError:
                return None
            with handle:
                handle.seek(offset)
                handle.prefetch()
                return handle.read()

    def spawn(self, argv, *, cwd, log):
        """Start ``argv`` in a new session on the host, every fd detached (or the channel would stay open)."""
        line = (f"cd {shell.quote(cwd)} || exit 1; setsid {shell.join(argv)} >>{shell.quote(log)} 2>&1 </dev/null"
                " & echo $!")
        code, out, err = self._exec(line, None, 30.0, f"starting {argv[0]}")
        pid = out.strip().rpartition("\n")[2]
        if code != 0 or not pid.isdigit():
            why = err.strip() or out.strip() or f"exit status {code}"
            raise TransportError(f"ssh {self.label}: cannot start {argv[0]} in {cwd}: {why}")
        return int(pid)

    def home(self):
        """The login directory on the host (where SFTP sessions start)."""
        if self._home is None:
            with self._sftp_lock, self._guard("finding the home directory"):
                self._home = self._sftp().normalize(".")
        return self._home

    def port_open(self, host, port):
        """Whether ``host:port`` accepts a connection as the SSH host sees it: a ``direct-tcpip`` channel
        opened and closed at once (a local forward's own listener always accepts, so it says nothing)."""
        try:
            self._ssh().open_channel("direct-tcpip", (host, int(port)), ("127.0.0.1", 0), timeout=5).close()
            return True
        except ConnectionLost:
            raise
        except Exception:  # refused or unreachable on the far side
            return False

    def forward(self, host, port, local_port: int = 0):
        """Listen on 127.0.0.1 (``local_port``, or a free one) and forward to ``host:port`` as the SSH host
        sees it, in background threads, until :meth:`close`; return the local address."""
        key = (host, int(port), local_port)
        if key not in self._forwards:
            try:
                self._forwards[key] = LocalForward(self._ssh(), host, int(port), local_port)
            except OSError as exc:
                raise TransportError(f"cannot listen on 127.0.0.1:{local_port}: {exc.strerror}") from None
        return self._forwards[key].address

    def tunnel_command(self, host: str, port: int, local_port: int) -> str:
        """The OpenSSH command that forwards ``localhost:local_port`` to ``host:port`` as this transport does."""
        target = f"[{host}]" if ":" in host else host
        return self.destination.ssh_command("-N", "-L", f"{local_port}:{target}:{port}")

    def describe(self):
        """The spec to reconnect later (``accept_new_host_key`` is not kept: the key is known by then)."""
        return {"kind": self.kind, **self.target.model_dump(exclude_defaults=True, exclude={"accept_new_host_key"})}

    def close(self):
        """Stop the forwards and close SFTP and the connections (jump hosts last)."""
        for forward in self._forwards.values():
            forward.close()
        self._forwards.clear()
        if self._sftp_client is not None:
            self._sftp_client.close()
            self._sftp_client = None
        for client in reversed(self._clients):
            client.close()
        self._clients = []
