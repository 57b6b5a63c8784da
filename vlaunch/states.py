"""Normalised job states, shared by every backend."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["JobState", "JobStatus"]


class JobState(str, enum.Enum):
    """Where a job is in its life, whatever the scheduler calls it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN = "UNKNOWN"

    @property
    def is_final(self) -> bool:
        """True once the job can no longer run."""
        return self in _FINAL


_FINAL = {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT}


@dataclass(frozen=True)
class JobStatus:
    """One observation of a job: its state, why (pending reason or end cause), and where it runs."""

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    nodes: tuple[str, ...] = ()
    native_state: str | None = None
