"""Shared fixtures: an isolated state and config dir per test (``tiny_model`` and the plugin-author
fixtures come from vlaunch's pytest plugin, vlaunch.testing.plugin; functions are in helpers.py)."""

from __future__ import annotations

import os

import pytest

from helpers import BIN

# Jobs started by the tests find this interpreter (and its vLLM) as `python3` on PATH.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own state dir, config dir and working directory, and freshly loaded plugins."""
    from vlaunch.plugins import reset_host

    monkeypatch.setenv("VLAUNCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VLAUNCH_CONFIG_DIR", str(tmp_path / "config"))
    for key in [k for k in os.environ if k.startswith("VLAUNCH_") and "__" in k]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    reset_host()
    yield tmp_path
    reset_host()
