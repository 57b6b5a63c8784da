"""Normalised job states, shared by every backend."""

from __future__ import annotations

import enum
import warnings
from dataclasses import InitVar, dataclass

__all__ = ["JobState", "JobStatus"]


class JobState(str, enum.Enum):
    """Where a job is in its life, whatever the scheduler calls it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    #: Observed, but in a state vlaunch cannot read (a scheduler's new state code).
    UNKNOWN = "UNKNOWN"
    #: Gone from the scheduler without a trace of how it ended (no exit marker, no history).
    LOST = "LOST"

    @property
    def is_final(self) -> bool:
        """True once the job no longer runs as far as vlaunch can see."""
        return self in _FINAL

    @property
    def is_settled(self) -> bool:
        """True for a final state that evidence set (an exit status, the scheduler's record, ``down``).
        A LOST job is final but not settled: later evidence (history, a marker that arrives late on a
        shared filesystem) may still say how it ended, so it is polled again."""
        return self in _SETTLED


_SETTLED = {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT}
_FINAL = _SETTLED | {JobState.LOST}


@dataclass(frozen=True)
class JobStatus:
    """One observation of a job: its state, why (pending reason or end cause), and where it runs."""

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    nodes: tuple[str, ...] = ()
    #: Deprecated in 0.2 (nothing read it): still accepted, with a warning, and dropped.
    native_state: InitVar[str | None] = None

    def __post_init__(self, native_state: str | None) -> None:
        if native_state is not None:
            warnings.warn("JobStatus(native_state=...) is deprecated and ignored: put what users should read in"
                          " the reason", DeprecationWarning, stacklevel=3)
