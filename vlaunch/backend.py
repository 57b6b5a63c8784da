"""What a backend is: a name, an options model, and small pure pieces the core runs.

Two bases cover the built-in backends, and most third-party ones:

* :class:`ProcessBackend` starts the job script as a detached process group on the target
  (``local`` over the local transport, ``ssh`` over SSH);
* :class:`BatchBackend` hands the job script to a scheduler; a subclass only builds commands
  and parses their output (``slurm``, ``pbs``).

The core (:mod:`vlaunch.api` and :mod:`vlaunch.session`) runs every command through a :class:`~vlaunch.transport.Transport`;
backends never execute anything themselves.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from .config.values import as_text, refuse_control_characters
from .errors import CommandNotFound, SchedulerError, SubmitError, TransportError
from .states import JobState, JobStatus

if TYPE_CHECKING:
    from .config.model import Profile
    from .registry import JobRecord
    from .transport import CommandResult, Transport

__all__ = ["BackendOptions", "JobSpec", "Backend", "ProcessBackend", "BatchBackend", "ended_status", "marker_exit_code",
           "EXIT_MARKER", "SIGNAL_MARKER"]


class BackendOptions(BaseModel):
    """Base of every backend's options model (the profile's ``[backend.NAME]`` table): unknown keys fail,
    and every string (also in lists and tables) must be one line (:mod:`vlaunch.config.values`): options
    become directive lines and command words, where a newline would start a command of its own."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _given_as_text(cls, value, info: ValidationInfo):
        return as_text(value, cls.model_fields[info.field_name].annotation)

    @field_validator("*")
    @classmethod
    def _one_line(cls, value, info: ValidationInfo):
        refuse_control_characters(info.field_name, value)
        return value


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to render and start one job."""

    name: str
    profile_name: str
    profile: Profile
    options: BaseModel
    run_dir: str

    def path(self, leaf: str) -> str:
        """A file in the job's run directory on the target."""
        return f"{self.run_dir.rstrip('/')}/{leaf}"


