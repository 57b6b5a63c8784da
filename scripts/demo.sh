#!/usr/bin/env bash
# The README's first command: on a fresh machine, create the environment, start the cpu-tiny profile
# on a real CPU vLLM serving a tiny model made here, ask it for a completion, show status, bring it down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
export PATH="$PWD/.venv/bin:$PATH"
MODEL=${VLAUNCH_DEMO_MODEL:-$HOME/.cache/vlaunch/tiny-llama}
python -m vlaunch.testing.tiny_model "$MODEL" >/dev/null 2>&1
echo "== vlaunch up --profile cpu-tiny --model $MODEL"
NAME=demo-$(date +%s)
trap 'vlaunch down "$NAME" >/dev/null 2>&1 || true' EXIT
vlaunch up --profile cpu-tiny --model "$MODEL" --name "$NAME"
echo "== a completion through the OpenAI API"
vlaunch status "$NAME" --json | python -c '
import json, sys, urllib.request
from vlaunch.registry import Registry
job = json.load(sys.stdin)[0]
req = urllib.request.Request(job["endpoint"] + "/v1/completions", method="POST",
    data=json.dumps({"model": job["served_model_name"], "prompt": "Hello, my name is", "max_tokens": 8}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer " + Registry().key(job["name"])})
answer = json.load(urllib.request.urlopen(req, timeout=60))
print("completion:", repr(answer["choices"][0]["text"]), "| usage:", answer["usage"])'
echo "== vlaunch status"
vlaunch status "$NAME"
echo "== vlaunch down $NAME"
vlaunch down "$NAME"
trap - EXIT
PGID=$(vlaunch status "$NAME" --json --no-refresh | python -c 'import json,sys; print(json.load(sys.stdin)[0]["native_id"])')
LEFT=$(ps -e -o pgid=,stat= | awk -v g="$PGID" '$1 == g && $2 !~ /^Z/' | wc -l)
echo "processes left in the job's group: $LEFT"
[ "$LEFT" -eq 0 ]
