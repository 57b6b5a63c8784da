"""Plugin loading: the core's defaults first, then every ``vlaunch`` entry point (built-in backends too).

A plugin that fails to import is recorded (``vlaunch backends`` shows it) instead of breaking the
CLI. ``VLAUNCH_DISABLE_PLUGINS=a,b`` skips entry points by name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import BackendNotFound, PluginError
from .hookspecs import hookimpl

__all__ = ["hookimpl", "BackendInfo", "PluginFailure", "PluginHost", "get_host", "reset_host", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "vlaunch"


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend and where it came from."""

    name: str
    cls: type
    distribution: str
    version: str


@dataclass(frozen=True)
class PluginFailure:
    """An entry point that could not be loaded."""

    name: str
    distribution: str
    error: str


@dataclass
class PluginHost:
    """The plugin manager plus the backends the plugins registered."""

    pm: pluggy.PluginManager
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    _origin: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def hook(self):
        """The hook relay: ``host.hook.vlaunch_submit(...)``."""
        return self.pm.hook

    def register(self, plugin, name: str | None = None, distribution: str = "vlaunch", version: str = "") -> None:
        """Register a plugin object and collect the backends it provides (its own ``vlaunch_register_backends``
        is called through pluggy, so tracing shows it, with a ``register`` that knows where they came from)."""
        self.pm.register(plugin, name=name)
        self._origin[id(plugin)] = (distribution, version)
        others = [other for other in self.pm.get_plugins() if other is not plugin]
        own = self.pm.subset_hook_caller("vlaunch_register_backends", remove_plugins=others)
        own(register=lambda cls: self._add_backend(cls, distribution, version))

    def unregister(self, plugin) -> None:
        """Remove a plugin and the backends it registered (tests use this)."""
        distribution, _ = self._origin.pop(id(plugin), ("", ""))
        self.pm.unregister(plugin)
        module = getattr(plugin, "__name__", None)
        for name, info in list(self.backends.items()):
            if info.distribution == distribution and (module is None or info.cls.__module__.startswith(module)):
                del self.backends[name]

    def _add_backend(self, cls, distribution: str, version: str) -> None:
        name = getattr(cls, "name", None)
        if not name or not isinstance(name, str):
            raise PluginError(f"{distribution}: registered backend {cls!r} has no name")
        if name in self.backends:
            other = self.backends[name]
            raise PluginError(f"backend {name!r} is registered twice: by {other.distribution} and by {distribution}")
        self.backends[name] = BackendInfo(name, cls, distribution, version)

    def backend(self, name: str):
        """An instance of backend ``name``."""
        if name not in self.backends:
            import difflib

            close = difflib.get_close_matches(name, list(self.backends), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            available = ", ".join(sorted(self.backends)) or "none"
            raise BackendNotFound(f"no backend named {name!r}{hint}; available: {available}")
        return self.backends[name].cls()


def _load() -> PluginHost:
    from . import core_hooks

    pm = pluggy.PluginManager("vlaunch")
    pm.add_hookspecs(hookspecs)
    if os.environ.get("VLAUNCH_TRACE_HOOKS"):
        pm.trace.root.setwriter(sys.stderr.write)  # never stdout: `vlaunch render > job.sh` stays clean
        pm.enable_tracing()
    host = PluginHost(pm)
    host.register(core_hooks, name="vlaunch.core")
    disabled = {x.strip() for x in os.environ.get("VLAUNCH_DISABLE_PLUGINS", "").split(",") if x.strip()}
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in disabled:
            continue
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else ""
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break the CLI
            host.failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        if pm.is_registered(plugin):
            continue
        host.register(plugin, name=f"{dist}:{ep.name}", distribution=dist, version=version)
    pm.check_pending()
    return host


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None:
        _HOST = _load()
    return _HOST


def reset_host() -> None:
    """Forget the loaded plugins, so the next :func:`get_host` loads them again."""
    global _HOST
    _HOST = None
