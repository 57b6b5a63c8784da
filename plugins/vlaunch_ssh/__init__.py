"""SSH for vlaunch: the ``ssh`` backend (vLLM on a machine you reach over SSH) and the SSH transport
that every backend composes with (``vlaunch up --backend slurm --via login1``).

paramiko is imported only when an SSH transport is actually built, so ``render`` and ``status`` of
local jobs never load it.
"""

from __future__ import annotations

from vlaunch import TransportKind, hookimpl
from vlaunch.errors import TransportError

from .backend import PARAMIKO_HINT, SSHBackend, SSHOptions, SSHSpec, SSHTarget

__all__ = ["SSHBackend", "SSHOptions", "SSHSpec", "SSHTarget"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``ssh`` backend."""
    register(SSHBackend)


def _connect(spec: SSHSpec):
    if SSHBackend.missing_modules():
        raise TransportError(f"ssh to {spec.host} needs paramiko, which this Python lacks: {PARAMIKO_HINT}")
    from .transport import SSHTransport

    return SSHTransport(spec)


@hookimpl
def vlaunch_register_transports(register):
    """Register the ``ssh`` transport (``{"kind": "ssh", "host": ...}``), which every backend composes with."""
    register(TransportKind("ssh", SSHSpec, _connect, "a host reached over SSH (paramiko)"))
