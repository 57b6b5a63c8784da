#!/usr/bin/env bash
# Measure vlaunch profiles on the lent GPU machine with vlaunch's own commands (local backend, `vlaunch
# up`, `vlaunch bench`, `vlaunch down`), as a user would. Figures go to docs/benchmarks.md.
#
#   bash bench/gpu/measure.sh PROFILE[:EXTRA_VLLM_FLAGS] ...     (CONCS="8 64 512" by default)
#
# Expects the machine staged by the team's GPU recipe (vLLM 0.26.0 unpacked in $VP, the synthetic
# Qwen3-1.7B-shaped model in $MODEL, served with --load-format dummy) and wheels of vlaunch, click
# and pluggy in .gpu/wheels (that machine has no package index). Results: $OUT/<job>-c<N>.json,
# $OUT/<job>.up.log; a summary line per benchmark. CONCS="" starts and stops without benchmarks.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
CONCS=${CONCS-8 64 512}
VP=${VP:-$HOME/vp}; MODEL=${MODEL:-$HOME/model}; SITE=${SITE:-$HOME/vlaunch-site}
if [ ! -d "$SITE" ]; then
  mkdir -p "$SITE" && for w in .gpu/wheels/*.whl; do python3 -m zipfile -e "$w" "$SITE"; done
fi
export PYTHONPATH=$SITE:$VP PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
# Never NVLink multicast on this shared host; flashinfer is not in the staged payload.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 VLLM_ALLREDUCE_USE_SYMM_MEM=0
export VLLM_USE_FLASHINFER_SAMPLER=0
vlaunch() { python3 -m vlaunch "$@"; }
SERVER='server.command=["python3", "-m", "vllm.entrypoints.openai.api_server"]'

for spec in "$@"; do
  profile=${spec%%:*}; extra=""; [ "$spec" != "$profile" ] && extra=${spec#*:}
  job=gpu-$profile-$(date +%s)
  start=$(date +%s.%N)
  vlaunch up -p "$profile" --model "$MODEL" --name "$job" --no-check-flags --set "$SERVER" \
    --vllm-args "--load-format dummy $extra" >"$OUT/$job.up.log" 2>&1
  rc=$?
  echo "UP $job rc=$rc ready_after=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N)-$start}")s flags=[$extra]"
  grep -E "passed|error" "$OUT/$job.up.log" | sed 's/^/   /'
  [ $rc -eq 0 ] || { vlaunch logs "$job" | tail -30; vlaunch down "$job" >/dev/null 2>&1; continue; }
  for c in $CONCS; do
    n=$(( c < 16 ? 32 : 2 * c ))
    vlaunch bench "$job" -w throughput --num-prompts "$n" --input-len 512 --output-len 256 --concurrency "$c" \
      --seed 0 --json >"$OUT/$job-c$c.json" 2>"$OUT/$job-c$c.err"
    python3 - "$OUT/$job-c$c.json" "$job" "$c" <<'PY'
import json, sys
try:
    m = json.load(open(sys.argv[1]))["metrics"]
    print(f"BENCH {sys.argv[2]} c={sys.argv[3]} out_tok/s={m['output_throughput']:.0f} "
          f"ttft_med_ms={m.get('median_ttft_ms', float('nan')):.0f} tpot_med_ms={m.get('median_tpot_ms', float('nan')):.1f} "
          f"completed={m.get('completed')}")
except Exception as exc:
    print(f"BENCH {sys.argv[2]} c={sys.argv[3]} failed: {exc}")
PY
  done
  vlaunch down "$job" | sed 's/^/   /'
done
