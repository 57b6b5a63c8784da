"""The ``example`` backend for vlaunch."""

from __future__ import annotations

from vlaunch import hookimpl

from .backend import ExampleBackend, ExampleOptions

__all__ = ["ExampleBackend", "ExampleOptions"]


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``example`` backend."""
    register(ExampleBackend)
