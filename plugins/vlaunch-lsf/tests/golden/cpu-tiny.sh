#!/bin/bash
#BSUB -J conformance
#BSUB -W 0:30
#BSUB -n 1
#BSUB -R 'span[ptile=1]'
#BSUB -o /srv/vlaunch/runs/conformance/lsf.out
#BSUB -e /srv/vlaunch/runs/conformance/lsf.err
# vlaunch job conformance: profile cpu-tiny, backend lsf
VLAUNCH_RUN_DIR=/srv/vlaunch/runs/conformance
cd -- "$VLAUNCH_RUN_DIR" || exit 1
exec >>"$VLAUNCH_RUN_DIR/server.log" 2>&1
echo "vlaunch: job starting on $(hostname) at $(date)"
# environment
export HF_HUB_OFFLINE=1
export VLLM_CPU_KVCACHE_SPACE=1
export VLLM_CACHE_ROOT="$HOME"/.cache/vlaunch/vllm
# server
VLAUNCH_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
python3 -m vllm.entrypoints.openai.api_server --model org/model --served-model-name tiny --host 127.0.0.1 --port "$VLAUNCH_PORT" --max-num-seqs 16 --max-model-len 512 --dtype bfloat16 --config /srv/vlaunch/runs/conformance/api_key.yaml &
VLAUNCH_PID=$!
printf '{"host": "%s", "port": %s, "pid": %s}\n' "$(hostname)" "$VLAUNCH_PORT" "$VLAUNCH_PID" >rendezvous.json.tmp && mv -f rendezvous.json.tmp rendezvous.json
trap 'kill -TERM "$VLAUNCH_PID" 2>/dev/null' TERM INT
wait "$VLAUNCH_PID"; VLAUNCH_RC=$?
while kill -0 "$VLAUNCH_PID" 2>/dev/null; do wait "$VLAUNCH_PID"; VLAUNCH_RC=$?; done
echo "$VLAUNCH_RC" >exit_code
echo "vlaunch: server exited with status $VLAUNCH_RC at $(date)"
exit "$VLAUNCH_RC"
