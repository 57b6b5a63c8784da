"""The ``lsf`` backend for vlaunch."""

from __future__ import annotations

from vlaunch import hookimpl

from .backend import LsfBackend, LsfOptions

__all__ = ["LsfBackend", "LsfOptions"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``lsf`` backend."""
    register(LsfBackend)
