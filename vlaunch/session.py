"""A job session: one job's record together with its backend, transport and hooks.

This is where the core runs a backend's steps (through the hooks) and keeps the registry in step
with what it observes.
"""

from __future__ import annotations

from collections.abc import Iterable

from .config.model import Profile
from .errors import NotReady, PluginError
from .lifecycle import apply_status, request_cancel, withdraw_cancel
from .plugins import PluginHost
from .probes import Probe
from .registry import JobRecord, Registry
from .states import JobStatus
from .transport import Transport

__all__ = ["JobSession", "connect_host", "refresh_many", "DOWN_CAUSE", "LOOPBACK"]

#: Why a job was cancelled when a user asked (``vlaunch down``): a replica stopped so is not replaced.
DOWN_CAUSE = "cancelled by vlaunch down"
_ANY_ADDRESS = {"0.0.0.0", "::", "", "*"}
#: Addresses only the machine itself reaches.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def connect_host(bind_host: str, node: str) -> str:
    """Where to reach a server that bound ``bind_host`` on ``node``."""
    return node if bind_host in _ANY_ADDRESS else bind_host


class JobSession:
    """One job, with what it takes to observe, probe and stop it."""

    def __init__(self, host: PluginHost, registry: Registry, record: JobRecord, transport: Transport):
        self.host = host
        self.registry = registry
        self.record = record
        self.transport = transport
        self.backend = host.backend(record.backend)
        self.profile = Profile.model_validate(record.config) if record.config else Profile()
        self._forwarded: str | None = None

    def refresh(self) -> JobStatus:
        """Poll the backend for this job and record what it says (starting from the stored record, which
        another vlaunch process, e.g. ``down``, may have changed)."""
        self.registry.reload(self.record)
        status = self.host.poll(self.backend, [self.record], self.transport).get(self.record.name)
        if status is None:
            raise PluginError(f"backend {self.backend.name} did not report on job {self.record.name}")
        apply_status(self.registry, self.record, status)
        return status

    def read_log(self, offset: int) -> bytes:
        """Server log bytes from ``offset``."""
        return self.host.read_logs(self.backend, self.record, self.transport, offset)

    def check(self, stage: str, base_url: str) -> Probe:
        """Probe one readiness stage through the hooks; "port", unless a plugin answers it, is asked of the
        transport (where the target sees the server: an SSH forward's local listener always accepts)."""
        result = self.host.check_health(self.record, stage, base_url, self.registry.key(self.record.name))
        if result is None and stage == "port":
            seen = "" if self.transport.kind == "local" else f" (seen through the {self.transport.kind} transport)"
            if self.transport.port_open(self.record.host, self.record.port):
                return Probe(True, f"accepting connections{seen}")
            return Probe(False, f"connection refused{seen}")
        return result or Probe(False, "no plugin answered the health check")

    def publish(self, where: dict) -> str:
        """Record where the server listens (from the job's rendezvous file); return a URL reachable from here."""
        rec = self.record
        rec.node = str(where["host"])
        rec.port = int(where["port"])
        rec.host = connect_host(self.profile.server.host, rec.node)
        self.registry.save(rec)
        self._check_reachable()
        return self.local_url()

    def _check_reachable(self) -> None:
        """A server bound to loopback on another node than the transport's machine can never answer."""
        if self.record.host not in LOOPBACK:
            return
        here = self.transport.run(["hostname"]).stdout.strip()
        if here and here.split(".")[0] != self.record.node.split(".")[0]:
            raise NotReady(f"the server binds {self.record.host} on node {self.record.node}, which {here} cannot"
                           " reach; set server.host = \"0.0.0.0\" (or the node's address) in the profile")

    def local_url(self) -> str:
        """``http://host:port`` that reaches the server from this machine (through a forward if needed)."""
        if self._forwarded is None:
            host, port = self.transport.forward(self.record.host, self.record.port)
            self._forwarded = f"http://{host}:{port}"
        return self._forwarded

    def cancel(self, cause: str = DOWN_CAUSE) -> None:
        """Stop the job and confirm it is gone, whatever its record says (a state inferred from missing
        evidence may be wrong): the rules of :mod:`vlaunch.lifecycle`. When the backend cannot confirm,
        the record is left as it was."""
        requested = request_cancel(self.registry, self.record, cause)
        try:
            self.host.cancel(self.backend, self.record, self.transport)
        except BaseException:
            if requested:
                withdraw_cancel(self.registry, self.record)
            raise
        if requested:
            self.refresh()


def refresh_many(host: PluginHost, registry: Registry, records: Iterable[JobRecord], transports) -> list[str]:
    """Poll live jobs in batches (one call per backend and transport); return one line per failure."""
    groups: dict[tuple, list[JobRecord]] = {}
    for rec in records:
        if not rec.state.is_settled and rec.native_id:
            key = (rec.backend, tuple(sorted(rec.transport.items())))
            groups.setdefault(key, []).append(rec)
    problems = []
    for (backend_name, _), recs in groups.items():
        try:
            backend = host.backend(backend_name)
            transport = transports(recs[0].transport)
            statuses = host.poll(backend, recs, transport)
        except Exception as exc:  # reported per group; other groups are still refreshed
            problems.append(f"{backend_name}: cannot refresh {len(recs)} job(s): {exc}")
            continue
        for rec in recs:
            if rec.name in statuses:
                apply_status(registry, rec, statuses[rec.name])
    return problems
