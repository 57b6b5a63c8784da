"""Job scripts: the core builds the blocks (environment, server), a backend's template arranges them.

Templates are logic-free text with ``{{ block }}`` placeholders. Every value that reaches the script
is quoted by :mod:`vlaunch.shell`; ``environment.setup`` lines are the one deliberate exception
(they are the user's own shell, e.g. ``module load cuda``). The output is byte-stable: no clocks,
no randomness.
"""

from __future__ import annotations

import re
from importlib import resources

from . import apikey, shell
from .backend import EXIT_MARKER, SIGNAL_MARKER, Backend, JobSpec
from .config.flags import PORT_VAR, server_argv
from .errors import ConfigError
from .multinode import uses_ray

__all__ = ["render_script", "fill_template", "environment_block", "server_block", "owned_server_lines", "OWN_GROUP",
           "launch_line", "port_lines", "other_free_port_line", "PLAIN_TEMPLATE", "RUN_DIR_VAR", "METRICS_PORT_VAR",
           "LOST_MARKER", "ENDED_MARKER"]

RUN_DIR_VAR = "VLAUNCH_RUN_DIR"
#: A second free port of the node, for a program served instead of vLLM (the router's metrics).
METRICS_PORT_VAR = "VLAUNCH_METRICS_PORT"
PLAIN_TEMPLATE = "#!/bin/bash\n{{ directives }}\n{{ header }}\n{{ environment }}\n{{ server }}\n"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_FREE_PORT = "python3 -c 'import socket; s = socket.socket(); s.bind((\"\", 0)); print(s.getsockname()[1])'"


def other_free_port_line(var: str) -> str:
    """A shell line that sets ``$var`` to a free port of this machine other than the server's
    ``$VLAUNCH_PORT`` (e.g. multi-node data parallelism's RPC port)."""
    return (f'{var}=${PORT_VAR}; while [ "${var}" = "${PORT_VAR}" ]; do'
            f' {var}="$({_FREE_PORT})"; done')


def fill_template(text: str, blocks: dict[str, str]) -> str:
    """Substitute ``{{ name }}`` placeholders; a line holding only an empty block disappears."""
    out = []
    for line in text.splitlines(keepends=True):
        match = _PLACEHOLDER.fullmatch(line.strip())
        if match and not blocks.get(match.group(1), "x"):
            continue
        out.append(_PLACEHOLDER.sub(lambda m: _block(blocks, m.group(1)), line))
    return "".join(out)


def _block(blocks: dict[str, str], name: str) -> str:
    if name not in blocks:
        raise KeyError(f"template asks for unknown block {{{{ {name} }}}}; known: {', '.join(sorted(blocks))}")
    return blocks[name]


def _header(job: JobSpec, backend: Backend) -> str:
    return "\n".join([
        f"# vlaunch job {shell.quote(job.name)}: profile {shell.quote(job.profile_name)}, backend {backend.name}",
        *(f"# {note}" for note in job.notes),
        f"{RUN_DIR_VAR}={shell.quote(job.run_dir)}",
        f'cd -- "${RUN_DIR_VAR}" || exit 1',
        # A requeued job runs again in the same directory: the last run's markers would end it at once.
        f"rm -f {EXIT_MARKER} {SIGNAL_MARKER} {LOST_MARKER} rendezvous.json",
        'exec >>"$' + RUN_DIR_VAR + '/server.log" 2>&1',
        # The epoch and the node's local time place vLLM's time stamps on any clock (vlaunch/start_phase.py).
        'echo "vlaunch: job starting on $(hostname) at $(date \'+%a %b %e %T %Z %Y (epoch %s, local %m-%d %T)\')"',
        'if command -v nvidia-smi >/dev/null 2>&1; then echo "vlaunch: GPUs: $(timeout 20 nvidia-smi'
        ' --query-gpu=name --format=csv,noheader 2>/dev/null | paste -sd, -)"; fi',
    ])


def environment_block(job: JobSpec) -> str:
    """Setup lines verbatim, then quoted exports, the compile cache location and GPU selection."""
    profile = job.profile
    lines = ["# environment"] + list(profile.environment.setup)
    lines += [shell.export_line(k, v) for k, v in sorted(profile.environment.variables.items())]
    cache = profile.server.compile_cache
    if cache:
        value = f'"$HOME"/{shell.quote(cache[2:])}' if cache.startswith("~/") else shell.quote(cache)
        lines.append(f"export VLLM_CACHE_ROOT={value}")
    if profile.resources.gpu_ids is not None:
        lines.append(shell.export_line("CUDA_VISIBLE_DEVICES", ",".join(map(str, profile.resources.gpu_ids))))
    return "\n".join(lines)


