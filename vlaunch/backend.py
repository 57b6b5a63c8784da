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

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from . import lifecycle
from .config.values import as_text, refuse_control_characters
from .errors import CommandNotFound, SchedulerError, SubmitError, TransportError
from .lifecycle import EXIT_MARKER, SIGNAL_MARKER, ended_status, marker_exit_code
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
    #: Why the ``auto`` planning chose what it did: comment lines at the top of the script.
    notes: tuple[str, ...] = ()
    #: A program served instead of vLLM (a replica group's router job): its words, to which the script adds
    #: ``--host`` and ``--port``; ``$VLAUNCH_METRICS_PORT`` is a second free port for it. Empty: vLLM.
    program: tuple[str, ...] = ()

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
    #: The programs its jobs need on the target, beyond a POSIX shell (``vlaunch doctor`` looks for them).
    commands: ClassVar[tuple[str, ...]] = ()
    #: Python modules the backend needs where vlaunch runs, each with how to install it.
    needs_modules: ClassVar[dict[str, str]] = {}
    #: First and longest gap (seconds) between two polls of a waiting caller (see :class:`lifecycle.Backoff`).
    poll_cadence: ClassVar[tuple[float, float]] = lifecycle.PROCESS_POLL
    #: After a cancel let the job go, how long ``down`` waits for the script's exit marker (0: not at all; a
    #: process backend's group is gone only when every process of it is).
    script_end_wait: ClassVar[float] = 0.0

    @classmethod
    def missing_modules(cls) -> list[str]:
        """The needed modules this Python cannot import, as "MODULE (HOW TO INSTALL)"."""
        import importlib.util

        return [f"{module} ({how})" for module, how in cls.needs_modules.items()
                if importlib.util.find_spec(module) is None]

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


class ProcessBackend(Backend):
    """Runs the script as a detached session on the target; the pid is the process group id."""

    #: Seconds between SIGTERM and SIGKILL, unless the options model has a ``kill_grace`` field.
    kill_grace: ClassVar[float] = 15.0
    lister: ClassVar[str] = "the process list"
    commands: ClassVar[tuple[str, ...]] = ("bash", "ps")

    def submit(self, job, script_path, transport):
        pid = transport.spawn(["bash", script_path], cwd=job.run_dir, log=job.path("launcher.log"))
        return str(pid)

    def _live_groups(self, transport: Transport) -> dict[str, list[str]]:
        """Process groups on the target with the command lines of their live (non-zombie) members. A
        listing that failed, or that lacks ``ps`` itself, is no evidence of anything: it raises."""
        # -ww: full command lines, whatever COLUMNS says (ps cuts them to its width otherwise)
        argv = ["ps", "-ww", "-e", "-o", "pgid=,stat=,args="]
        result = self._run(transport, argv)
        if not result.ok:
            raise TransportError(f"{self.name}: ps failed (exit status {result.returncode}): {result.message()}")
        groups: dict[str, list[str]] = {}
        for line in result.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and not parts[1].startswith("Z"):
                groups.setdefault(parts[0], []).append(parts[2] if len(parts) == 3 else "")
        if not any(args == " ".join(argv) for members in groups.values() for args in members):
            raise TransportError(f"{self.name}: ps printed an incomplete process list (without itself)")
        return groups

    @staticmethod
    def _is_job(job: JobRecord, groups: dict[str, list[str]]) -> bool:
        """Whether the job's group still runs: a group of that id with a member that names the job's run
        directory (its script, or vLLM's key file), so a group id the system gave to something else later
        is never taken for the job, nor signalled."""
        return any(f"{job.run_dir}/" in args for args in groups.get(job.native_id or "", ()))

    def observe(self, jobs, transport):
        """RUNNING, by native id, for the jobs whose process group the target still runs."""
        live = self._live_groups(transport)
        return {job.native_id: JobStatus(JobState.RUNNING, nodes=(job.node,) if job.node else ())
                for job in jobs if self._is_job(job, live)}

    def live_view(self, job, transport):
        """The job's status while its process group runs, else None."""
        return self.observe([job], transport).get(job.native_id)

    def cancel_steps(self, job):
        """SIGTERM to the group, then (after the grace period) SIGKILL."""
        grace = getattr(self.options_for(job), "kill_grace", self.kill_grace)
        group = f"-{job.native_id}"
        return [(["kill", "-TERM", "--", group], grace), (["kill", "-KILL", "--", group], lifecycle.KILL_WAIT)]

    def poll(self, jobs, transport):
        return lifecycle.poll(self, jobs, transport)

    def cancel(self, job, transport):
        lifecycle.cancel_and_confirm(self, job, transport)


class BatchBackend(Backend):
    """A scheduler backend: subclasses build commands and parse their output; nothing else."""

    #: Native state code -> normalised state; every code the scheduler prints should be here.
    state_map: ClassVar[dict[str, JobState]] = {}
    poll_cadence: ClassVar[tuple[float, float]] = lifecycle.SCHEDULER_POLL  # schedulers are polled gently
    script_end_wait: ClassVar[float] = lifecycle.SCRIPT_END_WAIT  # a scheduler may let go of a job still ending

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

    def for_job(self, job: JobRecord) -> BatchBackend:
        """The instance that observes ``job``: a backend whose queries differ by an option (PBS's dialect)
        returns an instance whose attributes say which; :meth:`observe` asks once per distinct instance."""
        return self

    @property
    def lister(self) -> str:
        """Who no longer shows an ended job, in messages."""
        return self.name

    def observe(self, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus]:
        """The scheduler's own view of ``jobs`` by native id: one status query per variant
        (:meth:`for_job`), plus one history query for the jobs it left out (when the backend has one).
        Jobs neither lists are left out."""
        variants: dict[object, tuple[BatchBackend, list[JobRecord]]] = {}
        for job in jobs:
            observer = self.for_job(job)
            key = (type(observer), tuple(sorted(vars(observer).items())))
            variants.setdefault(key, (observer, []))[1].append(job)
        seen: dict[str, JobStatus] = {}
        for observer, group in variants.values():
            seen.update(observer._observe(sorted({job.native_id for job in group if job.native_id}), transport))
        return seen

    def _observe(self, ids: list[str], transport: Transport) -> dict[str, JobStatus]:
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

    def live_view(self, job, transport):
        """The scheduler's status of the job while it lists the job as live, else None."""
        status = self.observe([job], transport).get(job.native_id)
        return status if status is not None and not status.state.is_final else None

    def cancel_steps(self, job):
        """The cancel command, then up to a minute for the scheduler to let the job go."""
        return [(self.cancel_command(job.native_id), lifecycle.SCHEDULER_CANCEL_WAIT)]

    def poll(self, jobs, transport):
        return lifecycle.poll(self, jobs, transport)

    def cancel(self, job, transport):
        """Ask the scheduler to cancel, then wait until the scheduler itself no longer lists the job as live."""
        lifecycle.cancel_and_confirm(self, job, transport)
