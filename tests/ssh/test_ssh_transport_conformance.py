"""The SSH transport passes the transport conformance suite a third-party transport runs, against the
rig's real sshd (vl-host2: a network namespace whose loopback is its own)."""

from __future__ import annotations

import pytest

from vlaunch.testing import TransportConformance


class TestSshTransportConformance(TransportConformance):
    kind = "ssh"

    @pytest.fixture
    def spec(self, home):
        return {"kind": "ssh", "host": "vl-host2"}
