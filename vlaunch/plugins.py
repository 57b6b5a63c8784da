"""Plugin loading: the core's defaults first, then every ``vlaunch`` entry point (built-in backends and
transports too).

A plugin that fails to import is recorded (``vlaunch backends`` shows it) instead of breaking the
CLI. ``VLAUNCH_DISABLE_PLUGINS=a,b`` skips entry points by name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs
from .errors import BackendNotFound, PluginError, TransportError
from .hookspecs import hookimpl
from .transport import Transport, TransportKind

if TYPE_CHECKING:
    from .backend import Backend, JobSpec
    from .config.model import Profile
    from .probes import Probe
    from .registry import JobRecord
    from .states import JobStatus

__all__ = ["hookimpl", "BackendInfo", "TransportInfo", "PluginFailure", "PluginHost", "get_host", "reset_host",
           "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "vlaunch"


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend and where it came from."""

    name: str
    cls: type
    distribution: str
    version: str


@dataclass(frozen=True)
class TransportInfo:
    """A registered transport kind and where it came from."""

    kind: TransportKind
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
    """The plugin manager plus the backends and transports the plugins registered."""

    pm: pluggy.PluginManager
    backends: dict[str, BackendInfo] = field(default_factory=dict)
    transports: dict[str, TransportInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    _origin: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def hook(self):
        """pluggy's hook relay (``host.hook.vlaunch_poll(...)``), for plugins and scripts; the core calls
        each hook through its typed method below."""
        return self.pm.hook

    def register(self, plugin, name: str | None = None, distribution: str = "vlaunch", version: str = "") -> None:
        """Register a plugin object and collect the backends and transports it provides (its own
        ``vlaunch_register_*`` hooks are called through pluggy, so tracing shows them, with a ``register``
        that knows where they came from)."""
        self.pm.register(plugin, name=name)
        self._origin[id(plugin)] = (distribution, version)
        others = [other for other in self.pm.get_plugins() if other is not plugin]
        backends = self.pm.subset_hook_caller("vlaunch_register_backends", remove_plugins=others)
        backends(register=lambda cls: self._add_backend(cls, distribution, version))
        transports = self.pm.subset_hook_caller("vlaunch_register_transports", remove_plugins=others)
        transports(register=lambda kind: self._add_transport(kind, distribution, version))

    def unregister(self, plugin) -> None:
        """Remove a plugin and the backends and transports it registered (tests use this)."""
        distribution, _ = self._origin.pop(id(plugin), ("", ""))
        self.pm.unregister(plugin)
        module = getattr(plugin, "__name__", None)
        for name, info in list(self.backends.items()):
            if info.distribution == distribution and (module is None or info.cls.__module__.startswith(module)):
                del self.backends[name]
        for kind, info in list(self.transports.items()):
            if info.distribution == distribution and (module is None or info.kind.connect.__module__.startswith(module)):
                del self.transports[kind]

    def _add_backend(self, cls, distribution: str, version: str) -> None:
        name = getattr(cls, "name", None)
        if not name or not isinstance(name, str):
            raise PluginError(f"{distribution}: registered backend {cls!r} has no name")
        if name in self.backends:
            other = self.backends[name]
            raise PluginError(f"backend {name!r} is registered twice: by {other.distribution} and by {distribution}")
        self.backends[name] = BackendInfo(name, cls, distribution, version)

    def _add_transport(self, kind: TransportKind, distribution: str, version: str) -> None:
        if not isinstance(kind, TransportKind) or not kind.kind:
            raise PluginError(f"{distribution}: registered transport {kind!r} is not a named vlaunch.TransportKind")
        if kind.kind in self.transports:
            other = self.transports[kind.kind]
            raise PluginError(f"transport {kind.kind!r} is registered twice: by {other.distribution} and by {distribution}")
        self.transports[kind.kind] = TransportInfo(kind, distribution, version)

    def transport(self, spec: dict) -> Transport:
        """Connect the transport a job record's spec describes (``{"kind": "ssh", "host": ...}``), once
        its kind's model has validated it."""
        from pydantic import ValidationError

        legacy = self.pm.hook.vlaunch_make_transport(spec=spec)  # a plugin still on the deprecated hook wins,
        if legacy is not None:  # as it did when the core's own implementation came last
            return legacy
        name = spec.get("kind", "local")
        info = self.transports.get(name)
        if info is None:
            known = ", ".join(sorted(self.transports)) or "none"
            raise TransportError(f"no plugin provides a {name!r} transport (installed: {known};"
                                 " is paramiko installed? pip install paramiko)")
        try:
            validated = info.kind.spec_model.model_validate({k: v for k, v in spec.items() if k != "kind"})
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(map(str, error["loc"])) or "spec"
            raise TransportError(f"invalid {name} transport {spec}: {where}: {error['msg']}") from None
        return info.kind.connect(validated)

    # -- the hooks, one typed method each, for the core ----------------------------------------------
    def amend_config(self, profile: Profile, backend: str) -> None:
        """Let every plugin amend the resolved ``profile`` for ``backend``."""
        self.pm.hook.vlaunch_amend_config(profile=profile, backend=backend)

    def render_script(self, backend: Backend, job: JobSpec) -> str:
        """The job script (the core's rendering unless a plugin replaces it)."""
        return self.pm.hook.vlaunch_render_script(backend=backend, job=job)

    def submit(self, backend: Backend, job: JobSpec, script_path: str, transport: Transport) -> str:
        """Start or queue ``script_path``; the native id."""
        native_id = self.pm.hook.vlaunch_submit(backend=backend, job=job, script_path=script_path, transport=transport)
        if not native_id:
            raise PluginError(f"backend {backend.name}: submit gave no job id")
        return str(native_id)

    def poll(self, backend: Backend, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus]:
        """What ``backend`` observes of ``jobs`` (all on ``transport``), by job name."""
        return self.pm.hook.vlaunch_poll(backend=backend, jobs=jobs, transport=transport) or {}

    def cancel(self, backend: Backend, job: JobRecord, transport: Transport) -> None:
        """Stop ``job``; returns once the backend confirmed it gone."""
        self.pm.hook.vlaunch_cancel(backend=backend, job=job, transport=transport)

    def check_health(self, job: JobRecord, stage: str, base_url: str, api_key: str | None) -> Probe | None:
        """Probe one readiness stage of ``job``'s server at ``base_url``; None when no plugin answered
        (the core answers the HTTP stages, never "port")."""
        return self.pm.hook.vlaunch_check_health(job=job, stage=stage, base_url=base_url, api_key=api_key)

    def read_logs(self, backend: Backend, job: JobRecord, transport: Transport, offset: int) -> bytes:
        """``job``'s server log from byte ``offset``."""
        return self.pm.hook.vlaunch_read_logs(backend=backend, job=job, transport=transport, offset=offset) or b""

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
