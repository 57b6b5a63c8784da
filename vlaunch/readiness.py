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
    """Progress of one stage: ``status`` is "waiting", "passed" or "skipped"; ``seconds`` since it began.
    While waiting: ``phase``, what vLLM is doing (:mod:`vlaunch.start_phase`), for ``phase_seconds``, and
    ``expect``, how long starts usually take or that this phase is slower than usual."""

    stage: str
    status: str
    seconds: float
    detail: str = ""
    phase: str = ""
    phase_seconds: float = 0.0
    expect: str = ""


#: How often a waiting caller reads the new part of the server's log for its phase, and says how long it waited.
PHASE_GAP = 1.0


class StartReader:
    """Follows a starting server's log: the phase vLLM is in, and how that compares with earlier starts."""

    def __init__(self, session):
        self.session = session
        self.text = ""
        self._offset = 0
        self._usual = None
        self._key = None
        self._phases = []

    def read(self) -> None:
        """Take in what the log gained since the last read (and what it says of the start)."""
        from .start_history import key_for, usual
        from .start_phase import phases

        chunk = self.session.read_log(self._offset)
        if not chunk and self._offset:
            return
        self._offset += len(chunk)
        self.text += chunk.decode(errors="replace")
        self._phases = phases(self.text)
        key = key_for(self.session.record, self.text)
        if self._phases and key != self._key:  # asked again once the log names the vLLM version and GPUs
            self._usual, self._key = usual(key), key

    def now(self) -> tuple[str, float, str]:
        """``(phase, seconds in it, expectation)`` as of the last read; ``("", 0, "")`` before the log shows one."""
        from .start_history import slower_than_usual, usual_words

        found = self._phases
        if not found:
            return "", 0.0, ""
        seconds = max(0.0, time.time() - found[-1].began)
        return found[-1].name, seconds, slower_than_usual(found[-1].name, seconds, self._usual) or usual_words(self._usual)

    def words(self) -> str:
        """The phase in a few words, for ``status``: ``vLLM: loading weights for 12 s; usually ready in ~95 s``."""
        phase, seconds, expect = self.now()
        return f"vLLM: {phase} for {seconds:.0f} s" + (f"; {expect}" if expect else "") if phase else ""


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
        self.start = StartReader(session)
        self._problem: str | None = None
        self._said: tuple = ()
        self._next_say = 0.0

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

    def _waiting(self, stage: str, started: float, detail: str) -> None:
        """Say the stage still waits, with vLLM's phase: at once when something changed, else each PHASE_GAP."""
        now = time.monotonic()
        if now >= self._next_say:
            self.start.read()
        phase, seconds, expect = self.start.now()
        said = (stage, detail, phase, expect)
        if said != self._said or now >= self._next_say:
            self._said, self._next_say = said, now + PHASE_GAP
            self.progress(StageEvent(stage, "waiting", now - started, detail, phase, seconds, expect))

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

    def _rendezvous(self) -> dict | None:
        """Where the job's server listens (host, port, pid), once the job has published it whole."""
        raw = self.session.transport.read_file(self.record.path("rendezvous.json"))
        try:
            where = json.loads(raw) if raw else None
            return where if all(where[k] is not None for k in ("host", "port", "pid")) else None
        except (ValueError, KeyError, TypeError):
            return None

    def _process(self, started: float, limit: float) -> dict:
        while True:
            self._waiting("process", started, "waiting for the job to publish its address")
            where = self._rendezvous()
            if where:
                self.progress(StageEvent("process", "passed", time.monotonic() - started,
                                         f"pid {where['pid']} on {where['host']}, port {where['port']}"))
                return where
            self._check_alive("process", started)
            if time.monotonic() > limit:
                raise self._timeout("process", started, "no rendezvous file")
            time.sleep(0.2)

    def _http(self, stage: str, base_url: str, limit_seconds: float) -> None:
        started = time.monotonic()
        limit = self._limit(limit_seconds)
        last = ""
        while True:
            result = self.session.check(stage, base_url)
            if result.ok:
                self.progress(StageEvent(stage, "passed", time.monotonic() - started, result.detail))
                return
            last = result.detail
            self._waiting(stage, started, last)
            self._check_alive(stage, started)
            if time.monotonic() > limit:
                raise self._timeout(stage, started, last)
            time.sleep(self.settings.poll_interval)

    def _http_stages(self) -> list[str]:
        """The HTTP stages after the port: /health only for a job that serves another program than vLLM."""
        if self.record.serves:
            return ["health"]
        return ["health", "models"] + (["completion"] if self.settings.probe_completion else [])

    def run(self) -> str:
        """Wait through every stage; return the base URL (reachable from here) once ready."""
        self._queued()
        started = time.monotonic()
        limit = self._limit(self.settings.start_timeout)
        where = self._process(started, limit)
        base_url = self.session.publish(where)
        self._http("port", base_url, max(1.0, limit - time.monotonic()))
        for stage in self._http_stages():
            self._http(stage, base_url, self.settings.http_timeout)
        if not self.record.serves and not self.settings.probe_completion:
            self.progress(StageEvent("completion", "skipped", 0.0, "readiness.probe_completion = false"))
        self.start.read()
        return base_url

    def look(self) -> str | None:
        """One look, without waiting, at a running job not ready yet: None when every stage passes (it is
        ready), else what holds it (the first stage that did not pass) and vLLM's phase. For ``status``."""
        self.start.read()
        phase = self.start.words()
        where = self._rendezvous()
        if not where:
            return "; ".join(filter(None, ["starting: no address published yet", phase]))
        base_url = self.session.publish(where)
        for stage in ["port", *self._http_stages()]:
            result = self.session.check(stage, base_url)
            if not result.ok:
                return "; ".join(filter(None, [f"starting: {stage} {result.detail}", phase]))
        return None
