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


@hookimpl
def vlaunch_check_health(job, stage, base_url):
    """The "port" stage of a server behind an SSH forward: ask the far side whether the port accepts
    connections (the forward's own local listener always does)."""
    if stage != "port" or job.transport.get("kind") != "ssh":
        return None
    from urllib.parse import urlsplit

    from vlaunch.probes import Probe

    from .forward import forward_at

    parts = urlsplit(base_url)
    forward = forward_at((parts.hostname, parts.port))
    if forward is None:
        return None
    host, port = forward.target
    if forward.reachable():
        return Probe(True, f"{host}:{port} accepts connections (through the ssh forward)")
    return Probe(False, f"{host}:{port} refuses connections (seen from the ssh host)")
