"""A replica group's record: its replicas, its router (a process here or a job) and keeper, what happened to it.

Stored beside the job records, in ``<state dir>/groups/<name>.json``, with the group's API key in
``<name>.key`` (mode 0600). The replicas are ordinary jobs (``<group>-r1``, ``-r2``...) whose records name
the group; so are its router jobs (``<group>-router1``...), whose records say they serve the router.
"""

from __future__ import annotations

import enum
import os

from pydantic import BaseModel, ConfigDict, Field

from .registry import Registry, now_iso

__all__ = ["GroupState", "Process", "GroupRecord", "Groups", "replica_name", "router_job_name"]


class GroupState(str, enum.Enum):
    """Where a group is: starting (no replica serves yet), serving, stopping (``down``), ended or failed."""

    STARTING = "STARTING"
    SERVING = "SERVING"
    STOPPING = "STOPPING"
    ENDED = "ENDED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        """True once nothing of the group runs."""
        return self in (GroupState.ENDED, GroupState.FAILED)


class Process(BaseModel):
    """A process on this machine, told apart from a later one with the same pid by its start time."""

    pid: int
    started: int = Field(description="Its start time in clock ticks after boot (/proc/PID/stat, field 22).")

    @classmethod
    def of(cls, pid: int) -> Process | None:
        """The process ``pid`` as it runs now; None when there is none (or only its zombie)."""
        fields = _stat(pid)
        return cls(pid=pid, started=int(fields[19])) if fields and fields[0] != "Z" else None

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not a newcomer that got its pid)."""
        fields = _stat(self.pid)
        return bool(fields) and fields[0] != "Z" and int(fields[19]) == self.started


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


class GroupRecord(BaseModel):
    """Everything vlaunch knows about one group; enough for the keeper, ``status`` and ``down``."""

    model_config = ConfigDict(defer_build=True)

    name: str
    profile: str
    model: str = Field(description="The model name clients use (every replica serves it).")
    backends: list[str] = Field(description="The backends replicas go to, in turn.")
    launch: dict = Field(default_factory=dict, description="up's arguments, for replacements: overrides, via.")
    count: int
    keep: int = 0
    replaced: int = Field(0, description="Replacements submitted so far (at most keep).")
    members: list[str] = Field(default_factory=list, description="Every replica the group has had, in order.")
    serving: list[str] = Field(default_factory=list, description="The replicas the router sends requests to now.")
    policy: str = "round_robin"
    router_at: str = Field("here", description="Where the router runs: here (the keeper's child) or as a job.")
    router_host: str = Field("127.0.0.1", description="Where clients reach the router (once it serves).")
    router_port: int | None = None
    router_timeout: float = Field(30.0, description="Seconds the router may leave its /health unanswered.")
    router: Process | None = Field(None, description="The router run here.")
    router_jobs: list[str] = Field(default_factory=list, description="Every router job the group has had, in order.")
    keeper: Process | None = None
    state: GroupState = GroupState.STARTING
    reason: str | None = None
    stop_requested: bool = False
    events: list[str] = Field(default_factory=list, description="What happened to the replicas, oldest first.")
    run_dir: str = Field("", description="Where the router's and the keeper's logs are, on this machine.")
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)

    @property
    def endpoint(self) -> str | None:
        """``http://host:port`` of the router, once it listens."""
        return f"http://{self.router_host}:{self.router_port}" if self.router_port else None

    def note(self, text: str) -> None:
        """Add an event (with its time) to the group's history."""
        self.events.append(f"{now_iso()} {text}")

    def path(self, leaf: str) -> str:
        """A file in the group's run directory."""
        return os.path.join(self.run_dir, leaf)


class Groups(Registry):
    """Group records in ``<state dir>/groups``, with the registry's locking and atomic writes."""

    folder, record_type, noun = "groups", GroupRecord, "group"


def replica_name(group: str, number: int) -> str:
    """The job name of a group's ``number``-th replica (1-based, replacements continue the count)."""
    return f"{group}-r{number}"


def router_job_name(group: str, number: int) -> str:
    """The job name of a group's ``number``-th router job (``replicas.router = "job"``; 1-based)."""
    return f"{group}-router{number}"
