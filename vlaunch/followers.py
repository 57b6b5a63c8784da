"""The shell of a multi-node job: the head node's side and the program each other node runs.

The head (the node the scheduler runs the job script on) lists the job's nodes, chooses the address
the others reach it at, starts one follower per other node through the backend's launcher (``srun``,
``mpiexec``, ``pbsdsh``), then runs the API server. Its guard (see :mod:`vlaunch.script`) watches the
launchers as it watches vLLM's own processes: when one ends, the server is ended and the exit marker
names the node and, from that node's own marker, why.

Each follower runs :func:`follower_program`: a fixed bash program whose run-time values arrive as
positional arguments (nothing is spliced into shell text at run time). It checks that the head's
address is routable from its node, sets up the profile's environment and runs vLLM ``--headless``
under the same guard as the head, so that whatever kills a follower's processes leaves nothing on its
node. A follower's markers go to ``node-K/`` in the run directory, which every node shares.
"""

from __future__ import annotations

from typing import Callable

from . import shell
from .backend import EXIT_MARKER, SIGNAL_MARKER, JobSpec
from .config.flags import PORT_VAR
from .multinode import DataParallelLayout, data_parallel_layout, follower_words, head_words
from .script import (ENDED_MARKER, LOST_MARKER, RUN_DIR_VAR, environment_block, launch_line, other_free_port_line,
                     owned_server_lines, server_block)

__all__ = ["multinode_server_block", "follower_program", "FOLLOWER_ARGS", "NODE_VAR", "NODE_INDEX_VAR"]

#: The follower program's positional arguments, in order.
FOLLOWER_ARGS = (RUN_DIR_VAR, "VLAUNCH_NODE_INDEX", "VLAUNCH_START_RANK", "VLAUNCH_DP_ADDRESS",
                 "VLAUNCH_DP_RPC_PORT", PORT_VAR)
#: Inside the loop over followers: the node's name, and its index in ``VLAUNCH_NODES`` (1 and up).
NODE_VAR, NODE_INDEX_VAR = "VLAUNCH_NODE", "VLAUNCH_NODE_INDEX"
_V = shell.Var

#: Prints the address of this node that the others reach it at (the interface's, or the source address
#: of the route to the first other node), or the reason there is none, and exits 1 then. A loopback
#: address is refused: another node's engines could never reach it.
_CHOOSE_ADDRESS = """import fcntl, ipaddress, socket, struct, sys
interface, peer = sys.argv[1:3]
where = f"interface {interface}" if interface else f"the route to {peer}"
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if interface:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", interface.encode()))
        address = socket.inet_ntoa(packed[20:24])
    else:
        s.connect((peer, 9))
        address = s.getsockname()[0]
except OSError as e:
    print(f"no data-parallel address for the other nodes ({where}: {e.strerror or e})")
    sys.exit(1)
if ipaddress.ip_address(address).is_loopback:
    print(f"the data-parallel address {address} ({where}) is a loopback address: the other nodes cannot reach it;"
          " set server.data_parallel_interface to an interface they share")
    sys.exit(1)
print(address)"""

#: On a follower: exits 1 with the reason when the head's address has no route from this node.
_CHECK_ROUTE = """import socket, sys
address = sys.argv[1]
try:
    socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM).connect((address, 9))
except OSError as e:
    print(f"{socket.gethostname()} cannot reach the head's data-parallel address {address}: {e.strerror or e}")
    sys.exit(1)"""


def follower_program(job: JobSpec) -> str:
    """The bash program a follower node runs with :data:`FOLLOWER_ARGS`: check the route to the head, set
    up the environment, run the headless engines under the guard."""
    layout = data_parallel_layout(job.profile)
    words = follower_words(layout, _V("VLAUNCH_START_RANK"), _V("VLAUNCH_DP_ADDRESS"), _V("VLAUNCH_DP_RPC_PORT"))
    return "\n".join([
        " ".join(f'{name}="${index}"' for index, name in enumerate(FOLLOWER_ARGS, 1)),
        f'mkdir -p -- "${RUN_DIR_VAR}/node-${NODE_INDEX_VAR}" && cd -- "${RUN_DIR_VAR}/node-${NODE_INDEX_VAR}" || exit 1',
        f"rm -f {EXIT_MARKER} {SIGNAL_MARKER} {LOST_MARKER} {ENDED_MARKER}",
        f'echo "vlaunch: node ${NODE_INDEX_VAR} starts its engines on $(hostname) at $(date)"',
        f'if ! VLAUNCH_WHY="$(python3 -c {shell.quote(_CHECK_ROUTE)} "$VLAUNCH_DP_ADDRESS")"; then',
        f'  echo "vlaunch: $VLAUNCH_WHY"; echo "1 $VLAUNCH_WHY" >{EXIT_MARKER}; exit 1',
        "fi",
        environment_block(job),
        *owned_server_lines(launch_line(job, words, api_servers=False), publish=False),
    ])


