#!/usr/bin/env bash
# Tear down every test rig (jobs are cancelled first).
set -uo pipefail
D=$(cd "$(dirname "$0")" && pwd)
"$D/ssh-down.sh"
"$D/pbs-down.sh"