def launch_line(job: JobSpec, extra: list[str] = (), api_servers: bool = True) -> str:
    """The quoted vLLM command line, with the port taken from ``$VLAUNCH_PORT``, the API key file (see
    :mod:`vlaunch.apikey`) and ``extra`` words (literal strings or :class:`vlaunch.shell.Var`) appended;
    ``api_servers=False`` for a headless engine group (see :func:`vlaunch.config.flags.server_argv`).
    A job that serves another program (:attr:`JobSpec.program`) runs that, on ``server.host`` and the port."""
    if job.program:
        return shell.join([*job.program, "--host", job.profile.server.host, "--port", shell.Var(PORT_VAR)])
    key = apikey.server_args(job.path(apikey.FILE)) if job.profile.server.api_key else []
    return shell.join(server_argv(job.profile, shell.Var(PORT_VAR), api_servers) + key + list(extra))


def port_lines(job: JobSpec) -> list[str]:
    """Shell lines that set ``$VLAUNCH_PORT`` (a free port chosen on the node when the port is "auto"), and
    for a job that serves another program, ``$VLAUNCH_METRICS_PORT``, a second free port."""
    port = job.profile.server.port
    return [f'{PORT_VAR}="$({_FREE_PORT})"' if port == "auto" else f"{PORT_VAR}={port}",
            *([other_free_port_line(METRICS_PORT_VAR)] if job.program else [])]


