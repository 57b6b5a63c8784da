"""The SSH port forward under load, against the rig's real sshd: many connections opened and dropped
mid-transfer while commands and file reads share the same paramiko connection, and a close while
all of that is in flight.

A dropped connection leaves data in flight on its channel; paramiko's transport thread may still be
feeding that channel while the forward closes it (paramiko issues 1700 and 2271). The forward and
the command runner must never let that end the connection or let bytes land on another channel.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest

from vlaunch.errors import TransportError

SIZE = 4 << 20  # several SSH windows, so the far side is still sending when a client drops
CLIENTS = 6
DROPS_EACH = 40
HALF_CLOSED_EACH = 100


def _connect():
    from vlaunch.plugins import get_host

    return get_host().transport({"kind": "ssh", "host": "vl-host2"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(address, *, keep: int | None = None) -> bytes:
    """GET /blob through ``address``; with ``keep``, read that many bytes of the body and drop the
    connection at once (an RST, not a polite close)."""
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(b"GET /blob HTTP/1.0\r\nHost: x\r\n\r\n")
        data = bytearray()
        while keep is None or len(data) < keep:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        if keep is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return bytes(data).partition(b"\r\n\r\n")[2]


@pytest.fixture
def served(home):
    """A transport to vl-host2, a file of SIZE random bytes there, and an HTTP server for it on the
    host's own loopback; yields (transport, port, sha256 of the file)."""
    transport = _connect()
    root = f"{transport.home()}/forward-load"
    transport.run(["mkdir", "-p", root])
    transport.run(["sh", "-c", f"head -c {SIZE} /dev/urandom > {root}/blob"])
    digest = transport.run(["sha256sum", f"{root}/blob"]).stdout.split()[0]
    port = _free_port()
    pid = transport.spawn(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=root,
                          log=f"{root}/server.log")
    try:
        yield transport, port, digest
    finally:
        cleanup = _connect()
        cleanup.run(["kill", "--", f"-{pid}"])
        cleanup.run(["rm", "-rf", root])
        cleanup.close()
        transport.close()


def _wait_served(address) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            _get(address, keep=1)
            return
        except OSError:
            assert time.monotonic() < deadline, "the forwarded server never answered"
            time.sleep(0.2)


def test_dropped_connections_never_break_the_shared_connection(served):
    transport, port, digest = served
    address = transport.forward("127.0.0.1", port)
    _wait_served(address)
    errors: list[str] = []
    stop = threading.Event()

    def drop_connections():
        try:
            for n in range(DROPS_EACH):
                _get(address, keep=1 + (n * 7919) % SIZE // 8)
        except Exception as exc:  # noqa: BLE001 - each failure is reported below
            errors.append(f"client: {exc!r}")

    def run_commands():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                result = transport.run(["echo", f"call {n}"])
                if (result.returncode, result.stdout) != (0, f"call {n}\n"):
                    errors.append(f"command {n} gave {result.returncode} {result.stdout!r}")
                if transport.read_file("/etc/hostname") is None:
                    errors.append("the host's /etc/hostname could not be read")
            except TransportError as exc:
                errors.append(f"command {n}: {exc}")
                return

    commands = threading.Thread(target=run_commands)
    commands.start()
    clients = [threading.Thread(target=drop_connections) for _ in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=240)
    stop.set()
    commands.join(timeout=60)
    assert not errors, errors[:5]
    assert hashlib.sha256(_get(address)).hexdigest() == digest  # no stray byte landed in a transfer
    assert transport.run(["true"]).returncode == 0


def _get_half_closed(address) -> bytes:
    """GET /small, read the reply to its end and end our side: the server closes after answering, so
    both ends of the channel finish at the same moment."""
    with socket.create_connection(address, timeout=20) as sock:
        sock.sendall(b"GET /small HTTP/1.0\r\nHost: x\r\n\r\n")
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
        sock.shutdown(socket.SHUT_WR)  # the end of our side, just as the far side's close comes in
    return bytes(data).partition(b"\r\n\r\n")[2]


def test_half_closed_requests_never_break_the_shared_connection(served):
    """The client's end and the far side's close come together on every connection. An EOF sent for a
    channel after its close makes sshd drop the whole connection ("ieof packet referred to nonexistent
    channel"): seen once in sshd's log, in 1 of 10 runs of the ssh suite under load; this test did not
    reproduce it in 6 runs, so it guards the path rather than proving the fix."""
    transport, port, _ = served
    transport.run(["sh", "-c", f"echo small > {transport.home()}/forward-load/small"])
    address = transport.forward("127.0.0.1", port)
    _wait_served(address)
    errors: list[str] = []

    def requests():
        try:
            for _ in range(HALF_CLOSED_EACH):
                if _get_half_closed(address) != b"small\n":
                    errors.append("a reply was cut short")
        except Exception as exc:  # noqa: BLE001 - each failure is reported below
            errors.append(f"client: {exc!r}")

    clients = [threading.Thread(target=requests) for _ in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=240)
    assert not errors, errors[:5]
    assert transport.run(["true"]).returncode == 0


def test_close_while_transfers_and_commands_are_in_flight(served):
    transport, port, _ = served
    address = transport.forward("127.0.0.1", port)
    _wait_served(address)
    unexpected: list[str] = []
    started = threading.Barrier(CLIENTS + 2)

    def download():
        started.wait()
        try:
            while True:
                _get(address)
        except OSError:  # refused or cut once the forward is closed: expected
            pass
        except Exception as exc:  # noqa: BLE001
            unexpected.append(repr(exc))

    def run_commands():
        started.wait()
        try:
            while True:
                transport.run(["sleep", "0.05"])
        except TransportError:  # the connection was closed under it: expected, as one clear line
            pass
        except Exception as exc:  # noqa: BLE001
            unexpected.append(repr(exc))

    threads = [threading.Thread(target=download, daemon=True) for _ in range(CLIENTS)]
    threads.append(threading.Thread(target=run_commands, daemon=True))
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(1.0)
    began = time.monotonic()
    transport.close()
    took = time.monotonic() - began
    for thread in threads:
        thread.join(timeout=30)
    assert took < 2.0, f"close took {took:.1f} s"
    assert not [t for t in threads if t.is_alive()], "a user of the connection hung after close"
    assert not unexpected, unexpected[:5]
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
