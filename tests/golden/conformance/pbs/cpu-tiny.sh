#!/bin/bash
#PBS -N conformance
#PBS -l select=1
#PBS -l walltime=00:30:00
#PBS -j oe
#PBS -o /srv/vlaunch/runs/conformance/pbs.out
# vlaunch job conformance: profile cpu-tiny, backend pbs
VLAUNCH_RUN_DIR=/srv/vlaunch/runs/conformance
cd -- "$VLAUNCH_RUN_DIR" || exit 1
rm -f exit_code signalled lost rendezvous.json
exec >>"$VLAUNCH_RUN_DIR/server.log" 2>&1
echo "vlaunch: job starting on $(hostname) at $(date '+%a %b %e %T %Z %Y (epoch %s, local %m-%d %T)')"
if command -v nvidia-smi >/dev/null 2>&1; then echo "vlaunch: GPUs: $(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | paste -sd, -)"; fi
echo "vlaunch: PBS job ${PBS_JOBID:-?} in queue ${PBS_QUEUE:-?}"
# environment
export HF_HUB_OFFLINE=1
export VLLM_CPU_KVCACHE_SPACE=1
export VLLM_CACHE_ROOT="$HOME"/.cache/vlaunch/vllm
# server
VLAUNCH_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
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
vlaunch_own_group() {
  read -r s <"/proc/$$/stat"; set -- ${s##*) }; VLAUNCH_GROUP=$3; VLAUNCH_SPARED=" $$ "
  [ "$VLAUNCH_GROUP" = "$$" ] && return 0
  VLAUNCH_GROUP=""
  [ -n "${PBS_JOBID:-}" ] && [ "$3" = "$2" ] && read -r s 2>/dev/null <"/proc/$2/stat" || return 0
  set -- ${s##*) }; [ "$4" = "$3" ] || return 0
  VLAUNCH_GROUP=$3; VLAUNCH_SPARED=" $$ $VLAUNCH_GROUP "
}
vlaunch_end_group() {
  [ -n "$VLAUNCH_GROUP" ] && vlaunch_others || return 0
  echo "vlaunch: ending processes the server left:$VLAUNCH_OTHERS"
  kill -TERM $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 5; i++)); do vlaunch_others || return 0; sleep 0.2; done
  echo "vlaunch: killing processes that outlived SIGTERM:$VLAUNCH_OTHERS"
  kill -KILL $VLAUNCH_OTHERS 2>/dev/null
  for ((i = 0; i < 10; i++)); do vlaunch_others || return 0; sleep 0.2; done
}
vlaunch_vital() {
  for d in /proc/[0-9]*; do
    case " ${VLAUNCH_VITAL:-} " in *" ${d#/proc/}:"*) continue ;; esac
    read -r s 2>/dev/null <"$d/stat" || continue
    set -- ${s##*) }
    [ "$2" = "$VLAUNCH_PID" ] && [ "$1" != Z ] || continue
    read -r -d '' t 2>/dev/null <"$d/cmdline"
    t=${t%% *}; case "$t" in VLLM::*) VLAUNCH_VITAL="${VLAUNCH_VITAL:-} ${d#/proc/}:${t#VLLM::}" ;; esac
  done
}
vlaunch_lost() {
  for v in $VLAUNCH_VITAL; do
    w=${v#*:}; case $w in node-*@*) [ -e "${w%@*}/ended" ] && { VLAUNCH_LOST=$v; return 0; } ;; esac
    read -r s 2>/dev/null <"/proc/${v%%:*}/stat" && set -- ${s##*) } && [ "$1" != Z ] && continue
    VLAUNCH_LOST=$v; return 0
  done
  return 1
}
vlaunch_end_server() {
  local what=${VLAUNCH_LOST#*:} pid=${VLAUNCH_LOST%%:*} why code text
  case $what in
    node-*@*)
      why="the engines on ${what#*@} (${what%@*}, launcher pid $pid) ended"
      read -r code text 2>/dev/null <"${what%@*}/exit_code" \
        || read -r code text 2>/dev/null <"${what%@*}/ended" && why="$why: ${text:-status $code}" ;;
    *) why="vLLM's $what (pid $pid) died while the server ran" ;;
  esac
  echo "vlaunch: $why; ending the server"
  echo "1 $why; vlaunch ended the server" >lost
  kill -TERM "$VLAUNCH_PID" 2>/dev/null
  for ((i = 0; i < 3; i++)); do kill -0 "$VLAUNCH_PID" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$VLAUNCH_PID" 2>/dev/null
}
vlaunch_guard() {
  trap '' TERM INT HUP
  exec 9<> <(:)
  local tick=0 watched="" ending=""
  while read -r s 2>/dev/null <"/proc/$$/stat" && set -- ${s##*) } && [ "$1" != Z ]; do
    read -rt 0.5 -u 9
    [ -n "$ending" ] || [ -e signalled ] && continue  # the server is being stopped
    if vlaunch_lost; then
      # A stop that was asked for (down, the scheduler's signal) has a moment to say so; a follower whose
      # own script was not signalled was not asked.
      w=${VLAUNCH_LOST#*:}; case $w in node-*@*) [ -e "${w%@*}/signalled" ] ;; esac && read -rt 0.5 -u 9
      [ -e signalled ] || { ending=1; vlaunch_end_server; }
      continue
    fi
    (( tick++ < 20 || tick % 10 == 0 )) && vlaunch_vital
    [ -n "$VLAUNCH_VITAL" ] && [ "$VLAUNCH_VITAL" != "$watched" ] && echo "vlaunch: the guard watches$VLAUNCH_VITAL"
    watched=$VLAUNCH_VITAL
  done
  echo "vlaunch: the job script was killed; its guard ends the server"
  VLAUNCH_SPARED="$VLAUNCH_SPARED$BASHPID "
  vlaunch_end_group
  echo "? the job script was killed before the server ended; its guard stopped the server" >exit_code
}
vlaunch_own_group
python3 -m vllm.entrypoints.openai.api_server --model org/model --served-model-name tiny --host 127.0.0.1 --port "$VLAUNCH_PORT" --api-server-count 1 --enforce-eager --max-num-seqs 16 --max-model-len 512 --dtype float32 --config /srv/vlaunch/runs/conformance/api_key.yaml &
VLAUNCH_PID=$!
vlaunch_guard & VLAUNCH_GUARD=$!
printf '{"host": "%s", "port": %s, "pid": %s}\n' "$(hostname)" "$VLAUNCH_PORT" "$VLAUNCH_PID" >rendezvous.json.tmp && mv -f rendezvous.json.tmp rendezvous.json
trap 'echo "TERM $SECONDS" >signalled; kill -TERM "$VLAUNCH_PID" 2>/dev/null' TERM
trap 'echo "INT $SECONDS" >signalled; kill -TERM "$VLAUNCH_PID" 2>/dev/null' INT
wait "$VLAUNCH_PID"; VLAUNCH_RC=$?
while kill -0 "$VLAUNCH_PID" 2>/dev/null; do wait "$VLAUNCH_PID"; VLAUNCH_RC=$?; done
kill -KILL "$VLAUNCH_GUARD" 2>/dev/null; wait "$VLAUNCH_GUARD" 2>/dev/null
vlaunch_end_group
echo "vlaunch: server exited with status $VLAUNCH_RC at $(date)"
if [ -e lost ]; then VLAUNCH_RC=1; cat lost >exit_code; elif [ "$VLAUNCH_RC" = 0 ] && [ ! -e signalled ]; then VLAUNCH_RC=1; echo "1 the server stopped by itself with status 0, unasked (vLLM does so when its engine dies)" >exit_code; else echo "$VLAUNCH_RC" >exit_code; fi
exit "$VLAUNCH_RC"