#: Where the guard notes which process of vLLM died, when it ended the server for that reason.
LOST_MARKER = "lost"
#: A follower node's notice that its server ended, written before it stops what the server left (see
#: :mod:`vlaunch.followers`): the head's guard ends the job meanwhile instead of after.
ENDED_MARKER = "ended"
#: The cause the exit marker gives for a server that ended with status 0 though nothing asked it to.
UNASKED = "the server stopped by itself with status 0, unasked (vLLM does so when its engine dies)"
#: Shell functions that own the server's processes (on every node of a multi-node job: see
#: :mod:`vlaunch.followers`). ``vlaunch_own_group`` decides once, before the
#: launch, whether the job's process group is its own: led by the script (local, ssh, Slurm), or, inside
#: a PBS job, by its parent when that parent leads its session too (PBS runs the script under the job's
#: login shell); any other group (a script started by hand, or under another launcher) is left alone.
#: ``vlaunch_end_group`` ends every process vLLM left in that group once its main process has ended
#: (EngineCore and workers outlive a killed API server): TERM, up to 1 s, then KILL (and up to 2 s for
#: the kill to land). The script's TERM/INT trap stays on meanwhile: a scheduler signals every process
#: of a job, and when the server dies of it before the script hears its own, the ``signalled`` marker
#: must still say so. ``vlaunch_guard`` runs beside the server and does the same when the script itself
#: is killed (SIGKILL cannot be trapped), then writes the exit marker the script could not. It also
#: ends the server when a process vLLM named (``VLLM::EngineCore``, ``VLLM::APIServer_N``: children of
#: the server, looked for every 0.5 s for 10 s and every 5 s after, each looked at every 0.5 s once found:
#: the list only grows, so one that dies while the guard looks for new ones is not missed) has ended
#: though no stop was asked for: vLLM then only shuts down, which takes seconds of interpreter teardown
#: on a busy machine, and the ``LOST_MARKER`` it leaves names the process for the exit marker. The group is read from /proc with
#: shell builtins only, so neither forks anything that would count as a member.
OWN_GROUP = r"""vlaunch_others() {
  VLAUNCH_OTHERS=""
  for d in /proc/[0-9]*; do
    read -r s 2>/dev/null <"$d/stat" || continue
    set -- ${s##*) }
    [ "$3" = "$VLAUNCH_GROUP" ] && [ "$1" != Z ] || continue
    case "$VLAUNCH_SPARED" in *" ${d#/proc/} "*) ;; *) VLAUNCH_OTHERS="$VLAUNCH_OTHERS ${d#/proc/}" ;; esac
  done
  [ -n "$VLAUNCH_OTHERS" ]
}
vlaunch_own_group() {
  read -r s <"/proc/$$/stat"; set -- ${s##*) }; VLAUNCH_GROUP=$3; VLAUNCH_SPARED=" $$ "
  [ "$VLAUNCH_GROUP" = "$$" ] && return 0
  VLAUNCH_GROUP=""
  [ -n "${PBS_JOBID:-}" ] && [ "$3" = "$2" ] && read -r s 2>/dev/null <"/proc/$2/stat" || return 0
  set -- ${s##*) }; [ "$4" = "$3" ] || return 0
  VLAUNCH_GROUP=$3; VLAUNCH_SPARED=" $$ $VLAUNCH_GROUP "
}
vlaunch_end_group() {
  [ -n "$VLAUNCH_GROUP" ] && vlaunch_others || return 0
  echo "vlaunch: ending processes the server left:$VLAUNCH_OTHERS"
  kill -TERM $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 5; i++)); do vlaunch_others || return 0; sleep 0.2; done
  echo "vlaunch: killing processes that outlived SIGTERM:$VLAUNCH_OTHERS"
  kill -KILL $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 10; i++)); do vlaunch_others || return 0; sleep 0.2; done
}
vlaunch_vital() {
  for d in /proc/[0-9]*; do
    case " ${VLAUNCH_VITAL:-} " in *" ${d#/proc/}:"*) continue ;; esac
    read -r s 2>/dev/null <"$d/stat" || continue
    set -- ${s##*) }
    [ "$2" = "$VLAUNCH_PID" ] && [ "$1" != Z ] || continue
    read -r -d '' t 2>/dev/null <"$d/cmdline"
    t=${t%% *}; case "$t" in VLLM::*) VLAUNCH_VITAL="${VLAUNCH_VITAL:-} ${d#/proc/}:${t#VLLM::}" ;; esac
  done
}
vlaunch_lost() {
  for v in $VLAUNCH_VITAL; do
    w=${v#*:}; case $w in node-*@*) [ -e "${w%@*}/""" + ENDED_MARKER + r"""" ] && { VLAUNCH_LOST=$v; return 0; } ;; esac
    read -r s 2>/dev/null <"/proc/${v%%:*}/stat" && set -- ${s##*) } && [ "$1" != Z ] && continue
    VLAUNCH_LOST=$v; return 0
  done
  return 1
}
vlaunch_end_server() {
  local what=${VLAUNCH_LOST#*:} pid=${VLAUNCH_LOST%%:*} why code text
  case $what in
    node-*@*)
      why="the engines on ${what#*@} (${what%@*}, launcher pid $pid) ended"
      read -r code text 2>/dev/null <"${what%@*}/""" + EXIT_MARKER + r"""" \
        || read -r code text 2>/dev/null <"${what%@*}/""" + ENDED_MARKER + r"""" && why="$why: ${text:-status $code}" ;;
    *) why="vLLM's $what (pid $pid) died while the server ran" ;;
  esac
  echo "vlaunch: $why; ending the server"
  echo "1 $why; vlaunch ended the server" >""" + LOST_MARKER + r"""
  kill -TERM "$VLAUNCH_PID" 2>/dev/null
  for ((i = 0; i < 3; i++)); do kill -0 "$VLAUNCH_PID" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$VLAUNCH_PID" 2>/dev/null
}
vlaunch_guard() {
  trap '' TERM INT HUP
  exec 9<> <(:)
  local tick=0 watched="" ending=""
  while read -r s 2>/dev/null <"/proc/$$/stat" && set -- ${s##*) } && [ "$1" != Z ]; do
    read -rt 0.5 -u 9
    [ -n "$ending" ] || [ -e """ + SIGNAL_MARKER + r""" ] && continue  # the server is being stopped
    if vlaunch_lost; then
      # A stop that was asked for (down, the scheduler's signal) has a moment to say so; a follower whose
      # own script was not signalled was not asked.
      w=${VLAUNCH_LOST#*:}; case $w in node-*@*) [ -e "${w%@*}/""" + SIGNAL_MARKER + r"""" ] ;; esac && read -rt 0.5 -u 9
      [ -e """ + SIGNAL_MARKER + r""" ] || { ending=1; vlaunch_end_server; }
      continue
    fi
    (( tick++ < 20 || tick % 10 == 0 )) && vlaunch_vital
    [ -n "$VLAUNCH_VITAL" ] && [ "$VLAUNCH_VITAL" != "$watched" ] && echo "vlaunch: the guard watches$VLAUNCH_VITAL"
    watched=$VLAUNCH_VITAL
  done
  echo "vlaunch: the job script was killed; its guard ends the server"
  VLAUNCH_SPARED="$VLAUNCH_SPARED$BASHPID "
  vlaunch_end_group
  echo "? the job script was killed before the server ended; its guard stopped the server" >""" + EXIT_MARKER + r"""
}"""


