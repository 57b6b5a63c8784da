"""The transport conformance suite: one subclass in a plugin's tests checks what every transport must do.

    import pytest
    from vlaunch.testing.transport_conformance import TransportConformance

    class TestMyTransport(TransportConformance):
        kind = "k8s-exec"

        @pytest.fixture
        def spec(self):
            return {"kind": "k8s-exec", "pod": "gpu-0"}

The suite connects ``spec`` the way vlaunch connects a job record's (``get_host().transport(spec)``),
in a scratch directory under the target's home, and checks commands, files, detached processes and
ports as the rest of vlaunch relies on them. The target needs ``sh``, ``printf``, ``cat``, ``stat``,
``ps``, ``kill``, ``sleep`` and ``python3``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from pydantic import ValidationError

from ..errors import CommandNotFound
from ..plugins import get_host

__all__ = ["TransportConformance"]

#: Words a shell would act on: a transport runs argv lists, so they must arrive as they are.
HOSTILE = "x'; touch /tmp/vlaunch-transport-pwned; echo '$(id)`id` \\ \"q\" ~ * ünï\ttab"

_LISTEN = ("import socket, sys, time\ns = socket.create_server(('127.0.0.1', 0))\n"
           "print(s.getsockname()[1], flush=True)\ntime.sleep(120)\n")


class TransportConformance:
    """Checks every transport must pass. Set ``kind`` and provide a ``spec`` fixture."""

    #: The kind the plugin registers.
    kind: ClassVar[str]

    @pytest.fixture
    def spec(self) -> dict:
        """The transport spec to connect (override)."""
        raise NotImplementedError("give the conformance class a `spec` fixture")

    @pytest.fixture
    def transport(self, spec):
        connected = get_host().transport(spec)
        yield connected
        connected.close()

    @pytest.fixture
    def scratch(self, transport) -> Iterator[str]:
        """A fresh directory under the target's home, removed afterwards."""
        path = f"{transport.home()}/.vlaunch-conformance-{secrets.token_hex(4)}"
        assert transport.run(["mkdir", "-p", path]).ok
        yield path
        transport.run(["rm", "-rf", path])

    def test_kind_is_registered_with_a_strict_spec_model(self, spec):
        info = get_host().transports.get(self.kind)
        assert info is not None, f"no transport {self.kind!r} registered; implement vlaunch_register_transports"
        assert info.kind.description, "give the TransportKind a one-line description"
        fields = {k: v for k, v in spec.items() if k != "kind"}
        info.kind.spec_model.model_validate(fields)
        with pytest.raises(ValidationError):
            info.kind.spec_model.model_validate({**fields, "surely_not_a_field": 1})

    def test_describe_is_a_spec_of_its_kind(self, transport):
        described = transport.describe()
        assert described["kind"] == self.kind == transport.kind
        info = get_host().transports[self.kind]
        info.kind.spec_model.model_validate({k: v for k, v in described.items() if k != "kind"})

    def test_run_returns_status_and_both_streams(self, transport):
        result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
        assert not result.ok and result.message() == "err"

    def test_argv_reaches_the_program_as_given(self, transport):
        assert transport.run(["printf", "%s|%s", HOSTILE, ""]).stdout == f"{HOSTILE}|"

    def test_input_is_fed_to_the_program(self, transport):
        assert transport.run(["cat"], input="line one\nline two\n").stdout == "line one\nline two\n"

    def test_a_missing_program_raises_command_not_found(self, transport):
        with pytest.raises(CommandNotFound):
            transport.run(["vlaunch-surely-not-a-program"])

    def test_home_is_an_absolute_directory(self, transport):
        home = transport.home()
        assert home.startswith("/") and transport.run(["test", "-d", home]).ok

    def test_files_are_written_with_their_mode_and_read_from_an_offset(self, transport, scratch):
        path = f"{scratch}/deeper/key.yaml"
        transport.write_file(path, "api-key: secret\n", mode=0o600)
        assert transport.run(["stat", "-c", "%a", path]).stdout.strip() == "600"
        assert transport.read_file(path) == b"api-key: secret\n"
        assert transport.read_file(path, offset=9) == b"secret\n"
        transport.write_file(path, "replaced\n", mode=0o600)
        assert transport.read_file(path) == b"replaced\n"
        assert transport.read_file(f"{scratch}/absent") is None

    def test_spawn_starts_a_detached_session_that_logs(self, transport, scratch):
        log = f"{scratch}/spawned.log"
        pid = transport.spawn(["sh", "-c", "echo started; exec sleep 60"], cwd=scratch, log=log)
        try:
            deadline = time.monotonic() + 20
            while (transport.read_file(log) or b"") != b"started\n":
                assert time.monotonic() < deadline, "the spawned process never wrote its log"
                time.sleep(0.2)
            session = transport.run(["ps", "-o", "sid=", "-p", str(pid)]).stdout.strip()
            assert session == str(pid), "spawn must start a new session (its pid leads its process group)"
        finally:
            transport.run(["kill", "-KILL", "--", f"-{pid}"])

    def test_port_open_tells_a_listening_port_from_a_closed_one(self, transport, scratch):
        log = f"{scratch}/listener.log"
        pid = transport.spawn(["python3", "-c", _LISTEN], cwd=scratch, log=log)
        try:
            deadline = time.monotonic() + 20
            while not (transport.read_file(log) or b"").strip():
                assert time.monotonic() < deadline, "the listener never started"
                time.sleep(0.2)
            port = int(transport.read_file(log).split()[0])
            assert transport.port_open("127.0.0.1", port)
        finally:
            transport.run(["kill", "-KILL", "--", f"-{pid}"])
        deadline = time.monotonic() + 10
        while transport.port_open("127.0.0.1", port):
            assert time.monotonic() < deadline, "a closed port still reads as open"
            time.sleep(0.2)
