"""Where vlaunch keeps things on this machine (XDG base directories, overridable for tests)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_dir", "state_dir", "cache_dir", "jobs_dir", "job_names", "group_names", "packaged_profiles", "available_profiles",
           "PROFILE_ALIASES"]

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


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vlaunch`` (``~/.cache/vlaunch``): what can be rebuilt (vLLM's flags)."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "vlaunch"


def jobs_dir() -> Path:
    """Where the registry keeps one record per job: ``<state dir>/jobs``."""
    return state_dir() / "jobs"


def job_names(jobs: Path | None = None) -> list[str]:
    """Names of the jobs with a record in ``jobs`` (default :func:`jobs_dir`); cheap, nothing is parsed."""
    jobs = jobs or jobs_dir()
    if not jobs.is_dir():
        return []
    return sorted(p.stem for p in jobs.glob("*.json") if not p.name.startswith("."))


def group_names() -> list[str]:
    """Names of the replica groups with a record (``<state dir>/groups``); cheap, nothing is parsed."""
    return job_names(state_dir() / "groups")


def packaged_profiles() -> Path:
    """The profiles shipped with vlaunch: ``vlaunch/_configs`` in a wheel, the repo's ``configs/`` in a checkout."""
    package = Path(__file__).resolve().parent
    shipped = package / "_configs"
    return shipped if shipped.is_dir() else package.parent / "configs"


def available_profiles() -> dict[str, Path]:
    """Profile names to files; a user profile (config dir ``profiles/``) hides a packaged one."""
    found: dict[str, Path] = {}
    for folder in (packaged_profiles(), config_dir() / "profiles"):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.toml"))})
    return dict(sorted(found.items()))