def server_block(job: JobSpec, launch: str | None = None, prelude: list[str] = (), settle: list[str] = ()) -> str:
    """Start vLLM in the background, publish where it listens, forward SIGTERM (and note it in the
    ``signalled`` marker), record its exit status once every process it left is gone (a server that
    stopped unasked with status 0 has failed: the job's status is then 1, and the marker says why).

    ``launch`` replaces the single-node command line; ``prelude`` lines run after the port is chosen
    and before the launch (multi-node backends start their followers there)."""
    return "\n".join(["# server", *port_lines(job), *prelude, *owned_server_lines(launch or launch_line(job),
                                                                               settle=settle)])


def owned_server_lines(launch: str, publish: bool = True, settle: list[str] = ()) -> list[str]:
    """The lines of :func:`server_block` from the launch on: run ``launch`` in the background under the
    guard, wait for it, end what it left, write the exit marker. ``publish=False`` is a multi-node job's
    follower: no rendezvous file (only the head publishes), and the ``ENDED_MARKER`` as soon as the
    server ended. ``settle`` lines run once the server has ended, before what it left is ended."""
    rendezvous = ["printf '{\"host\": \"%s\", \"port\": %s, \"pid\": %s}\\n' \"$(hostname)\" \"$" + PORT_VAR
                  + "\" \"$VLAUNCH_PID\" >rendezvous.json.tmp && mv -f rendezvous.json.tmp rendezvous.json"]
    return [OWN_GROUP, "vlaunch_own_group",
            f"{launch} &", "VLAUNCH_PID=$!", "vlaunch_guard & VLAUNCH_GUARD=$!",
            *(rendezvous if publish else []),
            *(f"trap 'echo \"{sig} $SECONDS\" >{SIGNAL_MARKER}; kill -TERM \"$VLAUNCH_PID\" 2>/dev/null' {sig}"
              for sig in ("TERM", "INT")),
            'wait "$VLAUNCH_PID"; VLAUNCH_RC=$?',
            'while kill -0 "$VLAUNCH_PID" 2>/dev/null; do wait "$VLAUNCH_PID"; VLAUNCH_RC=$?; done',
            *([] if publish else [f'echo "$VLAUNCH_RC" >{ENDED_MARKER}']),
            'kill -KILL "$VLAUNCH_GUARD" 2>/dev/null; wait "$VLAUNCH_GUARD" 2>/dev/null',
            *settle,
            "vlaunch_end_group",
            'echo "vlaunch: server exited with status $VLAUNCH_RC at $(date)"',
            # vLLM's server ends only when asked, except that it exits 0 when its engine dies.
            f'if [ -e {LOST_MARKER} ]; then VLAUNCH_RC=1; cat {LOST_MARKER} >{EXIT_MARKER};'
            f' elif [ "$VLAUNCH_RC" = 0 ] && [ ! -e {SIGNAL_MARKER} ]; then VLAUNCH_RC=1; echo "1 {UNASKED}"'
            f' >{EXIT_MARKER}; else echo "$VLAUNCH_RC" >{EXIT_MARKER}; fi',
            'exit "$VLAUNCH_RC"']


def _template_text(backend: Backend) -> str:
    if not backend.template:
        return PLAIN_TEMPLATE
    package = type(backend).__module__.rpartition(".")[0] or type(backend).__module__
    return (resources.files(package) / "templates" / backend.template).read_text()


def render_script(job: JobSpec, backend: Backend) -> str:
    """The complete job script for ``job`` on ``backend``."""
    server = backend.server_block(job)
    if server is None and job.profile.resources.nodes > 1 and not uses_ray(job.profile):
        raise ConfigError(f"backend {backend.name} starts single-node servers only; resources.nodes is"
                          f" {job.profile.resources.nodes}")
    blocks = {
        "directives": "\n".join(backend.directives(job)),
        "header": _header(job, backend),
        "environment": environment_block(job),
        "server": server or server_block(job),
    }
    return fill_template(_template_text(backend), blocks)
