"""One node versus two: time to ready and output tokens/s of the same two data-parallel engines.

On the Slurm rig's namespace hosts (scripts/rig/hosts.sh, partition "hosts"), with the real CPU vLLM
serving the tiny model: the same profile as one node with both engines, then as two nodes with one
engine each (vLLM's native multi-node data parallelism), alternating for ``--rounds`` rounds so that
both see the same machine. Each start is a real ``vlaunch up -b slurm`` (time to ready as ``up``
reports it), then ``vlaunch bench`` (vLLM's serving benchmark), then ``vlaunch down``. The point is
the launch path, not the figure: both layouts share this machine's CPUs. Results go to
docs/benchmarks.md by hand, with the machine and date.

    python bench/multinode.py --model /tmp/vlaunch-tiny --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: The two layouts: (label, overrides).
LAYOUTS = (("1 node x 2 engines", ["--set", "resources.nodes=1"]),
           ("2 nodes x 1 engine", ["--set", "resources.nodes=2"]))
COMMON = ["-b", "slurm", "-p", "cpu-tiny", "--set", "vllm.data_parallel_size=2", "--set", 'server.host="0.0.0.0"',
          "--set", 'backend.slurm.partition="hosts"',
          "--set", "server.command=" + json.dumps(["python3", "-m", "vlaunch.testing.vllm_cli", "serve"])]


def _vlaunch(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlaunch", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def measure(name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    """Start, benchmark and stop one job; seconds to ready and the benchmark's output tokens/s."""
    started = time.monotonic()
    up = _vlaunch("up", *COMMON, *overrides, "-m", args.model, "--name", name)
    ready = time.monotonic() - started
    try:
        if up.returncode != 0:
            raise SystemExit(f"{name}: up failed: {up.stderr.strip().splitlines()[-1:]}")
        bench = _vlaunch("bench", name, "--json", "--num-prompts", str(args.num_prompts), "--input-len", "32",
                         "--output-len", str(args.output_len), "--concurrency", str(args.concurrency), "--seed", "1")
        if bench.returncode != 0:
            raise SystemExit(f"{name}: bench failed: {bench.stderr.strip()}")
        result = json.loads(bench.stdout)
        if result["status"] != "complete":
            raise SystemExit(f"{name}: benchmark {result['status']}: {result['errors']}")
    finally:
        _vlaunch("down", name)
        _vlaunch("forget", name)
    return {"ready_s": ready, "output_tps": result["metrics"]["output_throughput"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the tiny model's directory")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    seen: dict[str, list[dict]] = {label: [] for label, _ in LAYOUTS}
    for round_ in range(args.rounds):
        for index, (label, overrides) in enumerate(LAYOUTS):
            figures = measure(f"mn-bench-{os.getpid()}-{round_}-{index}", overrides, args)
            seen[label].append(figures)
            print(f"round {round_ + 1}, {label}: ready in {figures['ready_s']:.1f} s,"
                  f" {figures['output_tps']:.1f} output tokens/s", flush=True)
    base = LAYOUTS[0][0]
    print("\n| layout | time to ready (median) | output tokens/s (median) | tokens/s vs one node |")
    print("|---|---:|---:|---:|")
    for label, runs in seen.items():
        ready = statistics.median(r["ready_s"] for r in runs)
        tps = statistics.median(r["output_tps"] for r in runs)
        ratio = tps / statistics.median(r["output_tps"] for r in seen[base])
        print(f"| {label} | {ready:.1f} s | {tps:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
