"""Multi-node jobs from ``$PBS_NODEFILE``: vLLM's native data parallelism without Ray.

The first host in the node file (where PBS runs the job script) starts the API server with the
head's words; every other host runs the same command with ``--headless`` and its start rank,
started there by ``mpiexec`` or ``pbsdsh``. A follower runs a small fixed bash program (the
profile's environment, then vLLM) whose run-time values arrive as positional arguments, so nothing
is spliced into shell text at run time.
"""

from __future__ import annotations

from vlaunch import JobSpec, shell
from vlaunch.config.flags import PORT_VAR
from vlaunch.multinode import data_parallel_layout, follower_words, head_words
from vlaunch.script import RUN_DIR_VAR, environment_block, launch_line, other_free_port_line, server_block

from .options import PbsOptions

__all__ = ["multinode_server_block", "follower_program", "FOLLOWER_ARGS"]

#: The follower program's positional arguments, in order.
FOLLOWER_ARGS = (RUN_DIR_VAR, "VLAUNCH_START_RANK", "VLAUNCH_HEAD", "VLAUNCH_RPC_PORT", PORT_VAR)
_V = shell.Var
_NODES = "awk 'NF && !seen[$1]++ {print $1}' \"${PBS_NODEFILE:?is not set: not inside a PBS job}\""
_INDEX = "awk -v node=\"$VLAUNCH_NODE\" '$1 == node {print NR - 1; exit}' \"$PBS_NODEFILE\""


def follower_program(job: JobSpec) -> str:
    """The bash program a follower host runs: take its arguments, set up the environment, exec vLLM."""
    layout = data_parallel_layout(job.profile)
    words = follower_words(layout, _V("VLAUNCH_START_RANK"), _V("VLAUNCH_HEAD"), _V("VLAUNCH_RPC_PORT"))
    return "\n".join([
        " ".join(f'{name}="${index}"' for index, name in enumerate(FOLLOWER_ARGS, 1)),
        'cd -- "$VLAUNCH_RUN_DIR" || exit 1',
        environment_block(job),
        "exec " + launch_line(job, words, api_servers=False),
    ])


def _launch_follower(options: PbsOptions) -> list[str]:
    """Lines (inside the loop over followers) that start one follower on ``$VLAUNCH_NODE``."""
    program = ["/bin/bash", "-c", _V("VLAUNCH_FOLLOWER"), "vlaunch-follower", *map(_V, FOLLOWER_ARGS)]
    if options.launcher == "pbsdsh":
        return [f"  VLAUNCH_NODE_INDEX=$({_INDEX})",
                "  " + shell.join(["pbsdsh", "-n", _V("VLAUNCH_NODE_INDEX"), *options.launcher_args, "--", *program]) + " &"]
    return ["  " + shell.join(["mpiexec", "-n", "1", "--hosts", _V("VLAUNCH_NODE"), *options.launcher_args, *program]) + " &"]


def multinode_server_block(job: JobSpec, options: PbsOptions) -> str:
    """The server block of a job over ``resources.nodes`` hosts: followers first, then the head API server."""
    layout = data_parallel_layout(job.profile)
    head = launch_line(job, head_words(layout, _V("VLAUNCH_HEAD"), _V("VLAUNCH_RPC_PORT")))
    nodes = layout.nodes
    prelude = [
        f"# {nodes} nodes from $PBS_NODEFILE: the first runs the API server, the others headless engines",
        f"VLAUNCH_FOLLOWER={shell.quote(follower_program(job))}",
        f"mapfile -t VLAUNCH_NODES < <({_NODES})",
        f'if [ "${{#VLAUNCH_NODES[@]}}" -ne {nodes} ]; then',
        f'  echo "vlaunch: {nodes} nodes asked, \\$PBS_NODEFILE lists ${{#VLAUNCH_NODES[@]}}"; echo 1 >exit_code; exit 1',
        "fi",
        "VLAUNCH_HEAD=${VLAUNCH_NODES[0]}",
        other_free_port_line("VLAUNCH_RPC_PORT"),
        f"for ((VLAUNCH_I = 1; VLAUNCH_I < {nodes}; VLAUNCH_I++)); do",
        '  VLAUNCH_NODE=${VLAUNCH_NODES[VLAUNCH_I]}',
        f"  VLAUNCH_START_RANK=$((VLAUNCH_I * {layout.local_ranks}))",
        *_launch_follower(options),
        "done",
    ]
    return server_block(job, head, prelude)
