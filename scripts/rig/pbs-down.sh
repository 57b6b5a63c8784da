#!/usr/bin/env bash
# Tear down pbs-up.sh: the Slurm rig underneath, which also removes the PBS additions (jobs are
# cancelled first).
# PURGE=1 also removes the packages (to re-test an install on a fresh machine).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
EXTRA=()
[ "${PURGE:-0}" = 1 ] && EXTRA=(slurm-wlm-torque)
EXTRA_PURGE="${EXTRA[*]}" exec "$HERE/slurm-down.sh"
