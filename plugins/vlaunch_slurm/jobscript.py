"""The Slurm job script's own parts: ``#SBATCH`` directives and the multi-node server block.

Every value is quoted with :mod:`vlaunch.shell`; sbatch reads shell-style quotes in ``#SBATCH`` lines.
"""

from __future__ import annotations

from vlaunch import JobSpec, shell
from vlaunch.followers import NODE_VAR
from vlaunch.followers import multinode_server_block as multinode_server_block_of
from vlaunch.multinode import uses_ray

from .options import SlurmOptions

__all__ = ["directive_lines", "multinode_server_block"]

def _memory(text: str | None) -> str | None:
    """Slurm takes 64G, not 64GB."""
    return text[:-1] if text and text.endswith("B") and len(text) > 1 and text[-2].isalpha() else text


def _generated(job: JobSpec, opts: SlurmOptions) -> dict[str, str | None]:
    r = job.profile.resources
    gpus = None
    if r.gpus_per_node:
        gpus = f"{opts.gpu_type}:{r.gpus_per_node}" if opts.gpu_type else str(r.gpus_per_node)
    return {
        "job-name": job.name, "chdir": job.run_dir, "output": opts.output or job.path("slurm-%j.out"),
        "error": opts.error, "nodes": str(r.nodes), "ntasks-per-node": "1",
        "cpus-per-task": str(r.cpus_per_node) if r.cpus_per_node else None, "gpus-per-node": gpus,
        "mem": _memory(r.memory), "time": r.walltime, "partition": opts.partition, "account": opts.account,
        "qos": opts.qos, "constraint": opts.constraint,
    }


def directive_lines(job: JobSpec, opts: SlurmOptions) -> list[str]:
    """``#SBATCH`` lines: vlaunch's own (minus ``skip_directives`` and those an extra directive
    replaces), then ``extra_directives`` in their order."""
    replaced = {entry.split("=", 1)[0].lstrip("-") for entry in opts.extra_directives if entry.startswith("--")}
    lines = [f"#SBATCH --{name}={shell.quote(value)}" for name, value in _generated(job, opts).items()
             if value is not None and name not in opts.skip_directives and name not in replaced]
    return lines + [f"#SBATCH {shell.quote(entry)}" for entry in opts.extra_directives]


_SRUN = f'srun --nodes=1 --ntasks=1 --kill-on-bad-exit=1 --nodelist="${NODE_VAR}"'


def multinode_server_block(job: JobSpec) -> str | None:
    """vLLM's native multi-node data parallelism (see :mod:`vlaunch.followers`), or None for one node
    (and for Ray, which spans nodes by itself): ``srun`` starts each other node's headless engines."""
    if job.profile.resources.nodes == 1 or uses_ray(job.profile):
        return None
    return multinode_server_block_of(
        job, ['mapfile -t VLAUNCH_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")'],
        lambda command: [f"{_SRUN} {shell.join(command)} &"])
