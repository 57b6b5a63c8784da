"""The ``example`` backend: pure command builders and parsers; vlaunch runs them through its transport.

Every part that depends on the scheduler is marked TODO(scheduler). As generated, it drives a made-up
scheduler: ``examplesub SCRIPT`` prints ``Submitted job ID``; ``examplestat ID...`` prints one line
per job, ``ID|STATE|REASON|NODE|EXIT``; ``exampledel ID`` cancels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field

from vlaunch import BackendOptions, BatchBackend, JobSpec, JobState, JobStatus
from vlaunch.shell import quote

__all__ = ["ExampleBackend", "ExampleOptions"]


class ExampleOptions(BackendOptions):
    """The profile's ``[backend.example]`` table. TODO(scheduler): the options your users need."""

    queue: str | None = Field(None, description="Queue to submit to.")
    account: str | None = Field(None, description="Account (project) charged for the job.")
    extra_directives: list[str] = Field(default_factory=list, description="More directive lines, verbatim options.")


#: TODO(scheduler): every state code the scheduler prints -> vlaunch's normalised state.
STATE_MAP = {
    "PEND": JobState.PENDING, "HOLD": JobState.PENDING,
    "RUN": JobState.RUNNING,
    "DONE": JobState.COMPLETED, "EXIT": JobState.FAILED,
    "KILLED": JobState.CANCELLED, "TIMEOUT": JobState.TIMEOUT,
}
_JOB_ID = re.compile(r"\b(\d+)\b")


class ExampleBackend(BatchBackend):
    """Batch jobs on example."""

    name = "example"
    description = "example batch jobs"
    options_model = ExampleOptions
    template = "example.sh.tmpl"
    install_hint = "install the example client commands, or submit through a login node with --via HOST"
    state_map = STATE_MAP

    def directives(self, job: JobSpec) -> list[str]:
        """TODO(scheduler): the directive lines, in your scheduler's syntax; every value is quoted (check
        that its directive parser reads shell quoting). Translate each ``resources`` field you support:
        nodes, gpus_per_node, cpus_per_node, memory ("64G") and walltime ("[D-]HH:MM:SS": convert it to
        your scheduler's format). ``resources.nodes > 1`` is refused by vlaunch unless you also
        override ``server_block`` (see vlaunch.multinode)."""
        opts, res = job.options, job.profile.resources
        pairs = [("-J", job.name), ("-n", str(res.nodes)), ("-g", str(res.gpus_per_node)),
                 ("-t", res.walltime), ("-q", opts.queue), ("-A", opts.account),
                 ("-o", job.path("scheduler.out"))]
        lines = [f"#EXAMPLE {flag} {quote(value)}" for flag, value in pairs if value]
        return lines + [f"#EXAMPLE {directive}" for directive in opts.extra_directives]

    def submit_command(self, job: JobSpec, script_path: str) -> list[str]:
        """TODO(scheduler): the command that queues ``script_path`` (it runs without a shell)."""
        return ["examplesub", script_path]

    def parse_job_id(self, stdout: str) -> str:
        """TODO(scheduler): the job id in the submit command's output."""
        match = _JOB_ID.search(stdout)
        if not match:
            raise ValueError(f"no job id in {stdout!r}")
        return match.group(1)

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        """TODO(scheduler): one command that reports on all ``job_ids``."""
        return ["examplestat", *job_ids]

    def parse_status(self, stdout: str) -> dict[str, JobStatus]:
        """TODO(scheduler): statuses by job id; a readable reason for pending jobs."""
        out = {}
        for line in stdout.splitlines():
            fields = line.strip().split("|")
            if len(fields) != 5:
                continue
            job_id, code, reason, node, exit_code = fields
            state = STATE_MAP.get(code, JobState.UNKNOWN)
            out[job_id] = JobStatus(state, reason if reason != "-" else None,
                                    exit_code=int(exit_code) if exit_code.lstrip("-").isdigit() else None,
                                    nodes=(node,) if node != "-" else ())
        return out

    def unknown_jobs(self, result) -> bool:
        """TODO(scheduler): does a failed status command only mean "no such job"?"""
        return "unknown job" in result.stderr.lower()

    def cancel_command(self, job_id: str) -> list[str]:
        """TODO(scheduler): the command that cancels ``job_id``."""
        return ["exampledel", job_id]
