"""Multi-node jobs from ``$PBS_NODEFILE``: vLLM's native data parallelism without Ray.

The first host in the node file (where PBS runs the job script) is the head; ``mpiexec`` or
``pbsdsh`` starts the follower program of :mod:`vlaunch.followers` on every other host.
"""

from __future__ import annotations

from vlaunch import JobSpec, shell
from vlaunch.followers import NODE_VAR
from vlaunch.followers import multinode_server_block as multinode_server_block_of

from .options import PbsOptions

__all__ = ["multinode_server_block"]

_V = shell.Var
_NODES = "awk 'NF && !seen[$1]++ {print $1}' \"${PBS_NODEFILE:?is not set: not inside a PBS job}\""
_POSITION = f"awk -v node=\"${NODE_VAR}\" '$1 == node {{print NR - 1; exit}}' \"$PBS_NODEFILE\""


def _launch_follower(options: PbsOptions, command: list) -> list[str]:
    """Lines (inside the loop over followers) that start ``command`` on ``$VLAUNCH_NODE``."""
    if options.launcher == "pbsdsh":  # pbsdsh -n counts lines of the node file, not hosts
        return [f"VLAUNCH_NODEFILE_LINE=$({_POSITION})",
                shell.join(["pbsdsh", "-n", _V("VLAUNCH_NODEFILE_LINE"), *options.launcher_args, "--", *command]) + " &"]
    return [shell.join(["mpiexec", "-n", "1", "--hosts", _V(NODE_VAR), *options.launcher_args, *command]) + " &"]


def multinode_server_block(job: JobSpec, options: PbsOptions) -> str:
    """The server block of a job over ``resources.nodes`` hosts: followers first, then the head API server."""
    nodes = job.profile.resources.nodes
    list_nodes = [
        f"mapfile -t VLAUNCH_NODES < <({_NODES})",
        f'if [ "${{#VLAUNCH_NODES[@]}}" -ne {nodes} ]; then',
        f'  echo "vlaunch: {nodes} nodes asked, \\$PBS_NODEFILE lists ${{#VLAUNCH_NODES[@]}}"; echo 1 >exit_code; exit 1',
        "fi",
    ]
    return multinode_server_block_of(job, list_nodes, lambda command: _launch_follower(options, command))
