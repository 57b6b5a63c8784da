"""Reach a running job's server from here, the way readiness does (through the job's transport and forward)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import VlaunchError

__all__ = ["LiveJob", "open_job"]


@dataclass
class LiveJob:
    """A job whose server should be answering: its session, a URL that reaches it from here, and its API key."""

    session: object
    url: str
    api_key: str | None

    @property
    def record(self):
        """The job's registry record."""
        return self.session.record

    def ended(self) -> str | None:
        """Poll the job once; a one-line description if it has ended, else None."""
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
        if record.state.is_final:
            why = f": {record.reason}" if record.reason else ""
            raise VlaunchError(f"job {name} has ended ({record.state.value}{why}); there is no server to measure")
        if not record.endpoint:
            raise VlaunchError(f"job {name} has not published its address yet ({record.state.value});"
                               f" wait for it with `vlaunch status {shlex.quote(name)}`")
        yield LiveJob(session, session.local_url(), session.registry.key(name))
    finally:
        session.transport.close()
