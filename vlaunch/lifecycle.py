"""The lifecycle engine: how vlaunch learns a job's state, how often it looks, and how it stops a job.

Backends only build commands and parse what they print (:mod:`vlaunch.backend`); everything else about
a job's life is here, under four rules:

* **Evidence, never absence.** A job its scheduler (or the target's process list) no longer shows has
  ended as the markers its script wrote say. Without a marker it is LOST, never FAILED, and a job seen
  live before is looked at a second time before it is called LOST.
* **A failed observation is no evidence.** A lost connection or a scheduler that does not answer leaves
  the job's state as it was; waiting callers (:class:`Liveness`) retry with back-off for a while.
* **A settled end stays.** An exit status, the scheduler's record or a confirmed cancel is never
  rewritten by later observations; a LOST job is corrected by whatever evidence comes later.
* **Cancel, then confirm.** ``down`` asks the backend whatever the record says, and returns only once
  the job is no longer live (:func:`cancel_and_confirm`), or raises :class:`~vlaunch.errors.CancelError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import CancelError, CommandNotFound, ConnectionLost, SchedulerError, TransportError
from .log_cause import find_cause, signal_words
from .states import JobState, JobStatus

if TYPE_CHECKING:
    from .backend import Backend
    from .registry import JobRecord, Registry
    from .transport import Transport

__all__ = ["Backoff", "Liveness", "poll", "poll_backoff", "cancel_and_confirm", "let_go", "request_cancel", "withdraw_cancel",
           "apply_status", "ended_status",
           "marker_exit_code", "EXIT_MARKER", "SIGNAL_MARKER"]

#: Files the job script writes in its run directory: the server's exit status once it and every
#: process it left have ended, and which signal (and when, in seconds since the script started) ended it.
EXIT_MARKER = "exit_code"
SIGNAL_MARKER = "signalled"
#: A TERM this close to the walltime limit (in seconds; at most a tenth of the limit) is the walltime kill.
_WALLTIME_SLACK = 60

#: Polling cadences (first gap, longest gap, in seconds): a process list is cheap, a scheduler is shared.
PROCESS_POLL = (0.5, 1.0)
SCHEDULER_POLL = (0.5, 10.0)
#: How often a job being stopped is looked at again, and how long a scheduler may take to let it go.
CANCEL_CHECK = (0.2, 2.0)
SCHEDULER_CANCEL_WAIT = 60.0
KILL_WAIT = 5.0
#: How long a cancelled batch job's script may take, after the scheduler let the job go, to write its exit
#: marker (it does once every process of the server has ended: up to 1 s of TERM, then KILL, per node).
SCRIPT_END_WAIT = 15.0
#: How long a job whose server ended by itself may take to leave its scheduler's list before it is cancelled.
SELF_END_WAIT = 5.0
#: Seconds between the look that misses a live job and the look that confirms it is gone.
CONFIRM_GAP = 1.0
#: How long waiting callers keep retrying observations that fail before they give up.
OBSERVE_PATIENCE = 30.0
#: How often ``vlaunch logs --follow`` reads the log while nothing new comes (a new line resets it).
LOG_FOLLOW = (0.2, 2.0)
#: How often ``vlaunch status --watch`` redraws (it refreshes every job shown each time).
WATCH_POLL = (1.0, 5.0)
#: How often waiting callers read the job's exit marker (a crash is seen at once, whatever the cadence).
MARKER_GAP = 0.5


class Backoff:
    """Gaps that grow by ``factor`` from ``first`` up to ``ceiling``."""

    def __init__(self, first: float, ceiling: float, factor: float = 1.5):
        self.first, self.ceiling, self.factor = first, ceiling, factor
        self.gap = first

    def next(self) -> float:
        """The next gap (and grow the one after)."""
        gap, self.gap = self.gap, min(self.gap * self.factor, self.ceiling)
        return gap

    def reset(self) -> None:
        """Start again from the first gap (something changed)."""
        self.gap = self.first


def poll_backoff(backend: Backend) -> Backoff:
    """The cadence at which waiting callers poll ``backend``: its ``poll_cadence``."""
    return Backoff(*backend.poll_cadence)


# -- how a job ended ------------------------------------------------------------------------------
def marker_exit_code(text: bytes | None) -> int | None:
    """The exit status in a job's exit marker file (its first word), or None when it holds none (absent,
    empty, garbled, or ``?``: the script's guard writes that when the script itself was killed)."""
    try:
        return int(text.split()[0]) if text and text.split() else None
    except ValueError:
        return None


