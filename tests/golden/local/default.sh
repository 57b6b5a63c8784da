#!/bin/bash
# vlaunch job default-golden: profile default, backend local
VLAUNCH_RUN_DIR=/srv/vlaunch/runs/default-golden
cd -- "$VLAUNCH_RUN_DIR" || exit 1
exec >>"$VLAUNCH_RUN_DIR/server.log" 2>&1
echo "vlaunch: job starting on $(hostname) at $(date)"
# environment
export VLLM_CACHE_ROOT="$HOME"/.cache/vlaunch/vllm
# server
VLAUNCH_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
vllm serve org/model --host 127.0.0.1 --port "$VLAUNCH_PORT" --tensor-parallel-size 4 --enforce-eager --config /srv/vlaunch/runs/default-golden/api_key.yaml &
VLAUNCH_PID=$!
printf '{"host": "%s", "port": %s, "pid": %s}\n' "$(hostname)" "$VLAUNCH_PORT" "$VLAUNCH_PID" >rendezvous.json.tmp && mv -f rendezvous.json.tmp rendezvous.json
trap 'kill -TERM "$VLAUNCH_PID" 2>/dev/null' TERM INT
wait "$VLAUNCH_PID"; VLAUNCH_RC=$?
while kill -0 "$VLAUNCH_PID" 2>/dev/null; do wait "$VLAUNCH_PID"; VLAUNCH_RC=$?; done
echo "$VLAUNCH_RC" >exit_code
echo "vlaunch: server exited with status $VLAUNCH_RC at $(date)"
exit "$VLAUNCH_RC"
