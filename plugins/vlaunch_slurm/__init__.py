"""The ``slurm`` backend plugin: vLLM as a Slurm batch job, on one node or several."""

from __future__ import annotations

from vlaunch import hookimpl

from .backend import SlurmBackend
from .options import SlurmOptions

__all__ = ["SlurmBackend", "SlurmOptions"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``slurm`` backend."""
    register(SlurmBackend)
