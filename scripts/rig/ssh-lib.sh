# Settings and helpers for ssh-up.sh and ssh-down.sh (sourced, not executed); the shared helpers
# (wait_until, gone, stop_pid, alive_pidfile, apt_install, die) come from lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RIG=${SSH_RIG:-$RIG_ROOT/ssh}
SSH_USER=${SSH_USER:-vltest}
SSH_PORT=${SSH_PORT:-2222}
NETNS=vlhost2
HOST2_ADDR=10.200.0.2
T0=${EPOCHREALTIME/./}

step() { printf '[ssh rig %6.2fs] %s\n' "$(( (${EPOCHREALTIME/./} - T0) / 10000 ))e-2" "$*"; }
