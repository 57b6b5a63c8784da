#!/bin/bash
# vlaunch job default-golden: profile default, backend local
VLAUNCH_RUN_DIR=/srv/vlaunch/runs/default-golden
cd -- "$VLAUNCH_RUN_DIR" || exit 1
rm -f exit_code signalled rendezvous.json
exec >>"$VLAUNCH_RUN_DIR/server.log" 2>&1
echo "vlaunch: job starting on $(hostname) at $(date)"
# environment
export VLLM_CACHE_ROOT="$HOME"/.cache/vlaunch/vllm
# server
VLAUNCH_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
vllm serve org/model --host 127.0.0.1 --port "$VLAUNCH_PORT" --tensor-parallel-size 4 --enforce-eager --config /srv/vlaunch/runs/default-golden/api_key.yaml &
VLAUNCH_PID=$!
printf '{"host": "%s", "port": %s, "pid": %s}\n' "$(hostname)" "$VLAUNCH_PORT" "$VLAUNCH_PID" >rendezvous.json.tmp && mv -f rendezvous.json.tmp rendezvous.json
trap 'echo "TERM $SECONDS" >signalled; kill -TERM "$VLAUNCH_PID" 2>/dev/null' TERM
trap 'echo "INT $SECONDS" >signalled; kill -TERM "$VLAUNCH_PID" 2>/dev/null' INT
wait "$VLAUNCH_PID"; VLAUNCH_RC=$?
while kill -0 "$VLAUNCH_PID" 2>/dev/null; do wait "$VLAUNCH_PID"; VLAUNCH_RC=$?; done
vlaunch_others() {
  VLAUNCH_OTHERS=""
  for d in /proc/[0-9]*; do
    read -r s 2>/dev/null <"$d/stat" || continue
    set -- ${s##*) }
    [ "$3" = "$VLAUNCH_GROUP" ] && [ "$1" != Z ] || continue
    case "$VLAUNCH_SPARED" in *" ${d#/proc/} "*) ;; *) VLAUNCH_OTHERS="$VLAUNCH_OTHERS ${d#/proc/}" ;; esac
  done
  [ -n "$VLAUNCH_OTHERS" ]
}
vlaunch_end_group() {
  trap '' TERM INT
  read -r s <"/proc/$$/stat"; set -- ${s##*) }; VLAUNCH_GROUP=$3; VLAUNCH_SPARED=" $$ "
  if [ "$VLAUNCH_GROUP" != "$$" ]; then
    [ -n "${PBS_JOBID:-}" ] && [ "$VLAUNCH_GROUP" = "$2" ] && read -r s 2>/dev/null <"/proc/$2/stat" || return 0
    set -- ${s##*) }; [ "$4" = "$VLAUNCH_GROUP" ] || return 0
    VLAUNCH_SPARED=" $$ $VLAUNCH_GROUP "
  fi
  vlaunch_others || return 0
  echo "vlaunch: ending processes the server left:$VLAUNCH_OTHERS"
  kill -TERM $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 15; i++)); do vlaunch_others || return 0; sleep 0.2; done
  echo "vlaunch: killing processes that outlived SIGTERM:$VLAUNCH_OTHERS"
  kill -KILL $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 10; i++)); do vlaunch_others || return 0; sleep 0.2; done
}
vlaunch_end_group
echo "$VLAUNCH_RC" >exit_code
echo "vlaunch: server exited with status $VLAUNCH_RC at $(date)"
exit "$VLAUNCH_RC"
