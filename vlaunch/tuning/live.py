"""Reach a running job's server from here, the way readiness does (through the job's transport and forward)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import VlaunchError
from ..states import JobState
from .metrics import MetricsUnavailable, Scrape, fetch, merge

__all__ = ["LiveJob", "open_job", "open_group", "open_target"]


@dataclass
class LiveJob:
    """A job whose server should be answering: its session, a URL that reaches it from here, and its API key."""

    session: object
    url: str
    api_key: str | None
    #: A replica group's serving replicas (its name then stands for the group: ``url`` is the router's).
    replicas: dict[str, LiveJob] = field(default_factory=dict)

    @property
    def record(self):
        """The job's registry record."""
        return self.session.record

    def scrape(self) -> Scrape:
        """The server's /metrics now; a group's: every replica that answers, engines named ``REPLICA/N``."""
        if not self.replicas:
            return fetch(self.url, self.api_key)
        scrapes, problems = {}, []
        for name, replica in self.replicas.items():
            try:
                scrapes[name.rsplit("-", 1)[-1]] = fetch(replica.url, replica.api_key)
            except MetricsUnavailable as exc:
                problems.append(str(exc))
        if not scrapes:
            raise MetricsUnavailable("no replica answers: " + "; ".join(problems))
        return merge(scrapes)

    def ended(self) -> str | None:
        """Poll the job once; a one-line description if it has ended, else None."""
        if self.replicas:
            from ..group import Groups

            group = Groups().get(self.record.name)
            return group.state.value + (f": {group.reason}" if group.reason else "") if group.state.is_final else None
        try:
            status = self.session.refresh()
        except VlaunchError as exc:
            return f"its state cannot be read ({exc})"
        if status.state.is_final:
            return status.state.value + (f": {status.reason}" if status.reason else "")
        return None


@contextmanager
def open_job(name: str) -> Iterator[LiveJob]:
    """Open job ``name`` for measuring; refuses with one line when it has ended or not published its address."""
    from .. import api

    session = api.session_for(name)
    try:
        record = session.record
        if not record.state.is_final:
            session.refresh()
        problems = api.look(session) if record.state is JobState.RUNNING and not record.ready_at else []
        if record.state.is_final:
            why = f": {record.reason}" if record.reason else ""
            raise VlaunchError(f"job {name} has ended ({record.state.value}{why}); there is no server to measure")
        if not record.ready_at or not record.endpoint:
            why = f": {'; '.join(problems) or record.reason}" if problems or record.reason else ""
            raise VlaunchError(f"job {name} is not ready yet ({record.state.value}{why}); `vlaunch wait"
                               f" {shlex.quote(name)}` waits for it")
        yield LiveJob(session, session.local_url(), session.registry.key(name))
    finally:
        session.transport.close()


@contextmanager
def open_group(name: str) -> Iterator[LiveJob]:
    """Open replica group ``name`` for measuring: its router (what a benchmark sends to, with the group's key)
    and each serving replica (whose /metrics ``watch`` reads, through the replica's own transport)."""
    from .. import api
    from ..group import Groups
    from ..plugins import get_host
    from ..registry import JobRecord
    from ..session import JobSession
    from ..transport import LocalTransport

    groups = Groups()
    group = groups.get(name)
    if group.state.is_final or not group.serving:
        raise VlaunchError(f"group {name} has no replica serving ({group.state.value}); see `vlaunch status"
                           f" {shlex.quote(name)}`")
    replicas: dict[str, LiveJob] = {}
    try:
        for member in group.serving:
            session = api.session_for(member)
            replicas[member] = LiveJob(session, session.local_url(), session.registry.key(member))
        first = replicas[group.serving[0]].record
        record = JobRecord(name=name, backend=first.backend, profile=group.profile, run_dir=group.run_dir,
                           config=first.config, command=first.command, served_model_name=group.model,
                           host=group.router_host, port=group.router_port)
        session = JobSession(get_host(), replicas[group.serving[0]].session.registry, record, LocalTransport())
        yield LiveJob(session, group.endpoint, groups.key(name), replicas)
    finally:
        for replica in replicas.values():
            replica.session.transport.close()


def open_target(name: str) -> Iterator[LiveJob]:
    """:func:`open_group` for a replica group's name, else :func:`open_job`."""
    from ..paths import group_names

    return open_group(name) if name in group_names() else open_job(name)
