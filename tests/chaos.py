"""The chaos suite's one move: kill -9 one process of a running job, then hold vlaunch to its promise
(docs/lifecycle.md): within 5 s ``status`` says FAILED with the cause, and no process of the job is left.

Roles: ``server`` (vLLM's API server, the pid the job published), ``engine`` (its EngineCore), ``worker``
(a process the engine started) and ``script`` (the job script, the server's parent). The fake server's
"tree" shape (tests/fakes/fake_vllm.py) has all four, as the real CPU vLLM does (``VLLM::EngineCore``
and its ``VLLM::Worker``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime

from helpers import job_processes, vlaunch

__all__ = ["ROLES", "CAUSES", "FAKE_TREE", "kill_and_check", "kill_pid_and_check"]

ROLES = ("server", "engine", "worker", "script")
#: What ``status`` must say for each role once the job has ended (one of these words). A scheduler that
#: ends the job as soon as its script dies (Slurm) may settle it before the script's guard names the cause.
#: A dead engine (or worker, whose engine then dies) ends the server either way: vLLM's server exits by
#: itself, or the script's guard, seeing the EngineCore gone, ends it first.
_ENGINE_DIED = ("the server stopped by itself", "EngineCore (pid")
CAUSES = {"server": ("server exited with status 137 (SIGKILL, killed: ",), "engine": _ENGINE_DIED, "worker": _ENGINE_DIED,
          "script": ("the job script was killed", "FAILED: killed by signal 9")}
#: ``--set`` arguments that give the fake server vLLM's process shape, on every backend.
FAKE_TREE = ["--set", "environment.variables.FAKE_ENGINE=tree"]
_ENGINE = ("fake-engine", "EngineCore")
_WORKER = ("fake-worker", "VLLM::Worker")
#: The promise: how soon after the kill the job must read FAILED with nothing of it left.
PROMISE = 5.0


def _children(processes: dict[int, tuple[int, str]], parent: int) -> list[int]:
    return [pid for pid, (ppid, _) in processes.items() if ppid == parent]


def _pick(processes, parents, words) -> int:
    found = [pid for parent in parents for pid in _children(processes, parent)
             if any(word in processes[pid][1] for word in words)]
    assert found, f"no process matching {words} under {parents}: {processes}"
    return found[0]


def target(run_dir: str, role: str) -> int:
    """The pid that plays ``role`` in the job running in ``run_dir``."""
    server = json.loads(open(os.path.join(run_dir, "rendezvous.json")).read())["pid"]
    processes = job_processes(run_dir)
    assert server in processes, processes
    if role == "server":
        return server
    if role == "script":
        return processes[server][0]
    engine = _pick(processes, [server], _ENGINE)
    if role == "engine":
        return engine
    return _pick(processes, [server, engine], _WORKER)


def kill_and_check(name: str, role: str, env: dict | None = None) -> dict:
    """Kill -9 the ``role`` process of running job ``name``; assert the promise; return the record."""
    record = json.loads(vlaunch("status", "--json", name, env=env).stdout)[0]
    return kill_pid_and_check(name, target(os.path.realpath(record["run_dir"]), role), CAUSES[role], env, role)


def kill_pid_and_check(name: str, pid: int, causes: tuple[str, ...], env: dict | None = None,
                       what: str = "process") -> dict:
    """Kill -9 ``pid``, a process of running job ``name``; assert the promise (FAILED with one of
    ``causes`` in its reason, no process of the job left anywhere, both within :data:`PROMISE`).

    Times are those of vlaunch's own check (the record's ``updated_at`` when it turned FAILED) and of the
    first look at the process table that found nothing, not the end of the ``status`` call that reported
    it: a status command's own start-up is not part of the job's state."""
    record = json.loads(vlaunch("status", "--json", name, env=env).stdout)[0]
    assert record["state"] == "RUNNING", record
    run_dir = os.path.realpath(record["run_dir"])
    os.kill(pid, signal.SIGKILL)
    killed, seen, gone = time.time(), record, None
    # A scheduler may call the job ended while the script's guard is still stopping what it left.
    while time.time() - killed < PROMISE + 30:
        gone = gone or (None if job_processes(run_dir) else time.time())
        if gone and seen["state"] != "RUNNING":
            break
        time.sleep(0.2)
        seen = json.loads(vlaunch("status", "--json", name, env=env).stdout)[0]
    assert seen["state"] == "FAILED" and any(words in seen["reason"] for words in causes), (what, seen)
    assert gone, f"processes of the job left: {job_processes(run_dir)}"
    failed = datetime.fromisoformat(seen["updated_at"]).timestamp()
    took = max(failed, gone) - killed
    assert took < PROMISE, (f"kill -9 of the {what}: FAILED after {failed - killed:.1f} s, nothing left after"
                            f" {gone - killed:.1f} s")
    return seen
