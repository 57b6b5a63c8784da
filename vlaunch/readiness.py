"""Layered readiness: queued -> running -> process (rendezvous) -> port -> /health -> /v1/models -> completion
(a job that serves another program than vLLM, a group's router, is ready at /health).

Each stage has its own timeout and is reported with its time. Between probes the job's liveness is
checked (:class:`vlaunch.lifecycle.Liveness`: the job's own exit marker, the backend's poll with
back-off), so a server that dies at start-up fails ``up`` at once with its exit status and the log lines
that say why (:mod:`vlaunch.log_cause`; else the tail of its log), while a job that cannot be observed for a moment is waited for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import NotReady, ServerDied
from .lifecycle import Liveness, marker_exit_code
from .log_cause import find_cause
from .states import JobState

__all__ = ["StageEvent", "Readiness"]


@dataclass(frozen=True)
class StageEvent:
    """Progress of one stage: ``status`` is "waiting", "passed" or "skipped"; ``seconds`` since it began."""

    stage: str
    status: str
    seconds: float
    detail: str = ""


#: Lines of the log's end shown when the server ended before it was ready and its log names no cause.
LOG_TAIL_LINES = 15


class Readiness:
    """Waits for one job's server to be really ready, through every stage."""

    def __init__(self, session, progress: Callable[[StageEvent], None] | None = None, deadline: float | None = None):
        self.session = session
        self.record = session.record
        self.settings = session.profile.readiness
        self.progress = progress or (lambda event: None)
        self.deadline = deadline
        self.liveness = Liveness(session)
        self._problem: str | None = None

    # -- liveness ---------------------------------------------------------------------------------
    def _check_alive(self, stage: str, started: float, force: bool = False) -> JobState:
        """Refresh the job's state when due and raise :class:`ServerDied` once it ended; say so (once) while
        the job cannot be observed."""
        status, marker = self.liveness.check(force)
        if self.liveness.problem != self._problem:
            self._problem = self.liveness.problem
            if self._problem:
                self.progress(StageEvent(stage, "waiting", time.monotonic() - started, self._problem))
        if status is None:
            return self.record.state
        if status.state.is_final or marker is not None:
            code = self.record.exit_code if self.record.exit_code is not None else marker_exit_code(marker)
            why = status.reason or f"state {status.state.value}"
            said = code is None or f"status {code}" in why
            raise ServerDied(f"server ended before it was ready ({why}" + ("" if said else f", exit status {code}") + ")"
                             + self._evidence())
        return status.state

    def _evidence(self) -> str:
        """On lines of their own: the log lines that name why the server ended, else the log's last lines."""
        text = self.session.read_log(0).decode(errors="replace")
        found = find_cause(text)
        if found:
            return "\nfrom its log:\n" + "\n".join(found.lines)
        tail = "\n".join(text.rstrip().splitlines()[-LOG_TAIL_LINES:])
        return f"\nlast log lines:\n{tail}" if tail else ""

    def _limit(self, seconds: float | None) -> float:
        ends = [t for t in (time.monotonic() + seconds if seconds else None, self.deadline) if t]
        return min(ends) if ends else float("inf")

    def _timeout(self, stage: str, started: float, detail: str) -> NotReady:
        return NotReady(f"not ready: stage {stage!r} still waiting after {time.monotonic() - started:.0f} s"
                        + (f" ({detail})" if detail else ""))

    # -- stages -----------------------------------------------------------------------------------
    def _queued(self) -> None:
        started, limit = time.monotonic(), self._limit(self.settings.queue_timeout)
        last_reason = None
        while True:
            state = self._check_alive("queued", started, force=True)
            if state is not JobState.PENDING:
                self.progress(StageEvent("queued", "passed", time.monotonic() - started, "running"))
                return
            if self.record.reason != last_reason:
                last_reason = self.record.reason
                self.progress(StageEvent("queued", "waiting", time.monotonic() - started, last_reason or "pending"))
            if time.monotonic() > limit:
                raise self._timeout("queued", started, last_reason or "")
            time.sleep(self.liveness.backoff.gap)

    def _process(self, started: float, limit: float) -> dict:
        self.progress(StageEvent("process", "waiting", 0.0, "waiting for the job to publish its address"))
        while True:
            raw = self.session.transport.read_file(self.record.path("rendezvous.json"))
            if raw:
                try:
                    where = json.loads(raw)
                    self.progress(StageEvent("process", "passed", time.monotonic() - started,
                                             f"pid {where['pid']} on {where['host']}, port {where['port']}"))
                    return where
                except (ValueError, KeyError):
                    pass
            self._check_alive("process", started)
            if time.monotonic() > limit:
                raise self._timeout("process", started, "no rendezvous file")
            time.sleep(0.2)

    def _http(self, stage: str, base_url: str, limit_seconds: float) -> None:
        started = time.monotonic()
        limit = self._limit(limit_seconds)
        self.progress(StageEvent(stage, "waiting", 0.0))
        last = ""
        while True:
            result = self.session.check(stage, base_url)
            if result.ok:
                self.progress(StageEvent(stage, "passed", time.monotonic() - started, result.detail))
                return
            if result.detail != last:
                last = result.detail
                self.progress(StageEvent(stage, "waiting", time.monotonic() - started, last))
            self._check_alive(stage, started)
            if time.monotonic() > limit:
                raise self._timeout(stage, started, last)
            time.sleep(self.settings.poll_interval)

    def run(self) -> str:
        """Wait through every stage; return the base URL (reachable from here) once ready."""
        self._queued()
        started = time.monotonic()
        limit = self._limit(self.settings.start_timeout)
        where = self._process(started, limit)
        base_url = self.session.publish(where)
        self._http("port", base_url, max(1.0, limit - time.monotonic()))
        for stage in ("health",) if self.record.serves else ("health", "models", "completion"):
            if stage == "completion" and not self.settings.probe_completion:
                self.progress(StageEvent(stage, "skipped", 0.0, "readiness.probe_completion = false"))
                continue
            self._http(stage, base_url, self.settings.http_timeout)
        return base_url
