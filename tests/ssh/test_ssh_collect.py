"""The SSH transport reads a command's output to its end, whatever order the host sends the end in."""

from __future__ import annotations

import threading
import time

import pytest
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from vlaunch.errors import TransportError
from vlaunch_ssh.transport import SSHTransport


class _Channel:
    """What the reader uses of a paramiko channel, over paramiko's own stream buffers."""

    def __init__(self):
        self.out, self.err = BufferedPipe(), BufferedPipe()
        self.status_event = threading.Event()
        self.timeout = None

    def settimeout(self, timeout):
        self.timeout = timeout

    def recv(self, n):
        return self._read(self.out, n)

    def recv_stderr(self, n):
        return self._read(self.err, n)

    def _read(self, stream, n):
        try:
            return stream.read(n, self.timeout)
        except PipeTimeout:
            raise TimeoutError from None

    def send_status_first(self):
        """The host sends the exit status, then the output in two parts with stderr between, then EOF."""
        self.status_event.set()
        for stream, data in ((self.out, b"first\n"), (self.err, b"warning\n"), (self.out, b"last\n")):
            time.sleep(0.05)
            stream.feed(data)
        self.out.close()
        self.err.close()


def _transport() -> SSHTransport:
    transport = SSHTransport.__new__(SSHTransport)
    transport.destination = type("Destination", (), {"label": "vl-test"})()
    return transport


def test_output_sent_after_the_exit_status_is_kept():
    channel = _Channel()
    threading.Thread(target=channel.send_status_first, daemon=True).start()
    out, err = _transport()._collect(channel, 5.0, "running ps")
    assert (out, err) == (b"first\nlast\n", b"warning\n")


def test_a_command_that_never_ends_is_one_clear_line_at_its_deadline():
    channel, began = _Channel(), time.monotonic()
    with pytest.raises(TransportError, match=r"^ssh vl-test: running sleep did not finish within 0.3 s$"):
        _transport()._collect(channel, 0.3, "running sleep")
    assert time.monotonic() - began < 2
    channel.out.close()  # as the transport's close of the channel does: the stderr reader ends
    channel.err.close()
