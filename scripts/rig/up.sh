#!/usr/bin/env bash
# Bring up every test rig: single-node Slurm with 4 fake GPUs + Torque-style PBS wrappers, and sshd.
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
"$D/pbs-up.sh"     # includes slurm-up.sh
"$D/ssh-up.sh"