def _marker_cause(text: bytes) -> str | None:
    """What the exit marker says happened, after its status, when the script knew more than a status."""
    status, _, cause = text.decode(errors="replace").strip().partition(" ")
    return cause.strip() if cause.strip() and (status == "?" or status.isdigit()) else None


def _exit_words(code: int) -> str:
    """``server exited with status N``, naming the signal, and what it means, for a status above 128."""
    words = f"server exited with status {code}"
    return words + f" ({signal_words(code - 128)})" if 128 < code < 128 + 65 else words


def _walltime_seconds(job: JobRecord) -> int | None:
    value = (job.config.get("resources") or {}).get("walltime")
    if not value:
        return None
    days, _, rest = value.rpartition("-")
    hours, minutes, seconds = (int(part) for part in rest.split(":"))
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def _signalled_status(job: JobRecord, text: bytes, code: int | None) -> JobStatus:
    signal, _, after = text.decode(errors="replace").strip().partition(" ")
    elapsed = int(after) if after.isdigit() else None
    limit = _walltime_seconds(job)
    when = f" after {elapsed} s" if elapsed is not None else ""
    if limit and elapsed is not None and elapsed >= limit - min(_WALLTIME_SLACK, limit / 10):
        return JobStatus(JobState.TIMEOUT, f"stopped at its walltime limit (SIG{signal}{when})", code)
    return JobStatus(JobState.CANCELLED, f"the server was sent SIG{signal}{when}: deleted, preempted or stopped"
                     " by its scheduler", code)


def ended_status(job: JobRecord, transport: Transport, lister: str) -> JobStatus:
    """How a job ended, from the markers its script wrote, for a job that ``lister`` (the scheduler, or
    the target's process list) no longer shows running. No marker is no evidence: LOST, never FAILED
    (a cancel by vlaunch, when nothing else says otherwise, is evidence too, and so is a server killed by a
    signal after vlaunch asked for the cancel: the scheduler may signal it before the script)."""
    raw = transport.read_file(job.path(EXIT_MARKER))
    code = marker_exit_code(raw)
    signalled = transport.read_file(job.path(SIGNAL_MARKER))
    if job.cancel_requested and (signalled or raw is None or (code or 0) > 128):
        return JobStatus(JobState.CANCELLED, job.cancel_cause or "cancelled by vlaunch down", code)
    if signalled:
        return _signalled_status(job, signalled, code)
    cause = _marker_cause(raw) if raw else None
    if cause:
        return _failed(job, transport, cause, code)
    if code is None and raw:
        return JobStatus(JobState.FAILED, f"the job's exit marker is unreadable: {raw[:40]!r}")
    if code is None:
        return JobStatus(JobState.LOST, f"{lister} no longer shows the job and it left no exit marker:"
                         " how it ended is unknown (killed with its node, or its files are not visible here)")
    if code == 0:
        return JobStatus(JobState.COMPLETED, "server exited normally", exit_code=0)
    return _failed(job, transport, _exit_words(code), code)


def _failed(job: JobRecord, transport: Transport, reason: str, code: int | None) -> JobStatus:
    """FAILED for ``reason``, led by the cause the server's log names when it names one (read once: a
    failed job is settled). Only a failure is read so: a stop that was asked for stays clean."""
    found = find_cause((transport.read_file(job.log_path) or b"").decode(errors="replace"))
    return JobStatus(JobState.FAILED, f"{found.summary}; {reason}" if found else reason, code)


