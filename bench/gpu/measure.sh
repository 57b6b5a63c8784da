#!/usr/bin/env bash
# Measure vlaunch profiles on the lent GPU machine with vlaunch's own commands (local backend, `vlaunch
# up`, `vlaunch bench`, `vlaunch down`), as a user would. Figures go to docs/benchmarks.md.
#
#   bash bench/gpu/measure.sh PROFILE[:EXTRA_VLLM_FLAGS] ...     (PHASES="8:300 128:2400 512:4096" by default)
#
# A phase C:N runs N prompts at concurrency C (random 512 in / 256 out, ignore-eos): N is chosen so that
# each phase lasts 30 s or more on one H200. The server is started with vLLM's `serve` command (module
# form `python3 -m vllm.entrypoints.cli.main serve`), whose API server count vlaunch always sets
# (`python3 -m vllm.entrypoints.openai.api_server` starts one API server whatever it is told).
# `vlaunch bench` samples the server once a second (running/waiting requests, per-process CPU, GPU use);
# a /metrics snapshot every 2 s of each phase is kept for the advise rule's tests.
#
# Expects the machine staged by the team's GPU recipe (vLLM 0.26.0 unpacked in $VP, the synthetic
# Qwen3-1.7B-shaped model in $MODEL, served with --load-format dummy) and wheels of vlaunch, click
# and pluggy in .gpu/wheels (that machine has no package index).
# SETS="key=value ..." adds --set settings to every `up` (the 1-GPU form of turbo:
# SETS="vllm.data_parallel_size=1 resources.gpus_per_node=1"). Results: $OUT/<job>-c<N>.json,
# $OUT/<job>.up.log, $OUT/<job>-c<N>.metrics.{1,2,...}.txt (and .metrics.times); a summary line per benchmark. PHASES="" starts
# and stops without benchmarks.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PHASES=${PHASES-8:300 128:2400 512:4096}
VP=${VP:-$HOME/vp}; MODEL=${MODEL:-$HOME/model}; SITE=${SITE:-$HOME/vlaunch-site}
if [ ! -d "$SITE" ]; then
  mkdir -p "$SITE" && for w in .gpu/wheels/*.whl; do python3 -m zipfile -e "$w" "$SITE"; done
fi
export PYTHONPATH=$SITE:$VP PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# Never NVLink multicast on this shared host; flashinfer is not in the staged payload.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 VLLM_ALLREDUCE_USE_SYMM_MEM=0
export VLLM_USE_FLASHINFER_SAMPLER=0
vlaunch() { python3 -m vlaunch "$@"; }
# snap URL KEYFILE PREFIX: a /metrics snapshot every 2 s (PREFIX.metrics.N.txt; PREFIX.metrics.times holds
# "N epoch-seconds" per snapshot) until killed.
snap() {
  exec python3 - "$@" <<'PY'
import sys, time, urllib.request as u
url, key, prefix = sys.argv[1], open(sys.argv[2]).read().strip(), sys.argv[3]
n = 0
while True:
    n += 1
    body = u.urlopen(u.Request(url + "/metrics", headers={"Authorization": "Bearer " + key}), timeout=10).read()
    open(f"{prefix}.metrics.{n}.txt", "wb").write(body)
    with open(f"{prefix}.metrics.times", "a") as times:
        times.write(f"{n} {time.time():.3f}\n")
    time.sleep(2)
PY
}
SERVER='server.command=["python3", "-m", "vllm.entrypoints.cli.main", "serve"]'

for spec in "$@"; do
  profile=${spec%%:*}; extra=""; [ "$spec" != "$profile" ] && extra=${spec#*:}
  job=gpu-$profile-$(date +%s)
  start=$(date +%s.%N)
  sets=(); for kv in ${SETS:-}; do sets+=(--set "$kv"); done
  vlaunch up -p "$profile" --model "$MODEL" --name "$job" --no-check-flags --set "$SERVER" "${sets[@]}" \
    --vllm-args "--load-format dummy $extra" >"$OUT/$job.up.log" 2>&1
  rc=$?
  echo "UP $job rc=$rc ready_after=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$start}")s flags=[$extra]"
  grep -E "passed|error" "$OUT/$job.up.log" | sed 's/^/   /'
  [ $rc -eq 0 ] || { vlaunch logs "$job" | tail -30; vlaunch down "$job" >/dev/null 2>&1; continue; }
  key=$(python3 -c 'import sys; from vlaunch.paths import state_dir; print(state_dir() / "jobs" / (sys.argv[1] + ".key"))' "$job")
  url=$(vlaunch status --json "$job" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["endpoint"])')
  for phase in $PHASES; do
    c=${phase%%:*}; n=${phase#*:}
    snap "$url" "$key" "$OUT/$job-c$c" & snapper=$!
    vlaunch bench "$job" -w throughput --num-prompts "$n" --input-len 512 --output-len 256 --concurrency "$c" \
      --seed 0 --json >"$OUT/$job-c$c.json" 2>"$OUT/$job-c$c.err"
    kill "$snapper" 2>/dev/null; wait
    python3 - "$OUT/$job-c$c.json" "$job" "$c" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1])); m, s = d["metrics"], d.get("server", {})
    cpu = s.get("cpu_busiest_cores", {})
    print(f"BENCH {sys.argv[2]} c={sys.argv[3]} out_tok/s={m['output_throughput']:.0f} "
          f"ttft_med_ms={m.get('median_ttft_ms', float('nan')):.0f} tpot_med_ms={m.get('median_tpot_ms', float('nan')):.1f} "
          f"completed={m.get('completed')} failed={m.get('failed')} duration_s={m.get('duration', 0):.1f} "
          f"running={s.get('running')} waiting={s.get('waiting')} gpu%={s.get('gpu_util_pct')} W={s.get('gpu_power_w')} "
          f"cpu api={cpu.get('api_server')} engine={cpu.get('engine_core')} client={cpu.get('client')}")
except Exception as exc:
    print(f"BENCH {sys.argv[2]} c={sys.argv[3]} failed: {exc}")
PY
  done
  vlaunch down "$job" | sed 's/^/   /'
done
