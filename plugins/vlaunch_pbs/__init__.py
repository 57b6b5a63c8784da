"""The ``pbs`` backend plugin: vLLM as a PBS Pro / OpenPBS (or Torque) batch job."""

from __future__ import annotations

from vlaunch import hookimpl

from .backend import PbsBackend
from .options import PbsOptions

__all__ = ["PbsBackend", "PbsOptions"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``pbs`` backend."""
    register(PbsBackend)
