"""The Slurm job script's own parts: ``#SBATCH`` directives and the multi-node server block.

Every value is quoted with :mod:`vlaunch.shell`; sbatch reads shell-style quotes in ``#SBATCH`` lines.
"""

from __future__ import annotations

from vlaunch import JobSpec, shell
from vlaunch.multinode import data_parallel_layout, follower_words, head_words, uses_ray
from vlaunch.script import launch_line, other_free_port_line, server_block

from .options import SlurmOptions

__all__ = ["directive_lines", "multinode_server_block"]

_ADDRESS, _RPC_PORT = shell.Var("VLAUNCH_DP_ADDRESS"), shell.Var("VLAUNCH_DP_RPC_PORT")


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


def _follower_lines(job: JobSpec, layout) -> list[str]:
    """Where the nodes meet, then one backgrounded ``srun`` step per other node."""
    srun = shell.join(["srun", "--nodes=1", "--ntasks=1", "--kill-on-bad-exit=1"])
    lines = [
        f"# {layout.nodes} nodes x {layout.local_ranks} data-parallel ranks = {layout.ranks}: this node serves"
        " the API, srun starts the other nodes' engines headless",
        f'{_ADDRESS}="$(hostname -I | cut -d " " -f 1)"',
        other_free_port_line(_RPC_PORT),
        'mapfile -t VLAUNCH_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
    ]
    for index in range(1, layout.nodes):
        words = follower_words(layout, str(index * layout.local_ranks), _ADDRESS, _RPC_PORT)
        lines.append(f'{srun} --nodelist="${{VLAUNCH_NODES[{index}]}}" {launch_line(job, words, api_servers=False)} &')
    return lines


def multinode_server_block(job: JobSpec) -> str | None:
    """vLLM's native multi-node data parallelism, or None for one node (and for Ray, which spans
    nodes by itself): this node runs the API server, ``srun`` starts a headless engine group on each
    other node. The core's server block is kept around it, so the rendezvous file, signal forwarding
    and exit marker behave as on one node."""
    if job.profile.resources.nodes == 1 or uses_ray(job.profile):
        return None
    layout = data_parallel_layout(job.profile)
    return server_block(job, launch_line(job, head_words(layout, _ADDRESS, _RPC_PORT)), _follower_lines(job, layout))
