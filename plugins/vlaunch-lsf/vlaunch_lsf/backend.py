"""The ``lsf`` backend (IBM Spectrum LSF): pure command builders and parsers; vlaunch runs them
through its transport.

Submission: ``bsub [options] SCRIPT``. The core runs argv without a shell, so the usual
``bsub < job.sh`` (script on standard input) is not available. ``bsub job_script`` parses the
script's ``#BSUB`` lines only where the site set ``LSB_BSUB_PARSE_SCRIPT=Y`` in lsf.conf (off by
default); elsewhere bsub runs the file as a plain command and ignores them. So every option is
passed on the command line as well, and the ``#BSUB`` lines in the script are the same options
(a record of the request, and what ``bsub < job.sh`` would use). Where both are read, LSF lets
the command line win, and they are identical anyway.

Status: ``bjobs -a -noheader -o "... delimiter='|'" ID...``, one line per job; ``-a`` keeps jobs
that ended within LSF's clean period. Jobs bjobs no longer knows are resolved by the job's own
exit marker (LSF has no cheap machine-readable history command).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from pydantic import Field, field_validator

from vlaunch import BackendOptions, BatchBackend, CommandResult, JobSpec, JobState, JobStatus
from vlaunch.shell import quote

__all__ = ["LsfBackend", "LsfOptions", "lsf_walltime"]


class LsfOptions(BackendOptions):
    """The profile's ``[backend.lsf]`` table."""

    queue: str | None = Field(None, description="Queue to submit to (bsub -q).")
    project: str | None = Field(None, description="Project charged for the job (bsub -P).")
    gpu_options: str | None = Field(
        None, description="More -gpu keywords after num=G, e.g. \"mode=exclusive_process:gmodel=TeslaV100_SXM2_32GB\".")
    extra_directives: list[str] = Field(
        default_factory=list, description="More bsub options, one per entry as on the command line, e.g. \"-x\" or"
                                          " \"-R 'select[mem>200000]'\".")

    @field_validator("extra_directives")
    @classmethod
    def _splittable(cls, value):
        for directive in value:
            try:
                shlex.split(directive)
            except ValueError as exc:
                raise ValueError(f"{directive!r} does not split into bsub options ({exc})") from None
        return value


#: Every job state bjobs prints -> vlaunch's normalised state.
STATE_MAP = {
    "PEND": JobState.PENDING,
    "WAIT": JobState.PENDING,     # a chunk-job member waiting for its chunk to run
    "PSUSP": JobState.PENDING,    # suspended by its owner or an administrator while pending
    "RUN": JobState.RUNNING,
    "USUSP": JobState.RUNNING,    # suspended while running: it keeps its hosts
    "SSUSP": JobState.RUNNING,
    "DONE": JobState.COMPLETED,
    "EXIT": JobState.FAILED,
    "ZOMBI": JobState.FAILED,     # killed while its host was unreachable
    "UNKWN": JobState.UNKNOWN,    # mbatchd lost contact with the execution host
}

#: Why a job in a state with no pending reason of its own is not running.
_STATE_REASONS = {
    "PSUSP": "suspended while pending (bresume resumes it)",
    "USUSP": "suspended by its owner or an administrator (bresume resumes it)",
    "SSUSP": "suspended by LSF (host load or a preempting job)",
    "WAIT": "waiting for its job chunk to run",
    "ZOMBI": "killed while its execution host was unreachable",
    "UNKWN": "LSF lost contact with the execution host",
}

STATUS_FIELDS = "jobid stat pend_reason exec_host exit_code exit_reason delimiter='|'"
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
_NOT_FOUND = re.compile(r"Job <[^>]+> is not found")


def lsf_walltime(walltime: str) -> str:
    """vlaunch's ``[D-]HH:MM:SS`` as LSF's ``[hour:]minute`` run limit, rounded up to a whole minute."""
    days, _, clock = walltime.rpartition("-")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    total = (int(days or 0) * 24 + hours) * 60 + minutes + (seconds > 0)
    return f"{total // 60}:{total % 60:02d}"


def _nodes(exec_host: str) -> tuple[str, ...]:
    """Host names from bjobs' ``exec_host`` (``4*hostA:4*hostB``), in order, once each."""
    hosts = [part.rpartition("*")[2] for part in exec_host.split(":") if part and part != "-"]
    return tuple(dict.fromkeys(hosts))


def _text(field: str) -> str:
    """A bjobs field, with its ``-`` for "none" as an empty string."""
    return "" if field == "-" else field


