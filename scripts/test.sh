#!/usr/bin/env bash
# The README's second command: install and start the test rigs (Slurm, PBS wrappers, sshd), run the
# whole suite against them and a real CPU vLLM, then stop the rigs. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
bash scripts/rig/up.sh
trap 'bash scripts/rig/down.sh >/dev/null 2>&1 || true' EXIT
# The suite starts `vlaunch` hundreds of times. Where PYTHONDONTWRITEBYTECODE is set (the machines this project
# is built on set it), each start would compile vlaunch's modules again (0.1 s of each); compile them once.
.venv/bin/python -m compileall -q vlaunch plugins
.venv/bin/python -m pytest "$@"
