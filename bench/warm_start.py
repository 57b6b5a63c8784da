"""Cold versus warm start: time to ready of the same profile started twice on one compile cache.

Each start is a real ``vlaunch up`` (then ``vlaunch down``) into a compile cache folder that starts
empty, so the first start compiles and the second can load what the first saved (compiling is asked for:
``vllm.enforce_eager=false``, which ``cpu-tiny`` turns off). For each start it
prints the time ``vlaunch up`` took to report ready and what vLLM's log says about its compile cache
(compiled and saved, or loaded). Results go to docs/benchmarks.md by hand, with the machine and date.

    python bench/warm_start.py --profile cpu-tiny --model /tmp/vlaunch-tiny
    python bench/warm_start.py --profile turbo --model ~/model --vllm-args "--load-format dummy"
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: vLLM log lines that say whether a start compiled or loaded (vLLM 0.26 and 0.32 wordings).
_COMPILE_LINES = re.compile(r"saved AOT compiled function|Directly load|torch\.compile takes|Compiling a graph"
                            r"|Using cache directory|Compiling model again")


def _vlaunch(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vlaunch", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_once(name: str, args: argparse.Namespace, cache: Path) -> dict:
    """One ``vlaunch up``/``down`` cycle; returns seconds to ready and the log's compile-cache lines."""
    up_args = ["up", "-p", args.profile, "-m", args.model, "--name", name, "--json",
               "--set", f"server.compile_cache={cache}", "--set", "vllm.enforce_eager=false"]
    if args.vllm_args:
        up_args += ["--vllm-args", args.vllm_args]
    started = time.monotonic()
    up = _vlaunch(*up_args)
    seconds = time.monotonic() - started
    logs = _vlaunch("logs", name).stdout
    _vlaunch("down", name)
    if up.returncode != 0:
        raise SystemExit(f"vlaunch up failed: {up.stderr.strip()}")
    lines = [line.strip()[:200] for line in logs.splitlines() if _COMPILE_LINES.search(line)]
    return {"name": name, "ready_s": round(seconds, 1), "compile_log": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--vllm-args", default="", help="extra vLLM flags for both starts")
    parser.add_argument("--starts", type=int, default=2, help="starts on the same cache (the first is cold)")
    parser.add_argument("--cache", type=Path, help="compile cache folder (default: a new empty one)")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="vlaunch-warm-"))
    stamp = time.strftime("%H%M%S")
    results = [start_once(f"warm-{stamp}-{i}", args, cache) for i in range(args.starts)]
    for i, result in enumerate(results):
        kind = "cold" if i == 0 and not args.cache else "warm"
        print(f"start {i + 1} ({kind}): ready after {result['ready_s']} s")
        for line in result["compile_log"]:
            print(f"    {line}")
    print(json.dumps({"profile": args.profile, "cache": str(cache), "starts": results}))


if __name__ == "__main__":
    main()