def _end_state(code: str, exit_reason: str) -> JobState:
    """The state of an ended job: a run-limit kill is a timeout, a kill by its owner or an admin a cancel."""
    reason = exit_reason.lower()
    if "runlimit" in reason or "run time limit" in reason:
        return JobState.TIMEOUT
    if "owner" in reason or "admin" in reason:
        return JobState.CANCELLED
    return STATE_MAP[code]


class LsfBackend(BatchBackend):
    """Batch jobs on IBM Spectrum LSF."""

    name = "lsf"
    description = "IBM Spectrum LSF batch jobs (bsub, bjobs, bkill)"
    options_model = LsfOptions
    template = "lsf.sh.tmpl"
    install_hint = "load the LSF client environment (profile.lsf), or submit through a login node with --via HOST"
    state_map = STATE_MAP

    def _pairs(self, job: JobSpec) -> list[tuple[str, str]]:
        """The bsub options vlaunch sets, as (flag, value) pairs."""
        opts, res = job.options, job.profile.resources
        slots = res.cpus_per_node or 1
        gpu = ":".join(filter(None, [f"num={res.gpus_per_node}", opts.gpu_options])) if res.gpus_per_node else None
        pairs = [("-J", job.name), ("-q", opts.queue), ("-P", opts.project),
                 ("-W", lsf_walltime(res.walltime) if res.walltime else None),
                 ("-n", str(res.nodes * slots)), ("-R", f"span[ptile={slots}]"), ("-gpu", gpu),
                 ("-o", job.path("lsf.out")), ("-e", job.path("lsf.err"))]
        return [(flag, value) for flag, value in pairs if value]

    def directives(self, job: JobSpec) -> list[str]:
        """``#BSUB`` lines, every value quoted; extra directives verbatim."""
        lines = [f"#BSUB {flag} {quote(value)}" for flag, value in self._pairs(job)]
        return lines + [f"#BSUB {directive}" for directive in job.options.extra_directives]

    def submit_command(self, job: JobSpec, script_path: str) -> list[str]:
        """``bsub OPTIONS SCRIPT``; bsub hands its command to a shell on the execution host, so the path
        is shell-quoted to stay one word."""
        words = [word for pair in self._pairs(job) for word in pair]
        words += [word for directive in job.options.extra_directives for word in shlex.split(directive)]
        return ["bsub", *words, quote(script_path)]

    def parse_job_id(self, stdout: str) -> str:
        """The id in ``Job <123> is submitted to queue <normal>.``"""
        match = _SUBMITTED.search(stdout)
        if not match:
            raise ValueError(f"no job id in {stdout!r}")
        return match.group(1)

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        """One ``bjobs`` call for all ``job_ids``, recently finished ones included."""
        return ["bjobs", "-a", "-noheader", "-o", STATUS_FIELDS, *job_ids]

    def parse_status(self, stdout: str) -> dict[str, JobStatus]:
        """Statuses from ``jobid|stat|pend_reason|exec_host|exit_code|exit_reason`` lines (``-`` is empty)."""
        out = {}
        for line in stdout.splitlines():
            fields = [field.strip() for field in line.split("|")]
            if len(fields) < 6:
                continue
            job_id, code, *pending, exec_host, exit_text, exit_reason = fields
            pending_reason, exit_reason = _text("|".join(pending)), _text(exit_reason)
            exit_code = int(exit_text) if exit_text.lstrip("-").isdigit() else (0 if code == "DONE" else None)
            state = STATE_MAP.get(code, JobState.UNKNOWN)
            if state.is_final:
                state = _end_state(code, exit_reason)
                fallback = f"exited with status {exit_code}" if exit_code else None
                reason = exit_reason or _STATE_REASONS.get(code) or fallback
            else:
                fallback = "waiting in the queue" if code == "PEND" else None
                reason = pending_reason or _STATE_REASONS.get(code) or fallback
            out[job_id] = JobStatus(state, reason, exit_code=exit_code, nodes=_nodes(exec_host))
        return out

    def unknown_jobs(self, result: CommandResult) -> bool:
        """True when every line bjobs wrote to stderr is ``Job <N> is not found``."""
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        return bool(lines) and all(_NOT_FOUND.fullmatch(line) for line in lines)

    def cancel_command(self, job_id: str) -> list[str]:
        """``bkill ID`` (SIGINT, SIGTERM, then SIGKILL; the script forwards them to vLLM)."""
        return ["bkill", job_id]
