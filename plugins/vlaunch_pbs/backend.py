"""The ``pbs`` backend: qsub, qstat and qdel, for PBS Pro / OpenPBS and, with ``dialect = "torque"``, Torque.

Only commands and parsers live here; the core runs them through the transport, polls all jobs in one
call per round and falls back to the job's own markers for jobs the server no longer lists.
"""

from __future__ import annotations

import re

from vlaunch import BatchBackend
from vlaunch.errors import ConfigError, SchedulerError
from vlaunch.multinode import uses_ray

from .directives import OUTPUT_FILE, directive_lines
from .multinode import multinode_server_block
from .options import PbsOptions
from .qstat import STATE_MAP, parse_qstat

__all__ = ["PbsBackend"]

#: qstat's exit statuses for "no such job" (15001 % 256) and "finished, ask with -x" (15139 % 256).
_UNKNOWN_JOB_RC = {153, 35}
_JOB_ID = re.compile(r"\d+(\[\d*\])?(\.[A-Za-z0-9_.-]+)?")
#: Torque-style wrappers over Slurm paste qsub's paths into a shell command line unquoted.
_WRAPPER_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+,=@%~-]+")


class PbsBackend(BatchBackend):
    """PBS batch jobs. An instance asks qstat in one dialect's form (:meth:`for_job` picks a job's)."""

    name = "pbs"
    description = "PBS Pro / OpenPBS batch jobs (Torque with dialect = \"torque\"): qsub, qstat, qdel"
    options_model = PbsOptions
    template = "pbs.sh.tmpl"
    commands = ("qsub", "qstat", "qdel")
    install_hint = "the PBS Pro / OpenPBS or Torque client commands"
    state_map = STATE_MAP

    def __init__(self, dialect: str = "pro"):
        self.dialect = dialect

    def directives(self, job):
        """The ``#PBS`` lines for the job's profile and options."""
        return directive_lines(job, job.options)

    def server_block(self, job):
        """Head and followers over ``$PBS_NODEFILE`` for multi-node jobs; the core's block otherwise
        (one node, or Ray, which spans nodes by itself)."""
        if job.profile.resources.nodes == 1 or uses_ray(job.profile):
            return None
        return multinode_server_block(job, job.options)

    def submit_command(self, job, script_path):
        """``qsub SCRIPT``; for Torque also ``-j oe -o RUN_DIR/pbs.out``, which its wrappers only take there."""
        if job.options.dialect == "pro":
            return ["qsub", script_path]
        # Torque-style wrappers ignore "#PBS -j oe" and "#PBS -o": say them on the command line too.
        output = job.path(OUTPUT_FILE)
        for path in (script_path, output):
            if not _WRAPPER_SAFE_PATH.fullmatch(path):
                raise ConfigError(f"dialect torque: path {path!r} has characters a Torque-style qsub wrapper would"
                                  " hand to a shell; choose a run_root of letters, digits and ./_-")
        return ["qsub", "-j", "oe", "-o", output, script_path]

    def parse_job_id(self, stdout):
        """The id qsub printed: ``2.server`` (PBS Pro, Torque) or a bare ``2`` (wrappers over Slurm)."""
        job_id = stdout.strip().splitlines()[-1].strip()
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(job_id)
        return job_id

    def status_command(self, job_ids):
        """``qstat -f -F dsv IDS``: live jobs only, so it works whether or not the server keeps job history
        (without history, ``-x`` lists no job at all, live ones included); the text ``qstat -f IDS`` for Torque."""
        if self.dialect == "torque":
            return ["qstat", "-f", *job_ids]
        return ["qstat", "-f", "-F", "dsv", *job_ids]

    def history_command(self, job_ids):
        """PBS Pro: ``-x`` for the jobs that left the live list (a server without history then lists
        none, and their exit markers tell); Torque keeps no history."""
        return None if self.dialect == "torque" else ["qstat", "-x", "-f", "-F", "dsv", *job_ids]

    def parse_status(self, stdout):
        """Statuses from this dialect's qstat form."""
        return parse_qstat(stdout, "text" if self.dialect == "torque" else "dsv")

    def parse_history(self, stdout):
        """Statuses from this dialect's qstat form."""
        return self.parse_status(stdout)

    def cancel_command(self, job_id):
        """``qdel ID``: asynchronous on PBS Pro; the core then waits until qstat no longer lists the job as live."""
        return ["qdel", job_id]

    def refusal(self, result):
        """qsub's own words (``qsub: ...`` lines, or a wrapped sbatch's errors), on one line."""
        lines = [line.strip().strip("'").strip() for line in f"{result.stderr}\n{result.stdout}".splitlines()]
        said = [line for line in lines if line.startswith(("qsub:", "sbatch: error:"))]
        return "; ".join(dict.fromkeys(said)) or result.message()

    def unknown_jobs(self, result):
        """qstat's "unknown job" and "finished, ask with -x" statuses; any other failure (server down, an
        option this server lacks) raises instead of making its jobs look gone."""
        if result.returncode in _UNKNOWN_JOB_RC:
            return True
        hint = " (is backend.pbs.dialect right for this server?)" if self.dialect == "pro" else ""
        raise SchedulerError(f"pbs: qstat failed (exit status {result.returncode}): {result.message()}{hint}")

    def for_job(self, job):
        """An instance that asks qstat in the job's dialect."""
        return PbsBackend(self.options_for(job).dialect)
