"""The SSH transport reads a command's output to its end, whatever order the host sends the end in."""

from __future__ import annotations

import os

from vlaunch_ssh.transport import SSHTransport


class _Channel:
    """A channel whose host sends the exit status first, then the output in two parts, then EOF."""

    def __init__(self):
        self.events = [("status", 0), ("out", b"first\n"), ("err", b"warning\n"), ("out", b"last\n"), ("eof", None)]
        self.out, self.err = bytearray(), bytearray()
        self.eof_received = self.closed = False
        self.status = None

    def fileno(self):
        self._arrive()  # one message arrives while the reader waits in select
        if not hasattr(self, "_pipe"):
            self._pipe = os.pipe()
            os.write(self._pipe[1], b"x")  # always "readable": select returns at once
        return self._pipe[0]

    def _arrive(self):
        if self.events:
            kind, value = self.events.pop(0)
            if kind == "status":
                self.status = value
            elif kind == "eof":
                self.eof_received = True
            else:
                (self.out if kind == "out" else self.err).extend(value)

    def exit_status_ready(self):
        return self.status is not None

    def recv_ready(self):
        return bool(self.out)

    def recv_stderr_ready(self):
        return bool(self.err)

    def recv(self, n):
        data, self.out[:] = bytes(self.out), b""
        return data

    def recv_stderr(self, n):
        data, self.err[:] = bytes(self.err), b""
        return data


def test_output_sent_after_the_exit_status_is_kept():
    transport = SSHTransport.__new__(SSHTransport)
    out, err = transport._collect(_Channel(), 5.0, "running ps")
    assert (out, err) == (b"first\nlast\n", b"warning\n")
