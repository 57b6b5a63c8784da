"""Helpers shared by the tests (import them with ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE_VLLM = REPO / "tests" / "fakes" / "fake_vllm.py"
BIN = Path(sys.executable).parent


#: ``--set`` arguments that run a real CPU vLLM's model inside its EngineCore, with no worker process: the shape
#: vLLM has on one GPU (its "uni" executor), which the CPU build swaps for a worker process of its own unless
#: VLLM_ENABLE_V1_MULTIPROCESSING is 0. Ready about 14 s sooner on two cores (36-38 s instead of 49-52 s).
#: Tests that kill an engine or a worker, or watch data-parallel engines, keep the CPU build's own shape.
ENGINE_RUNS_MODEL = ["--set", "environment.variables.VLLM_ENABLE_V1_MULTIPROCESSING=0"]


def fake_command() -> str:
    """``--set`` value that makes the server command the fake vLLM."""
    return "server.command=" + json.dumps([sys.executable, str(FAKE_VLLM)])


def vlaunch(*args, env=None, timeout=600, input=None) -> subprocess.CompletedProcess:
    """Run the real `vlaunch` executable (exit codes, stderr and absence of tracebacks are then real)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "vlaunch"), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, input=input)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A failure reported as one line on stderr (besides indented progress lines), no traceback, non-zero exit."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("  ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def live_group_members(pgid: str) -> list[str]:
    """Live (non-zombie) processes of a process group on this machine."""
    out = subprocess.run(["ps", "-e", "-o", "pgid=,pid=,stat="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if line.split()[0] == str(pgid) and not line.split()[2].startswith("Z")]


def job_processes(run_dir: str) -> dict[int, tuple[int, str]]:
    """Live (non-zombie) processes of this machine working in ``run_dir`` (every process a job script
    starts inherits it) or below it (a multi-node job's followers work in ``node-K/``), as
    ``{pid: (parent pid, command line)}``. The rig's hosts share one process table."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            if cwd != run_dir and not cwd.startswith(run_dir + "/"):
                continue
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry)] = (int(fields[1]), command)
    return found


def completion_status(url: str, api_key: str | None, max_tokens: int = 1, timeout: float = 120,
                      headers: dict[str, str] | None = None) -> int:
    """The HTTP status of one completion of the tiny model at ``url`` (a server or a group's router), sent
    with ``headers`` besides the key."""
    import urllib.error
    import urllib.request

    body = json.dumps({"model": "tiny", "prompt": "Hello", "max_tokens": max_tokens, "ignore_eos": True}).encode()
    request = urllib.request.Request(f"{url}/v1/completions", data=body,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def group_key(name: str, env: dict | None = None) -> str:
    """The API key of replica group ``name`` (its clients' key), from the state directory of ``env``."""
    with open(os.path.join((env or os.environ)["VLAUNCH_STATE_DIR"], "groups", f"{name}.key")) as handle:
        return handle.read().strip()


def answered(record: dict) -> float:
    """Requests a job's server has finished, from its own /metrics (every finished_reason summed)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{record['host']}:{record['port']}/metrics", timeout=30) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("vllm:request_success_total{"))


@contextlib.contextmanager
def steady_clients(url: str, api_key: str, count: int, max_tokens: int = 1, join: float = 180,
                   headers: dict[str, str] | None = None):
    """``count`` threads sending completions to ``url`` one after another until the block ends; yields
    (every answer as (client number, status), the statuses that were not 200), both growing meanwhile."""
    import threading

    sent, failures, stop = [], [], threading.Event()

    def client(number):
        while not stop.is_set():
            status = completion_status(url, api_key, max_tokens, headers=headers)
            sent.append((number, status))
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield sent, failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(join)


def wait_until(predicate, timeout: float, interval: float = 0.5):
    """Call ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
