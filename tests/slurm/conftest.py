"""Fixtures of the Slurm tests: the real single-node rig (scripts/rig/slurm-up.sh) must be running."""

from __future__ import annotations

import pytest

from slurm_support import require_rig


@pytest.fixture(scope="session")
def slurm_rig():
    """The real Slurm rig; the test fails with the command to start it when it is down."""
    require_rig()
