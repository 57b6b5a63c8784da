"""Shell-completion callbacks for click arguments and options (imports happen only when completing)."""

from __future__ import annotations

__all__ = ["profiles", "jobs", "backends", "jobs_or_profiles"]


def profiles(ctx, param, incomplete: str) -> list[str]:
    """Profile names (shipped and user) that start with ``incomplete``."""
    from .paths import available_profiles

    return [name for name in available_profiles() if name.startswith(incomplete)]


def jobs(ctx, param, incomplete: str) -> list[str]:
    """Names of jobs and replica groups that start with ``incomplete`` (nothing is parsed)."""
    from .paths import group_names, job_names

    return [name for name in sorted({*job_names(), *group_names()}) if name.startswith(incomplete)]


def backends(ctx, param, incomplete: str) -> list[str]:
    """Installed backend names that start with ``incomplete``."""
    from .plugins import get_host

    return [name for name in get_host().backends if name.startswith(incomplete)]


def jobs_or_profiles(ctx, param, incomplete: str) -> list[str]:
    """Profiles when the command was given ``--compare`` (``vlaunch bench --compare A B``), else jobs."""
    return (profiles if ctx.params.get("compare_") else jobs)(ctx, param, incomplete)
