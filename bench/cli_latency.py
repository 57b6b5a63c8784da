"""Benchmarks of vlaunch's own overheads (not timed tests; figures go to docs/benchmarks.md).

(a) Median wall time of `vlaunch render --profile turbo --backend local` (target < 150 ms).
(b) Readiness-detection latency: from the server's first 200 on /health (seen by an independent
    prober polling every 5 ms) to `vlaunch up` printing that the job is ready (target < 250 ms).
    The server is the fake one (tests/fakes/fake_vllm.py, /health delayed 3 s), or with --model the
    real CPU vLLM (cpu-tiny profile).

    python bench/cli_latency.py [--runs 30] [--ready-runs 5] [--model /path/to/tiny-llama]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VLAUNCH = str(Path(sys.executable).parent / "vlaunch")
FAKE = [sys.executable, str(REPO / "tests" / "fakes" / "fake_vllm.py")]


def render_times(runs: int) -> list[float]:
    """Wall seconds of each `vlaunch render` run."""
    argv = [VLAUNCH, "render", "--profile", "turbo", "--backend", "local", "--model", "m"]
    subprocess.run(argv, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def _first_health_200(url_file: Path, stop: threading.Event, seen: dict) -> None:
    while not stop.is_set():
        if url_file.exists():
            try:
                where = json.loads(url_file.read_text())
                with urllib.request.urlopen(f"http://127.0.0.1:{where['port']}/health", timeout=1) as response:
                    if response.status == 200:
                        seen["t"] = time.perf_counter()
                        return
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.005)


def readiness_latency(model: str | None, env: dict) -> float:
    """Seconds from the first /health 200 to `vlaunch up` saying ready."""
    name = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    args = ["up", "-p", "cpu-tiny", "--name", name, "--set", "readiness.probe_completion=false"]
    if model:
        args += ["--model", model]
    else:
        args += ["--model", "fake", "--set", "server.command=" + json.dumps(FAKE), "--no-check-flags"]
        env = {**env, "FAKE_HEALTH_DELAY": "3"}
    run_dir = Path(env["VLAUNCH_STATE_DIR"]) / "runs" / name
    stop, seen = threading.Event(), {}
    prober = threading.Thread(target=_first_health_200, args=(run_dir / "rendezvous.json", stop, seen), daemon=True)
    prober.start()
    proc = subprocess.Popen([VLAUNCH, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    ready_at = None
    for line in proc.stdout:
        if " is ready:" in line:
            ready_at = time.perf_counter()
    proc.wait()
    stop.set()
    subprocess.run([VLAUNCH, "down", name], capture_output=True, env=env)
    if ready_at is None or "t" not in seen:
        raise SystemExit(f"run failed (ready={ready_at}, first 200={seen.get('t')})")
    return ready_at - seen["t"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--ready-runs", type=int, default=5)
    parser.add_argument("--model", help="serve this model with the real CPU vLLM instead of the fake server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VLAUNCH_STATE_DIR": f"{tmp}/state", "VLAUNCH_CONFIG_DIR": f"{tmp}/config",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        os.chdir(tmp)
        renders = render_times(args.runs)
        latencies = [readiness_latency(args.model, env) for _ in range(args.ready_runs)]
    ms = lambda xs: ", ".join(f"{x * 1000:.0f}" for x in sorted(xs))  # noqa: E731
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"date: {date.today().isoformat()}")
    print(f"(a) render turbo/local: median {statistics.median(renders) * 1000:.0f} ms over {len(renders)} runs"
          f" (min {min(renders) * 1000:.0f}, max {max(renders) * 1000:.0f})")
    print(f"(b) readiness detection ({'real vLLM' if args.model else 'fake server'}): median "
          f"{statistics.median(latencies) * 1000:.0f} ms over {len(latencies)} runs ({ms(latencies)} ms)")


if __name__ == "__main__":
    main()