#: On the head, once its server has ended: a follower whose server ended too (``node-K/ended``) is still
#: ending what its server left on its node, which only its own program can reach (vLLM's processes whose
#: parent died are no longer the launcher's). Its launcher is left to end by itself, up to 6 s (the
#: follower's own TERM, 1 s, then KILL, 2 s, with room for a busy machine), before the head ends what is
#: left, launchers included: a launcher signalled earlier has the scheduler kill the follower's program in
#: the middle of its work, and what vLLM left on that node stays there.
_AWAIT_FOLLOWERS = f"""for f in $VLAUNCH_FOLLOWERS; do
  w=${{f#*:}}; w=${{w%@*}}
  for ((i = 0; i < 30; i++)); do
    [ -e "$w/{ENDED_MARKER}" ] && [ ! -e "$w/{EXIT_MARKER}" ] && kill -0 "${{f%%:*}}" 2>/dev/null || break
    sleep 0.2
  done
done"""


def _head_prelude(job: JobSpec, layout: DataParallelLayout, launch: list[str]) -> list[str]:
    """After ``VLAUNCH_NODES`` is set: the address, the RPC port, one follower per other node."""
    interface = job.profile.server.data_parallel_interface or ""
    return [
        "rm -rf -- node-[0-9]*  # a requeued job's last run left its followers' markers",
        f"VLAUNCH_FOLLOWER={shell.quote(follower_program(job))}",
        f"if ! VLAUNCH_DP_ADDRESS=\"$(python3 -c {shell.quote(_CHOOSE_ADDRESS)} {shell.quote(interface)}"
        ' "${VLAUNCH_NODES[1]}")"; then',
        f'  echo "vlaunch: $VLAUNCH_DP_ADDRESS"; echo "1 $VLAUNCH_DP_ADDRESS" >{EXIT_MARKER}; exit 1',
        "fi",
        'echo "vlaunch: the nodes meet at $VLAUNCH_DP_ADDRESS"',
        other_free_port_line("VLAUNCH_DP_RPC_PORT"),
        'VLAUNCH_FOLLOWERS=""',
        f"for (({NODE_INDEX_VAR} = 1; {NODE_INDEX_VAR} < {layout.nodes}; {NODE_INDEX_VAR}++)); do",
        f"  {NODE_VAR}=${{VLAUNCH_NODES[{NODE_INDEX_VAR}]}}",
        f"  VLAUNCH_START_RANK=$(({NODE_INDEX_VAR} * {layout.local_ranks}))",
        *("  " + line for line in launch),
        f'  VLAUNCH_FOLLOWERS="$VLAUNCH_FOLLOWERS $!:node-${NODE_INDEX_VAR}@${NODE_VAR}"',
        "done",
        # The guard watches the launchers from its first look on.
        "VLAUNCH_VITAL=$VLAUNCH_FOLLOWERS",
    ]


def multinode_server_block(job: JobSpec, list_nodes: list[str],
                           launch_follower: Callable[[list], list[str]]) -> str:
    """The server block of a job over ``resources.nodes`` nodes. ``list_nodes``: shell lines that fill the
    array ``VLAUNCH_NODES`` with the job's nodes, the head first (and stop the job when they are too
    few); ``launch_follower(command)``: the lines that start ``command`` (a word list) in the
    background on ``$VLAUNCH_NODE`` (index ``$VLAUNCH_NODE_INDEX``)."""
    layout = data_parallel_layout(job.profile)
    head = launch_line(job, head_words(layout, _V("VLAUNCH_DP_ADDRESS"), _V("VLAUNCH_DP_RPC_PORT")))
    command = ["/bin/bash", "-c", _V("VLAUNCH_FOLLOWER"), "vlaunch-follower", *map(_V, FOLLOWER_ARGS)]
    prelude = [f"# {layout.nodes} nodes x {layout.local_ranks} data-parallel ranks = {layout.ranks}: this node"
               " serves the API, each other node runs headless engines",
               *list_nodes, *_head_prelude(job, layout, launch_follower(command))]
    return server_block(job, head, prelude, settle=[_AWAIT_FOLLOWERS])
