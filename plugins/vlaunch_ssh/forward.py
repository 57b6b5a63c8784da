"""A local port forward (``ssh -L``) over a paramiko transport, served by background threads.

The listener binds 127.0.0.1 only. Each accepted connection gets a ``direct-tcpip`` channel to the
destination as the remote host sees it; a connection the remote side refuses is closed at once,
before any byte. Forwarding goes on until :meth:`LocalForward.close`.
"""

from __future__ import annotations

import select
import socket
import threading

__all__ = ["LocalForward", "forward_at"]

_CHUNK = 65536
#: Open forwards by local address, so a probe of that address can ask the far side instead.
_OPEN: dict[tuple[str, int], LocalForward] = {}


def forward_at(address: tuple[str, int]) -> LocalForward | None:
    """The open forward listening on ``address``, if any."""
    return _OPEN.get(address)


class LocalForward:
    """Forwards ``127.0.0.1:<local port>`` to ``host:port`` on the far side of ``transport``."""

    def __init__(self, transport, host: str, port: int, local_port: int = 0):
        self.transport = transport
        self.target = (host, port)
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", local_port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept_loop, name=f"vlaunch-forward-{port}", daemon=True)
        self._thread.start()
        _OPEN[self.address] = self

    def reachable(self) -> bool:
        """Whether the destination accepts a connection, as the far side of the transport sees it
        (the local listener always accepts, so probing it says nothing)."""
        try:
            self.transport.open_channel("direct-tcpip", self.target, ("127.0.0.1", 0), timeout=5).close()
            return True
        except Exception:  # refused, unreachable, or the connection is gone
            return False

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._listener], [], [], 0.5)
                if not ready or self._closed.is_set():
                    continue
                client, peer = self._listener.accept()
            except (OSError, ValueError):  # closed under us
                continue
            threading.Thread(target=self._serve, args=(client, peer), daemon=True).start()

    def _serve(self, client: socket.socket, peer) -> None:
        try:
            channel = self.transport.open_channel("direct-tcpip", self.target, peer[:2], timeout=10)
        except Exception:  # refused or unreachable on the far side, or the connection is gone
            client.close()
            return
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([client, channel], [], [], 0.5)
                if client in ready:
                    data = client.recv(_CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in ready:
                    data = channel.recv(_CHUNK)
                    if not data:
                        break
                    client.sendall(data)
        except Exception:  # either side went away: end this connection only
            pass
        finally:
            channel.close()
            client.close()

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        _OPEN.pop(self.address, None)
        self._closed.set()
        self._listener.close()
        self._thread.join(timeout=2)
