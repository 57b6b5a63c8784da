"""Testing kit for vlaunch plugins: fakes, pytest fixtures (entry point ``pytest11``, module
:mod:`vlaunch.testing.plugin`) the backend conformance suite (:class:`BatchConformance`,
:class:`ProcessConformance`) and the transport one (:class:`TransportConformance`). Names are imported on first use, so ``python -m
vlaunch.testing.tiny_model`` works without pytest."""

from __future__ import annotations

import importlib

__all__ = ["BackendConformance", "BatchConformance", "ProcessConformance", "TransportConformance",
           "RecordingTransport", "ok", "fail", "process_list"]

_WHERE = {"BackendConformance": "conformance", "BatchConformance": "conformance", "ProcessConformance": "conformance",
          "TransportConformance": "transport_conformance", "RecordingTransport": "fakes", "ok": "fakes", "fail": "fakes",
          "process_list": "fakes"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'vlaunch.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