def _ended_early(job: JobRecord, transport: Transport, status: JobStatus, lister: str) -> JobStatus:
    """A job still listed as live whose server already wrote its exit marker has ended: the marker tells how."""
    # Only a job that runs (or might): a queued one may be a requeued job with an earlier run's marker.
    if status.state not in (JobState.RUNNING, JobState.UNKNOWN) or transport.read_file(job.path(EXIT_MARKER)) is None:
        return status
    ended = ended_status(job, transport, lister)
    return JobStatus(ended.state, ended.reason, ended.exit_code, status.nodes or ended.nodes)


# -- observing ------------------------------------------------------------------------------------
def poll(backend: Backend, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus]:
    """A status for every job with a native id: one observation by ``backend`` for all of them, then the
    markers of those it no longer shows (looked at once more before a job last seen live is LOST)."""
    jobs = [job for job in jobs if job.native_id]
    seen = backend.observe(jobs, transport) if jobs else {}
    out = {job.name: _judge(backend, job, seen.get(job.native_id), transport) for job in jobs}
    vanished = [job for job in jobs if out[job.name].state is JobState.LOST and job.state is not JobState.LOST]
    if vanished:
        time.sleep(CONFIRM_GAP)
        again = backend.observe(vanished, transport)
        out.update({job.name: _judge(backend, job, again.get(job.native_id), transport) for job in vanished})
    return out


def _judge(backend: Backend, job: JobRecord, status: JobStatus | None, transport: Transport) -> JobStatus:
    if status is None:
        return ended_status(job, transport, backend.lister)
    if status.state is JobState.FAILED:
        return _with_cause(backend, job, transport, status)
    return _ended_early(job, transport, status, backend.lister)


def _with_cause(backend: Backend, job: JobRecord, transport: Transport, status: JobStatus) -> JobStatus:
    """A scheduler's FAILED, led by the cause the job's markers name (the scheduler knows only a status)."""
    ended = ended_status(job, transport, backend.lister)
    if ended.state is not JobState.FAILED:
        return status
    code = status.exit_code if status.exit_code is not None else ended.exit_code
    reason = f"{ended.reason} ({backend.name}: {status.reason})" if status.reason else ended.reason
    return JobStatus(JobState.FAILED, reason, code, status.nodes)


class Liveness:
    """How a waiting caller (readiness) keeps up with one job: the exit marker every
    half second, the backend at :func:`poll_backoff`'s cadence, and failed observations retried for
    :data:`OBSERVE_PATIENCE` seconds (an unobservable job is unknown, not ended)."""

    def __init__(self, session):
        self.session = session
        self.backoff = poll_backoff(session.backend)
        self.problem: str | None = None
        self._next_poll = self._next_marker = 0.0
        self._failing_since: float | None = None

    def check(self, force: bool = False) -> tuple[JobStatus | None, bytes | None]:
        """``(status, marker)``: a fresh status when a poll was due (else None) and the exit marker's bytes
        (None while there is none). Raises the observation's error once it has failed for too long."""
        now = time.monotonic()
        if not force and now < self._next_marker:
            return None, None
        self._next_marker = now + MARKER_GAP
        try:
            marker = self.session.transport.read_file(self.session.record.path(EXIT_MARKER))
            if not force and marker is None and now < self._next_poll:
                return None, None
            self._next_poll = now + self.backoff.next()
            status = self.session.refresh()
        except (CommandNotFound, ConnectionLost):
            raise
        except (TransportError, SchedulerError) as exc:
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failing_since > OBSERVE_PATIENCE:
                raise
            self.problem = f"cannot observe the job (retrying): {exc}"
            return None, None
        self._failing_since, self.problem = None, None
        return status, marker


