"""SSH for vlaunch: the ``ssh`` backend (vLLM on a machine you reach over SSH) and the SSH transport
that every backend composes with (``vlaunch up --backend slurm --via login1``).

paramiko is imported only when an SSH transport is actually built, so ``render`` and ``status`` of
local jobs never load it.
"""

from __future__ import annotations

from vlaunch import hookimpl
from vlaunch.errors import TransportError

from .backend import PARAMIKO_HINT, SSHBackend, SSHOptions, SSHTarget

__all__ = ["SSHBackend", "SSHOptions", "SSHTarget"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``ssh`` backend."""
    register(SSHBackend)


@hookimpl
def vlaunch_make_transport(spec):
    """Connect an SSH transport for ``{"kind": "ssh", "host": ...}`` specs."""
    if spec.get("kind") != "ssh":
        return None
    if SSHBackend.missing_modules():
        raise TransportError(f"ssh to {spec.get('host')} needs paramiko, which this Python lacks: {PARAMIKO_HINT}")
    from .transport import SSHTransport

    return SSHTransport(spec)

