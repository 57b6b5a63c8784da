"""vlaunch: launch vLLM's OpenAI-compatible server with tuned, reproducible profiles, anywhere.

Public API for plugins: :data:`hookimpl`, :class:`Backend`, :class:`ProcessBackend`,
:class:`BatchBackend`, :class:`BackendOptions`, :class:`JobSpec`, :class:`JobState`,
:class:`JobStatus`, :class:`Transport`, :class:`TransportKind`. For scripts: :mod:`vlaunch.api`.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Loaded on first use (PEP 562), so `vlaunch --help`, completion and `status` do not pay for pydantic
# and pluggy before they need them.
_LAZY = {"Backend": "backend", "BackendOptions": "backend", "BatchBackend": "backend", "ProcessBackend": "backend",
         "JobSpec": "backend", "hookimpl": "hookspecs", "JobState": "states", "JobStatus": "states",
         "Transport": "transport", "TransportKind": "transport", "CommandResult": "transport"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'vlaunch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