# -- stopping -------------------------------------------------------------------------------------
def cancel_and_confirm(backend: Backend, job: JobRecord, transport: Transport) -> None:
    """Run the backend's cancel steps in turn (each: a command, then up to its wait for the job to be no
    longer live) and return once the job is gone; raise :class:`CancelError` when it cannot be confirmed."""
    for argv, wait in backend.cancel_steps(job):
        if backend.live_view(job, transport) is None:
            return
        result = backend._run(transport, argv)
        checks, started = Backoff(*CANCEL_CHECK), time.monotonic()
        while (view := backend.live_view(job, transport)) is not None:
            if not result.ok:
                raise CancelError(f"{backend.name}: could not cancel job {job.native_id}: {result.message()}")
            waited = time.monotonic() - started
            if waited >= wait:
                break
            time.sleep(min(checks.next(), wait - waited))
        else:
            return _await_script_end(backend, job, transport)
    raise CancelError(f"{backend.name}: job {job.native_id} is still {view.state.value}"
                      f" {time.monotonic() - started:.0f} s after {' '.join(argv)}")


def _await_script_end(backend: Backend, job: JobRecord, transport: Transport) -> None:
    """Once a cancel let the job go: when its script had started the server and has not yet written the
    exit marker, give it up to ``backend.script_end_wait`` (a scheduler's: :data:`SCRIPT_END_WAIT`) to.
    Some schedulers list a job as ended while its processes are still stopping (Slurm's Torque wrappers
    show a COMPLETING job as C); the marker is the script's word that none is left. A script that never
    writes it (killed, or its node gone) is not waited for longer: the scheduler's word stands."""
    limit = backend.script_end_wait
    if not limit or transport.read_file(job.path("rendezvous.json")) is None:
        return
    checks, started = Backoff(*CANCEL_CHECK), time.monotonic()
    while transport.read_file(job.path(EXIT_MARKER)) is None and time.monotonic() - started < limit:
        time.sleep(checks.next())


def let_go(backend: Backend, job: JobRecord, transport: Transport, seconds: float = SELF_END_WAIT) -> None:
    """Give a job whose server ended by itself (its exit marker is there) up to ``seconds`` to leave its
    scheduler's list of live jobs, as it does once the script exits: a cancel sent meanwhile would turn
    the scheduler's record of a failure into a cancellation."""
    checks, started = Backoff(*CANCEL_CHECK), time.monotonic()
    while time.monotonic() - started < seconds and backend.live_view(job, transport) is not None:
        time.sleep(checks.next())


def request_cancel(registry: Registry, rec: JobRecord, cause: str) -> bool:
    """Record that vlaunch is stopping a job that may still run (so its end reads as ``cause``); False for
    a job already ended, which keeps its end (a LOST one may still learn it)."""
    if rec.state.is_final:
        return False
    rec.cancel_requested, rec.cancel_cause = True, cause
    registry.save(rec)
    return True


def withdraw_cancel(registry: Registry, rec: JobRecord) -> None:
    """Undo :func:`request_cancel` when the backend could not stop the job: its record stays as it was."""
    registry.reload(rec)
    rec.cancel_requested, rec.cancel_cause = False, None
    registry.save(rec)


def apply_status(registry: Registry, rec: JobRecord, status: JobStatus) -> None:
    """Store an observed status in the record, and in the registry when it changed. A settled state,
    once recorded, stays: later observations of an ended job (a log follower, a slow poll) cannot
    rewrite how it ended. A LOST job is corrected by whatever evidence comes later."""
    if rec.state.is_settled:
        return
    new = (status.state, status.reason, status.exit_code)
    if status.nodes and status.nodes[0]:
        rec.node = rec.node or status.nodes[0]
    if new != (rec.state, rec.reason, rec.exit_code):
        rec.state, rec.reason, rec.exit_code = new
        registry.save(rec)
