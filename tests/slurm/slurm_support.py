"""Helpers for the Slurm tests: the real rig's commands, and waiting on them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import BIN, fake_command, vlaunch, wait_until

__all__ = ["FAKE", "ALL_GPUS", "require_rig", "state_env", "squeue", "job_pids", "alive", "wait_until", "records",
           "record", "wait_for_record", "path_without"]

#: `up` arguments for the fast stand-in server on cpu-tiny.
FAKE = ["--backend", "slurm", "--profile", "cpu-tiny", "--model", "fake-model", "--set", fake_command(),
        "--no-check-flags"]
#: Four GPUs, the whole rig node: a second such job has to wait.
ALL_GPUS = ["--set", "resources.gpus_per_node=4", "--set", "vllm.data_parallel_size=4"]


def require_rig() -> None:
    """Fail (never skip) with the command to run when the Slurm rig is not up."""
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20).stdout
    except FileNotFoundError:
        out = ""
    if "is UP" not in out:
        pytest.fail("the Slurm test rig is not running: start it with `scripts/rig/slurm-up.sh` (as root)"
                    " or run the suite with `make test`", pytrace=False)


def state_env(root) -> dict:
    """Environment for `vlaunch` with its own state and config directories under ``root``."""
    return {"VLAUNCH_STATE_DIR": str(root / "state"), "VLAUNCH_CONFIG_DIR": str(root / "config")}


def squeue(job_id: str) -> tuple[str, str] | None:
    """(state, reason) of a job as the real squeue lists it, or None once it left squeue."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--Format=State:|,Reason:|"],
                         capture_output=True, text=True, timeout=20).stdout.strip()
    return tuple(out.split("|")[:2]) if out else None


def job_pids(job_id: str) -> list[int]:
    """Pids Slurm tracks for a running job (all of its processes, from the batch shell down)."""
    out = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True, timeout=20).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split() and line.split()[0].isdigit()]


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as dead (slow orphan reaping here)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def records(env: dict | None = None, *names: str) -> dict[str, dict]:
    """`vlaunch status --json [NAMES]`, by job name."""
    result = vlaunch("status", "--json", *names, env=env)
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def record(name: str, env: dict | None = None) -> dict:
    """One job's record, refreshed (`vlaunch status --json NAME`)."""
    return records(env, name)[name]


def wait_for_record(name: str, predicate, timeout: float, env: dict | None = None) -> dict | None:
    """Refresh job ``name`` until ``predicate(record)`` holds; the record, or None after ``timeout``."""
    return wait_until(lambda: (lambda rec: predicate(rec) and rec)(record(name, env)), timeout)


def path_without(*commands: str, root) -> str:
    """A PATH with the venv and every directory of the current PATH, minus ``commands``
    (the real programs of the others are linked into ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("sbatch", "squeue", "scancel", "sacct", "scontrol"):
        if name not in commands:
            for folder in os.environ["PATH"].split(os.pathsep):
                if os.path.exists(os.path.join(folder, name)):
                    os.symlink(os.path.join(folder, name), root / name)
                    break
    return f"{root}{os.pathsep}{BIN}"

