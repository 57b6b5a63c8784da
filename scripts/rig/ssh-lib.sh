# Helpers for ssh-up.sh and ssh-down.sh (sourced, not executed).
RIG=${SSH_RIG:-${RIG_ROOT:-${TMPDIR:-/tmp}/vlaunch-rig}/ssh}
SSH_USER=${SSH_USER:-vltest}
SSH_PORT=${SSH_PORT:-2222}
NETNS=vlhost2
HOST2_ADDR=10.200.0.2
T0=${EPOCHREALTIME/./}

step() { printf '[ssh rig %6.2fs] %s\n' "$(( (${EPOCHREALTIME/./} - T0) / 10000 ))e-2" "$*"; }

# wait_for SECONDS CMD...: retry CMD every 50 ms until it succeeds; fail after SECONDS.
wait_for() {
  local deadline=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )); shift
  until "$@" >/dev/null 2>&1; do
    (( ${EPOCHREALTIME/./} < deadline )) || { echo "ssh rig: timed out waiting for: $*" >&2; return 1; }
    sleep 0.05
  done
}

# A zombie counts as dead: PID 1 of a container may reap orphans late.
dead() { case "$(ps -o stat= -p "$1" 2>/dev/null)" in ''|Z*) return 0;; *) return 1;; esac; }

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL.
stop_pid() {
  [ -n "${1:-}" ] || return 0
  dead "$1" && return 0
  kill "$1" 2>/dev/null || true
  wait_for 10 dead "$1" || { kill -9 "$1" 2>/dev/null || true; wait_for 5 dead "$1"; }
}

# running PIDFILE: the daemon whose pid the file holds is alive.
running() { [ -s "$1" ] && ! dead "$(cat "$1")"; }
