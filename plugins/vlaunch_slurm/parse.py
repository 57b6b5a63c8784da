"""Reading Slurm's answers: job ids from ``sbatch``, states from ``squeue`` and ``sacct``, host lists.

Pure functions of the commands' text output, so they are tested on real outputs without a cluster.
"""

from __future__ import annotations

import re

from vlaunch import JobState, JobStatus

__all__ = ["STATE_MAP", "SQUEUE_FIELDS", "SACCT_FIELDS", "parse_job_id", "parse_squeue", "parse_sacct",
           "pending_reason", "end_reason", "expand_hostlist"]

#: Slurm's job states (long names, as squeue -O State and sacct print them) -> vlaunch's.
STATE_MAP: dict[str, JobState] = {
    "PENDING": JobState.PENDING, "CONFIGURING": JobState.PENDING, "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING, "REQUEUE_FED": JobState.PENDING, "RESV_DEL_HOLD": JobState.PENDING,
    "SUSPENDED": JobState.PENDING, "STOPPED": JobState.PENDING,
    "RUNNING": JobState.RUNNING, "COMPLETING": JobState.RUNNING, "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING, "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED, "NODE_FAIL": JobState.FAILED, "BOOT_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED, "SPECIAL_EXIT": JobState.FAILED, "PREEMPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED, "REVOKED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT, "DEADLINE": JobState.TIMEOUT,
}

#: ``squeue --Format`` fields, each ended by "|" (no width: values are never cut).
SQUEUE_FIELDS = "JobID:|,State:|,Reason:|,NodeList:|,exit_code:|"
#: ``sacct --format`` fields (with ``--parsable2`` they are joined by "|").
SACCT_FIELDS = "JobID,State,ExitCode"

# Pending reasons worth explaining; the code itself is kept in front so it can be searched for.
_PENDING = {
    "Resources": "the nodes or GPUs it asks for are busy",
    "Priority": "jobs with a higher priority are ahead of it",
    "Dependency": "waiting for the jobs it depends on",
    "DependencyNeverSatisfied": "a job it depends on failed: it will never start",
    "BeginTime": "its start time has not come yet",
    "JobHeldUser": "held by its owner (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "Reservation": "waiting for its reservation to start",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "PartitionTimeLimit": "its time limit is above the partition's maximum",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "no node has the features it asks for",
    "InvalidAccount": "the account is invalid",
    "InvalidQOS": "the QOS is invalid",
    "Licenses": "waiting for licenses",
    "Cleaning": "a previous run of it is still being cleaned up",
    "launch failed requeued held": "its launch failed; held for an administrator",
}
_PENDING_PREFIX = {"QOS": "a QOS limit is reached", "AssocGrp": "a limit of the account is reached",
                   "AssocMax": "it exceeds a limit of the account"}

_ENDED = {
    "TIMEOUT": "killed at its time limit (raise resources.walltime)",
    "DEADLINE": "killed at its deadline",
    "NODE_FAIL": "a node of the job failed",
    "BOOT_FAIL": "a node failed to boot",
    "OUT_OF_MEMORY": "ran out of memory (raise resources.memory)",
    "PREEMPTED": "preempted by a higher-priority job",
    "REVOKED": "revoked by a sibling cluster",
    "CANCELLED": "by scancel (vlaunch down) or an administrator",
}


def parse_job_id(stdout: str) -> str:
    """The job id printed by ``sbatch --parsable`` ("ID" or "ID;CLUSTER"); ValueError if there is none."""
    first = stdout.strip().splitlines()[0].split(";")[0].strip()
    if not first.isdigit():
        raise ValueError(f"not a job id: {first!r}")
    return first


def pending_reason(code: str) -> str:
    """Slurm's pending reason code, followed by what it means when known."""
    code = code.strip()
    meaning = _PENDING.get(code.split(",")[0]) or next(
        (text for prefix, text in _PENDING_PREFIX.items() if code.startswith(prefix)), None)
    return f"{code}: {meaning}" if meaning else code


def _exit(code: int | None, signal: int | None) -> str:
    if signal:
        return f"killed by signal {signal}"
    return f"exit code {code}"


def end_reason(state: str, code: int | None, signal: int | None, why: str = "") -> str:
    """Why a job ended, in words, starting with Slurm's state name."""
    if state == "COMPLETED":
        return "COMPLETED: server exited normally"
    if state in _ENDED:
        return f"{state}: {_ENDED[state]}"
    extra = f" ({why})" if why and why not in ("None", "NonZeroExitCode") else ""
    return f"{state}: {_exit(code, signal)}{extra}"


def _status(job_state: str, reason: str, nodes: str, code: int | None, signal: int | None) -> JobStatus:
    native = job_state.split()[0] if job_state.split() else "UNKNOWN"
    state = STATE_MAP.get(native.rstrip("+"), JobState.UNKNOWN)
    hosts = expand_hostlist(nodes)
    if state is JobState.PENDING:
        text = pending_reason(reason) if reason and reason != "None" else f"{native}: not scheduled yet"
        return JobStatus(state, text, nodes=hosts)
    if state is JobState.RUNNING:
        text = "COMPLETING: ending, Slurm is stopping its processes" if native == "COMPLETING" else None
        return JobStatus(state, text, nodes=hosts)
    if state is JobState.UNKNOWN:
        return JobStatus(state, f"Slurm state {native}", nodes=hosts)
    exit_code = code if code is not None and not signal else None
    return JobStatus(state, end_reason(native, code, signal, reason), exit_code, hosts)


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Statuses by job id from ``squeue --noheader --Format`` with :data:`SQUEUE_FIELDS`.

    ``exit_code`` is the raw wait status there (3 << 8 for "exit 3").
    """
    out = {}
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) < 5 or not fields[0].strip():
            continue
        job_id, state, reason, nodes, raw = (f.strip() for f in fields[:5])
        status = int(raw) if raw.isdigit() else None
        code, signal = (status >> 8, status & 0x7F) if status is not None else (None, None)
        out[job_id] = _status(state, reason, nodes, code, signal)
    return out


def parse_sacct(stdout: str) -> dict[str, JobStatus]:
    """Statuses by job id from ``sacct --noheader -X --parsable2`` with :data:`SACCT_FIELDS`.

    The last line wins when an id appears twice (a requeued job, or ids reused by a new cluster).
    ``ExitCode`` is "CODE:SIGNAL"; the state may carry words ("CANCELLED by 0").
    """
    out = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        code, _, signal = fields[2].partition(":")
        out[fields[0]] = _status(fields[1], "", "", _int(code), _int(signal))
    return out


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


_GROUP = re.compile(r"\[([^\]]*)\]")


def expand_hostlist(text: str) -> tuple[str, ...]:
    """Host names of a Slurm host list: "gpu[01-03,07],login1" -> gpu01, gpu02, gpu03, gpu07, login1."""
    hosts: list[str] = []
    for part in _split_top(text.strip()):
        if part and part not in ("(null)", "None"):
            hosts += _expand_one(part)
    return tuple(hosts)


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _expand_one(name: str) -> list[str]:
    match = _GROUP.search(name)
    if not match:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    out = []
    for item in match.group(1).split(","):
        low, _, high = item.partition("-")
        width = len(low)
        for number in range(int(low), int(high or low) + 1):
            out += _expand_one(f"{head}{number:0{width}d}{tail}")
    return out
