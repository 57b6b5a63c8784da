"""vlaunch: launch vLLM's OpenAI-compatible server with tuned, reproducible profiles, anywhere.

Public API for plugins: :data:`hookimpl`, :class:`Backend`, :class:`ProcessBackend`,
:class:`BatchBackend`, :class:`BackendOptions`, :class:`JobSpec`, :class:`JobState`,
:class:`JobStatus`, :class:`Transport`. For scripts: :mod:`vlaunch.api`.
"""

from __future__ import annotations

from .backend import Backend, BackendOptions, BatchBackend, JobSpec, ProcessBackend
from .plugins import hookimpl
from .states import JobState, JobStatus
from .transport import CommandResult, Transport

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "Backend", "BackendOptions", "BatchBackend", "ProcessBackend", "JobSpec",
           "JobState", "JobStatus", "Transport", "CommandResult"]
