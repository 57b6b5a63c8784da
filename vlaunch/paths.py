"""Where vlaunch keeps things on this machine (XDG base directories, overridable for tests)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["config_dir", "state_dir", "packaged_profiles", "available_profiles", "PROFILE_ALIASES"]

#: Old profile names that still work: ``default`` was the seed's baseline before ``auto`` became the default.
PROFILE_ALIASES = {"default": "baseline"}


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def config_dir() -> Path:
    """``$VLAUNCH_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/vlaunch`` (``~/.config/vlaunch``)."""
    override = os.environ.get("VLAUNCH_CONFIG_DIR")
    return Path(override) if override else _xdg("XDG_CONFIG_HOME", ".config") / "vlaunch"


def state_dir() -> Path:
    """``$VLAUNCH_STATE_DIR``, else ``$XDG_STATE_HOME/vlaunch`` (``~/.local/state/vlaunch``)."""
    override = os.environ.get("VLAUNCH_STATE_DIR")
    return Path(override) if override else _xdg("XDG_STATE_HOME", ".local/state") / "vlaunch"


def packaged_profiles() -> Path:
    """The profiles shipped with vlaunch: ``vlaunch/_configs`` in a wheel, the repo's ``configs/`` in a checkout."""
    shipped = Path(str(resources.files("vlaunch"))) / "_configs"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "configs"


def available_profiles() -> dict[str, Path]:
    """Profile names to files; a user profile (config dir ``profiles/``) hides a packaged one."""
    found: dict[str, Path] = {}
    for folder in (packaged_profiles(), config_dir() / "profiles"):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return dict(sorted(found.items()))
