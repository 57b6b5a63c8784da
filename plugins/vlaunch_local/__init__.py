"""The ``local`` backend: vLLM on this machine, detached in its own session, output to a log file."""

from __future__ import annotations

from pydantic import Field

from vlaunch import BackendOptions, ProcessBackend, hookimpl

__all__ = ["LocalBackend", "LocalOptions"]


class LocalOptions(BackendOptions):
    """Options of the ``[backend.local]`` table."""

    kill_grace: float = Field(15.0, gt=0, description="Seconds between SIGTERM and SIGKILL on `vlaunch down`.")


class LocalBackend(ProcessBackend):
    """Starts the job script with ``setsid``-like detachment; ``down`` stops the whole process group."""

    name = "local"
    description = "vLLM on this machine, detached, GPUs chosen by resources.gpu_ids"
    options_model = LocalOptions


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``local`` backend."""
    register(LocalBackend)
