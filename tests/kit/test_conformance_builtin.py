"""The built-in backends run the same conformance suite third-party backends do."""

from __future__ import annotations

from helpers import REPO

from vlaunch.testing import ProcessConformance


class TestLocalConformance(ProcessConformance):
    backend_name = "local"
    golden_dir = REPO / "tests" / "golden" / "conformance" / "local"
