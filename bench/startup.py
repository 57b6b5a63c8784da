"""Start-up cost of vlaunch's commands against the imports they cannot avoid (figures go to docs/benchmarks.md).

Each command and each reference (`python -c 'import click'`, `python -c 'import click, pydantic'`) runs
in turn, round after round, so a busy machine slows them alike; the report gives medians and the
ratios to the reference (targets: --help, completion and status at most 1.5x `import click`; render
at most 2x `import click` + `import pydantic`). A third reference validates one pydantic model, the
least that render does with its profile. Byte-compiled files are written and used, as in an installed
wheel (``PYTHONDONTWRITEBYTECODE`` is dropped for the runs).

    python bench/startup.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

VLAUNCH = str(Path(sys.executable).parent / "vlaunch")
COMPLETE = {"_VLAUNCH_COMPLETE": "bash_complete", "COMP_WORDS": "vlaunch up -p tu", "COMP_CWORD": "3"}
ONE_MODEL = "import click\nfrom pydantic import BaseModel\nclass M(BaseModel):\n    a: int\nM(a=1)"
CASES = {
    "import click": ([sys.executable, "-c", "import click"], {}),
    "import click, pydantic": ([sys.executable, "-c", "import click, pydantic"], {}),
    "click + one pydantic model": ([sys.executable, "-c", ONE_MODEL], {}),
    "vlaunch --help": ([VLAUNCH, "--help"], {}),
    "completion (up -p tu<TAB>)": ([VLAUNCH], COMPLETE),
    "vlaunch status (no jobs)": ([VLAUNCH, "status"], {}),
    "vlaunch render -p turbo": ([VLAUNCH, "render", "-p", "turbo", "-m", "m", "--run-root", "/runs"], {}),
    "status --no-refresh (3 jobs)": ([VLAUNCH, "status", "--no-refresh"], {"VLAUNCH_STATE_DIR": "{jobs}"}),
}
TARGETS = {"vlaunch --help": ("import click", 1.5), "completion (up -p tu<TAB>)": ("import click", 1.5),
           "vlaunch status (no jobs)": ("import click", 1.5), "vlaunch render -p turbo": ("import click, pydantic", 2),
           "click + one pydantic model": ("import click, pydantic", None),
           "status --no-refresh (3 jobs)": ("import click", None)}


def measure(rounds: int, env: dict) -> dict[str, list[float]]:
    """Wall seconds of every case, ``rounds`` times each, interleaved."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    jobs = Path(env["VLAUNCH_STATE_DIR"]).with_name("with-jobs")
    _three_jobs(jobs)
    cases = {name: (argv, {k: v.format(jobs=jobs) for k, v in extra.items()}) for name, (argv, extra) in CASES.items()}
    for argv, extra in cases.values():
        subprocess.run(argv, capture_output=True, env={**env, **extra}, check=True)  # warm the page cache
    for _ in range(rounds):
        for name, (argv, extra) in cases.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, env={**env, **extra}, check=True)
            times[name].append(time.perf_counter() - start)
    return times


def _three_jobs(state: Path) -> None:
    """A registry with three ended jobs, for a status that reads records."""
    from vlaunch.registry import JobRecord, Registry

    registry = Registry(state)
    for n in range(3):
        registry.create(JobRecord(name=f"job{n}", backend="local", profile="turbo", run_dir=f"/runs/job{n}",
                                  state="COMPLETED"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VLAUNCH_STATE_DIR": f"{tmp}/state", "VLAUNCH_CONFIG_DIR": f"{tmp}/config"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        times = measure(args.rounds, env)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"date: {date.today().isoformat()}, {args.rounds} interleaved rounds")
    for name, median in medians.items():
        line = f"{name:<28} median {median * 1000:5.0f} ms"
        if name in TARGETS:
            reference, target = TARGETS[name]
            ratio = median / medians[reference]
            line += f"  {ratio:.2f}x {reference}"
            line += f" (target <= {target}x: {'met' if ratio <= target else 'NOT met'})" if target else ""
        print(line)


if __name__ == "__main__":
    main()
