"""The ``slurm`` backend: command builders and parsers; the core runs them through the transport."""

from __future__ import annotations

from collections.abc import Sequence

from vlaunch import BatchBackend, JobSpec

from .jobscript import directive_lines, multinode_server_block
from .options import SlurmOptions
from .parse import SACCT_FIELDS, SQUEUE_FIELDS, STATE_MAP, parse_job_id, parse_sacct, parse_squeue

__all__ = ["SlurmBackend"]


class SlurmBackend(BatchBackend):
    """Queues the job script with ``sbatch``, follows it with ``squeue`` (``sacct`` once it left the
    queue), stops it with ``scancel``."""

    name = "slurm"
    description = "Slurm batch jobs (sbatch/squeue/scancel); several nodes with vLLM's native data parallelism"
    options_model = SlurmOptions
    template = "slurm.sh.tmpl"
    commands = ("sbatch", "squeue", "sacct", "scancel")
    install_hint = ("install Slurm's client commands: apt install slurm-client on Debian/Ubuntu, or load your"
                    " site's slurm module; or submit through a login node with --via HOST")
    state_map = STATE_MAP

    def directives(self, job: JobSpec) -> list[str]:
        """``#SBATCH`` lines for the job's resources and ``[backend.slurm]`` options."""
        return directive_lines(job, job.options)

    def server_block(self, job: JobSpec) -> str | None:
        """The multi-node block when the job spans several nodes, else the core's."""
        return multinode_server_block(job)

    def submit_command(self, job: JobSpec, script_path: str) -> list[str]:
        """``sbatch --parsable SCRIPT`` (the directives are in the script)."""
        return ["sbatch", "--parsable", script_path]

    def parse_job_id(self, stdout: str) -> str:
        """The id ``sbatch --parsable`` printed."""
        return parse_job_id(stdout)

    def status_command(self, job_ids: Sequence[str]) -> list[str]:
        """One ``squeue`` call for all jobs, ended ones included while Slurm still lists them."""
        return ["squeue", "--noheader", "--states=all", "--jobs=" + ",".join(job_ids), "--Format=" + SQUEUE_FIELDS]

    def parse_status(self, stdout: str) -> dict:
        """Statuses from :meth:`status_command` output."""
        return parse_squeue(stdout)

    def cancel_command(self, job_id: str) -> list[str]:
        """``scancel ID`` (Slurm answers 0 for jobs that already ended)."""
        return ["scancel", job_id]

    def unknown_jobs(self, result) -> bool:
        """squeue refuses a list of only purged ids with "Invalid job id specified"."""
        return "Invalid job id specified" in result.stderr

    def history_command(self, job_ids: Sequence[str]) -> list[str]:
        """``sacct`` for jobs that left squeue (fails harmlessly where accounting is off)."""
        return ["sacct", "--noheader", "-X", "--parsable2", "--format=" + SACCT_FIELDS, "--jobs=" + ",".join(job_ids)]

    def parse_history(self, stdout: str) -> dict:
        """Statuses from :meth:`history_command` output."""
        return parse_sacct(stdout)
