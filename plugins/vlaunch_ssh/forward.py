"""A local port forward (``ssh -L``) over a paramiko transport, served by background threads.

The listener binds 127.0.0.1 only. Each accepted connection gets a ``direct-tcpip`` channel to the
destination as the remote host sees it; a connection the remote side refuses is closed at once,
before any byte. Forwarding goes on until :meth:`LocalForward.close`.

No channel is ever ``select()``-ed: a channel's ``fileno()`` makes paramiko's transport thread write
to a pipe that closing the channel races with (paramiko issues 1700 and 2271); when that race is
lost the whole connection dies with "Bad file descriptor". Each direction is a blocking pump in its
own thread instead, and only the thread that owns a socket closes it, after every user of it is done.
A client's half-close is not passed on (see :meth:`LocalForward._pump_up`).
"""

from __future__ import annotations

import socket
import threading

__all__ = ["LocalForward"]

_CHUNK = 65536


def _stop(sock: socket.socket) -> None:
    """Wake every thread blocked on ``sock`` (a shutdown, unlike a close, cannot hit a reused fd)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected, or already shut
        pass


class LocalForward:
    """Forwards ``127.0.0.1:<local port>`` to ``host:port`` on the far side of ``transport``."""

    def __init__(self, transport, host: str, port: int, local_port: int = 0):
        self.transport = transport
        self.target = (host, port)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._live: set[tuple[socket.socket, object]] = set()
        self._listener = socket.create_server(("127.0.0.1", local_port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept_loop, name=f"vlaunch-forward-{port}", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        """Accept until :meth:`close` shuts the listener down; this thread alone closes it."""
        try:
            while not self._closed.is_set():
                try:
                    client, peer = self._listener.accept()
                except OSError:  # shut down by close(), or a connection reset before it was accepted
                    continue
                threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()
        finally:
            self._listener.close()

    def _serve(self, client: socket.socket, peer) -> None:
        """Own one connection: pump the far side's bytes to the client here, the client's to the far
        side in a helper thread, and close both ends once both pumps have stopped."""
        try:
            channel = self.transport.open_channel("direct-tcpip", self.target, peer[:2], timeout=10)
        except Exception:  # refused or unreachable on the far side, or the connection is gone
            client.close()
            return
        pair = (client, channel)
        with self._lock:
            if self._closed.is_set():
                channel.close()
                client.close()
                return
            self._live.add(pair)
        upstream = threading.Thread(target=self._pump_up, args=pair, daemon=True)
        upstream.start()
        try:
            while data := channel.recv(_CHUNK):
                client.sendall(data)
            client.shutdown(socket.SHUT_WR)  # the far side is done: pass its end of stream on
        except Exception:  # either side went away: end this connection only
            _stop(client)
        upstream.join()
        with self._lock:
            self._live.discard(pair)
        channel.close()
        client.close()

    @staticmethod
    def _pump_up(client: socket.socket, channel) -> None:
        """The client's bytes to the far side. When the client is done sending, no EOF is sent for the
        channel: paramiko builds an EOF under the channel's lock but sends it after, so a close from the
        far side handled in between puts the channel's close on the wire first, and sshd then ends the
        whole connection ("ieof packet referred to nonexistent channel"). The channel is closed, EOF
        included, once the far side is done; HTTP, what this forward carries, never waits for an EOF."""
        try:
            while data := client.recv(_CHUNK):
                channel.sendall(data)
        except Exception:  # the client reset, or the channel closed: end the connection both ways
            _stop(client)
            channel.close()

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        with self._lock:
            self._closed.set()
            live = list(self._live)
        _stop(self._listener)
        for client, channel in live:
            _stop(client)
            channel.close()
        self._thread.join(timeout=2)