class Backend(ABC):
    """Base of all backends. Subclasses set ``name``, ``options_model`` and implement the lifecycle."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options_model: ClassVar[type[BackendOptions]] = BackendOptions
    #: A template file shipped beside the backend's module, or None for the core's plain one.
    template: ClassVar[str | None] = None
    #: Where the commands this backend needs come from, for "command not found" messages.
    install_hint: ClassVar[str] = ""

    def directives(self, job: JobSpec) -> list[str]:
        """Scheduler directive lines for the top of the script (none by default)."""
        return []

    def transport_spec(self, options: BaseModel) -> dict | None:
        """The transport this backend's jobs need (the ``ssh`` backend names its host); None: the caller's."""
        return None

    def server_block(self, job: JobSpec) -> str | None:
        """Replace the core's single-node server block (multi-node launches); None keeps the core's, which
        refuses ``resources.nodes > 1`` unless the profile uses Ray."""
        return None

    @abstractmethod
    def submit(self, job: JobSpec, script_path: str, transport: Transport) -> str:
        """Start or queue the written script and return the native job id (pid, scheduler id)."""

    @abstractmethod
    def poll(self, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus]:
        """Observe many jobs at once; return a status for each job name it could observe."""

    @abstractmethod
    def cancel(self, job: JobRecord, transport: Transport) -> None:
        """Stop the job; return once it is confirmed gone (idempotent for ended jobs)."""

    def options_for(self, job: JobRecord) -> BaseModel:
        """This backend's options as stored with a job's resolved profile."""
        return self.options_model.model_validate(job.config.get("backend", {}).get(self.name, {}))

    def _run(self, transport: Transport, argv: list[str], timeout: float = 60.0):
        try:
            return transport.run(argv, timeout=timeout)
        except CommandNotFound:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise CommandNotFound(f"backend {self.name} needs `{argv[0]}` on the target, which has none{hint}") from None


#: Files the job script writes in its run directory: the server's exit status once it and every
#: process it left have ended, and which signal (and when, in seconds since the script started) ended it.
EXIT_MARKER = "exit_code"
SIGNAL_MARKER = "signalled"
#: A TERM this close to the walltime limit (in seconds; at most a tenth of the limit) is the walltime kill.
_WALLTIME_SLACK = 60


def marker_exit_code(text: bytes | None) -> int | None:
    """The exit status in a job's exit marker file, or None when it holds none (absent, empty, garbled)."""
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


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
    (a cancel by vlaunch, when nothing else says otherwise, is evidence too)."""
    raw = transport.read_file(job.path(EXIT_MARKER))
    code = marker_exit_code(raw)
    signal = transport.read_file(job.path(SIGNAL_MARKER))
    if job.cancel_requested and (signal or raw is None):
        return JobStatus(JobState.CANCELLED, job.cancel_cause or "cancelled by vlaunch down", code)
    if signal:
        return _signalled_status(job, signal, code)
    if code is None and raw:
        return JobStatus(JobState.FAILED, f"the job's exit marker is unreadable: {raw[:40]!r}")
    if code is None:
        return JobStatus(JobState.LOST, f"{lister} no longer shows the job and it left no exit marker:"
                         " how it ended is unknown (killed with its node, or its files are not visible here)")
    if code == 0:
        return JobStatus(JobState.COMPLETED, "server exited normally", exit_code=0)
    return JobStatus(JobState.FAILED, f"server exited with status {code}", exit_code=code)


def _ended_early(job: JobRecord, transport: Transport, status: JobStatus) -> JobStatus:
    """A job still listed as live whose server already wrote its exit marker has ended: the marker tells how."""
    # Only a job that runs (or might): a queued one may be a requeued job with an earlier run's marker.
    if status.state not in (JobState.RUNNING, JobState.UNKNOWN) or transport.read_file(job.path(EXIT_MARKER)) is None:
        return status
    ended = ended_status(job, transport, "")
    return JobStatus(ended.state, ended.reason, ended.exit_code, status.nodes or ended.nodes, status.native_state)


class ProcessBackend(Backend):
    """Runs the script as a detached session on the target; the pid is the process group id."""

    #: Seconds between SIGTERM and SIGKILL, unless the options model has a ``kill_grace`` field.
    kill_grace: ClassVar[float] = 15.0

    def submit(self, job, script_path, transport):
        pid = transport.spawn(["bash", script_path], cwd=job.run_dir, log=job.path("launcher.log"))
        return str(pid)

    def _live_groups(self, transport: Transport) -> dict[str, list[str]]:
        """Process groups on the target with the command lines of their live (non-zombie) members."""
        # -ww: full command lines, whatever COLUMNS says (ps cuts them to its width otherwise)
        result = self._run(transport, ["ps", "-ww", "-e", "-o", "pgid=,stat=,args="])
        groups: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and not parts[1].startswith("Z"):
                groups.setdefault(parts[0], []).append(parts[2] if len(parts) == 3 else "")
        return groups

    @staticmethod
    def _is_job(job: JobRecord, groups: dict[str, list[str]]) -> bool:
        """Whether the job's group still runs: a group of that id with a member that names the job's run
        directory (its script, or vLLM's key file), so a group id the system gave to something else later
        is never taken for the job, nor signalled."""
        return any(job.run_dir in args for args in groups.get(job.native_id or "", ()))

    def poll(self, jobs, transport):
        live = self._live_groups(transport)
        out = {}
        for job in jobs:
            if self._is_job(job, live):
                status = JobStatus(JobState.RUNNING, nodes=(job.node,) if job.node else ())
                out[job.name] = _ended_early(job, transport, status)
            else:
                out[job.name] = ended_status(job, transport, "the process list")
        return out

    def cancel(self, job, transport):
        group = f"-{job.native_id}"
        grace = getattr(self.options_for(job), "kill_grace", self.kill_grace)
        for signal, wait in (("-TERM", grace), ("-KILL", 5.0)):
            if not self._is_job(job, self._live_groups(transport)):
                return
            self._run(transport, ["kill", signal, "--", group])
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self._is_job(job, self._live_groups(transport)):
                    return
                time.sleep(0.2)
        raise TransportError(f"processes of group {job.native_id} survived SIGKILL")


class BatchBackend(Backend):
    """A scheduler backend: subclasses build commands and parse their output; nothing else."""

    #: Native state code -> normalised state; every code the scheduler prints should be here.
    state_map: ClassVar[dict[str, JobState]] = {}

    @abstractmethod
    def submit_command(self, job: JobSpec, script_path: str) -> list[str]:
        """argv that queues ``script_path``."""

    @abstractmethod
    def parse_job_id(self, stdout: str) -> str:
        """The job id in the submit command's output."""

    @abstractmethod
    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        """argv that reports on all ``job_ids`` in one call."""

    @abstractmethod
    def parse_status(self, stdout: str) -> dict[str, JobStatus]:
        """Statuses by job id from the status command's output (ids it does not list are left out)."""

    @abstractmethod
    def cancel_command(self, job_id: str) -> list[str]:
        """argv that cancels ``job_id``."""

    def unknown_jobs(self, result: CommandResult) -> bool:
        """True when a failed status command only says that some of its jobs are unknown to the scheduler
        (ended and purged: the core then asks the history and the exit markers). Any other failure (the
        server down, an option it lacks) must not make jobs look ended: the core raises instead. A
        backend may also raise :class:`~vlaunch.errors.SchedulerError` here with its own hint."""
        return False

    def history_command(self, job_ids: Sequence[str]) -> list[str] | None:
        """argv that reports on jobs that left the live queue (accounting, history), or None."""
        return None

    def parse_history(self, stdout: str) -> dict[str, JobStatus]:
        """Statuses by job id from :meth:`history_command` output."""
        return {}

    def refusal(self, result: CommandResult) -> str:
        """The scheduler's own words for why the submit command refused a job, on one line."""
        return result.message()

    def submit(self, job, script_path, transport):
        argv = self.submit_command(job, script_path)
        result = self._run(transport, argv)
        if not result.ok:
            raise SubmitError(f"{self.name}: {argv[0]} refused the job: {self.refusal(result)}")
        try:
            return self.parse_job_id(result.stdout)
        except (ValueError, IndexError):
            raise SubmitError(f"{self.name}: {argv[0]} printed no job id: {result.stdout.strip()[:200]!r}") from None

    def observe(self, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus]:
        """The scheduler's own view of ``jobs`` by native id: one status query, plus one history query for
        the jobs it left out (when the backend has one). Jobs neither lists are left out."""
        ids = sorted({job.native_id for job in jobs if job.native_id})
        if not ids:
            return {}
        argv = self.status_command(ids)
        result = self._run(transport, argv)
        if not result.ok and not self.unknown_jobs(result):
            raise SchedulerError(f"{self.name}: {argv[0]} failed (exit status {result.returncode}): {result.message()}")
        seen = self.parse_status(result.stdout) if result.stdout.strip() else {}
        missing = [i for i in ids if i not in seen]
        history_argv = self.history_command(missing) if missing else None
        if history_argv:
            try:
                result = self._run(transport, history_argv)
                if result.ok:
                    seen.update({k: v for k, v in self.parse_history(result.stdout).items() if k in missing})
            except CommandNotFound:
                pass
        return {i: seen[i] for i in ids if i in seen}

    def poll(self, jobs, transport):
        seen = self.observe(jobs, transport)
        out = {}
        for job in jobs:
            if not job.native_id:
                continue
            status = seen.get(job.native_id)
            out[job.name] = (_ended_early(job, transport, status) if status is not None
                             else ended_status(job, transport, self.name))
        return out

    def cancel(self, job, transport):
        """Ask the scheduler to cancel, then wait until the scheduler itself no longer lists the job as live."""
        result = self._run(transport, self.cancel_command(job.native_id))
        status = self.observe([job], transport).get(job.native_id)
        if not result.ok and status is not None and not status.state.is_final:
            raise SubmitError(f"{self.name}: could not cancel job {job.native_id}: {result.message()}")
        deadline = time.monotonic() + 60
        while status is not None and not status.state.is_final:
            if time.monotonic() > deadline:
                raise SubmitError(f"{self.name}: job {job.native_id} is still {status.state.value} 60 s after cancelling")
            time.sleep(0.5)
            status = self.observe([job], transport).get(job.native_id)
