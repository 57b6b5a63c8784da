"""The router's cost: throughput through vLLM's router versus the same replicas hit directly, and the
latency the router adds to one request.

One group of real CPU vLLM replicas (``vlaunch up --replicas N``, local backend, the tiny model), kept up
for the whole run. On a 2-core machine use one replica (the default: a group of one, with ``--keep 1``):
the router in front of one server against that server directly. Several replicas on two cores share them
with each other and with the benchmark clients, and that contention, not the router, decides the figures
(seen: 0.56x to 1.46x from one round to the next). Each round, in turn: vLLM's serving benchmark (``vlaunch bench``) against the group's
router at concurrency C, and against every replica directly and at the same time at C/N each (their
output tokens/s summed); then ``--requests`` one-token completions one after another, alternating
between the router and a replica (median milliseconds each). Rounds alternate the order, so both see
the same machine. The point is the router's overhead as a ratio measured in one run. Results go to
docs/benchmarks.md by hand, with the machine and date.

    PATH=.venv/bin:$PATH python bench/replicas.py --model /tmp/vlaunch-tiny --rounds 3

``--backend`` and ``--set`` place the group elsewhere, e.g. the router as its own Slurm job
(``--set replicas.router=\"job\"``, see docs/benchmarks.md for the rig's settings).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from vlaunch.group import Groups

COMMON = ["-p", "cpu-tiny", "--keep", "1",
          "--set", "server.command=" + json.dumps(["python3", "-m", "vlaunch.testing.vllm_cli", "serve"])]
#: Several CPU vLLMs on one machine: unbound threads (by default each binds its threads to the same core).
UNBOUND = ["--set", 'environment.variables.VLLM_CPU_OMP_THREADS_BIND="nobind"']


def _vlaunch(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlaunch", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _bench(name: str, concurrency: int, args: argparse.Namespace) -> float:
    """Output tokens/s of vLLM's serving benchmark against job or group ``name``."""
    run = _vlaunch("bench", name, "--json", "--num-prompts", str(args.num_prompts), "--input-len", "32",
                   "--output-len", str(args.output_len), "--concurrency", str(concurrency), "--seed", "1")
    result = json.loads(run.stdout) if run.returncode == 0 else {"status": run.stderr.strip()}
    if result["status"] != "complete":
        raise SystemExit(f"{name}: benchmark {result['status']}: {result.get('errors')}")
    return result["metrics"]["output_throughput"]


def _latency_ms(url: str, key: str) -> float:
    body = json.dumps({"model": "tiny", "prompt": "Hello", "max_tokens": 1}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", data=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return 1000 * (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the tiny model's directory")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--backend", default="local", help="where the replicas run (default: local)")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE",
                        help="more settings for the group, as vlaunch up takes them (e.g. replicas.router=\"job\")")
    args = parser.parse_args()
    group = f"router-bench-{os.getpid()}"
    up = _vlaunch("up", *COMMON, *(UNBOUND if args.replicas > 1 else []), "-b", args.backend, "-m", args.model,
                  *(word for value in args.sets for word in ("--set", value)), "--replicas", str(args.replicas),
                  "--name", group, "--json")
    if up.returncode != 0:
        raise SystemExit(f"up failed: {up.stderr.strip()}")
    state = json.loads(up.stdout)
    members = state["serving"]
    try:
        status = json.loads(_vlaunch("status", "--json", group).stdout)[0]
        router, key = f"http://{status['router_host']}:{status['router_port']}", Groups().key(group)
        first = next(r for r in status["replicas"] if r["name"] == members[0])
        direct_url = f"http://{first['host']}:{first['port']}"
        rows = []
        for round_ in range(args.rounds):
            order = ("router", "direct") if round_ % 2 == 0 else ("direct", "router")
            tps = {}
            for way in order:
                if way == "router":
                    tps[way] = _bench(group, args.concurrency, args)
                else:
                    share = max(1, args.concurrency // len(members))
                    with ThreadPoolExecutor(len(members)) as pool:
                        tps[way] = sum(pool.map(lambda m, c=share: _bench(m, c, args), members))
            through, direct = [], []
            for _ in range(args.requests):
                through.append(_latency_ms(router, key))
                direct.append(_latency_ms(direct_url, key))
            rows.append((tps["router"], tps["direct"], statistics.median(through), statistics.median(direct)))
            print(f"round {round_ + 1} ({' then '.join(order)}): router {tps['router']:.1f} tok/s, replicas directly"
                  f" {tps['direct']:.1f} tok/s ({tps['router'] / tps['direct']:.2f}x); one request {rows[-1][2]:.1f} ms"
                  f" through the router, {rows[-1][3]:.1f} ms directly", flush=True)
    finally:
        _vlaunch("down", group)
    print("\n| round | through the router (tok/s) | replicas directly, summed (tok/s) | ratio |"
          " one request via router (median ms) | directly (median ms) | added |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for index, (via, direct, lat_via, lat_direct) in enumerate(rows, 1):
        print(f"| {index} | {via:.1f} | {direct:.1f} | {via / direct:.2f}x | {lat_via:.1f} | {lat_direct:.1f} |"
              f" {lat_via - lat_direct:+.1f} ms |")
    ratios = [via / direct for via, direct, _, _ in rows]
    added = [lat_via - lat_direct for _, _, lat_via, lat_direct in rows]
    print(f"\nmedian ratio {statistics.median(ratios):.2f}x; median added latency {statistics.median(added):+.1f} ms")


if __name__ == "__main__":
    main()
