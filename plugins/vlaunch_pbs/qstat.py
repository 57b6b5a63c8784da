"""Reading ``qstat -f``: PBS Pro's delimiter-separated form (``-F dsv``) and the text form (Torque).

PBS Pro is asked in the ``dsv`` form: one line per job, every job asked for. (A ``-F json`` query for
several ids listed them all on the OpenPBS 23.06.06 recorded here, but has been seen to answer with
the first job only elsewhere, openpbs issue 2672.)
Both forms become a dict of attributes per job id, then one :class:`~vlaunch.JobStatus` each. The job's
``comment`` is the readable reason ("Not Running: Insufficient amount of resource: ngpus ...");
``Exit_status`` tells how a finished job (state F) ended.
"""

from __future__ import annotations

import re

from vlaunch import JobState, JobStatus
from vlaunch.errors import SchedulerError

__all__ = ["parse_qstat", "parse_dsv_jobs", "parse_text_jobs", "job_status", "exec_nodes", "STATE_MAP"]

#: Native job_state letters -> normalised state (F, X and C are resolved from Exit_status).
STATE_MAP = {
    "Q": JobState.PENDING, "H": JobState.PENDING, "W": JobState.PENDING, "T": JobState.PENDING,
    "S": JobState.PENDING, "U": JobState.PENDING,
    "R": JobState.RUNNING, "E": JobState.RUNNING, "B": JobState.RUNNING,
    "F": JobState.COMPLETED, "X": JobState.COMPLETED, "C": JobState.COMPLETED,
}
_WAITING = {"H": "held", "W": "waiting for its start time", "T": "moving between queues", "S": "suspended",
            "U": "suspended (workstation busy)"}
_HOLDS = {"u": "user", "o": "operator", "s": "system", "p": "bad password"}
#: PBS's own negative exit codes for jobs it killed or could not start.
_PBS_EXIT = {-1: "could not start the job", -25: "killed for using more CPUs than asked",
             -26: "killed for using more virtual memory than asked", -27: "killed for using more memory than asked",
             -29: "killed at its walltime limit"}
_WALLTIME = -29
_FEEDS = {"n": "\n", "f": "\f"}
_DELETED_BY = re.compile(r"terminated by (\S+)")
_ATTRIBUTE = re.compile(r"\s+([A-Za-z_][\w.]*) = ?(.*)$")
_JOB_ID = re.compile(r"Job Id:\s*(\S+)\s*$")


def _dsv_fields(line: str) -> list[str]:
    """A ``dsv`` line split at each ``|`` that qstat did not escape with a backslash, with the escapes
    removed (qstat doubles a backslash in a value and writes a newline as ``\\n``)."""
    fields, current, chars = [], [], iter(line)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            current.append(_FEEDS.get(escaped, escaped))
        elif char == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    return fields + ["".join(current)]


def parse_dsv_jobs(text: str) -> dict[str, dict]:
    """Jobs by id from ``qstat -f -F dsv`` output: one ``Job Id: ID|name=value|...`` line per job."""
    jobs: dict[str, dict] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        head, *fields = _dsv_fields(line)
        if not head.startswith("Job Id: "):
            raise SchedulerError(f"qstat -F dsv printed a line vlaunch cannot read: {line.strip()[:80]!r}")
        attrs = jobs.setdefault(head[len("Job Id: "):].strip(), {})
        for field in fields:
            name, equals, value = field.partition("=")
            if not equals:
                raise SchedulerError(f"qstat -F dsv printed a field without a value (cut short?): {field[:80]!r}")
            attrs[name] = value
    return jobs


def parse_text_jobs(text: str) -> dict[str, dict]:
    """Jobs by id from text ``qstat -f`` output (``Job Id:`` blocks of ``name = value`` lines, long values
    continued on indented lines)."""
    jobs: dict[str, dict] = {}
    current, key = None, None
    for line in text.splitlines():
        if not line.strip():
            key = None
        elif match := _JOB_ID.match(line):
            current, key = jobs.setdefault(match.group(1), {}), None
        elif current is not None and (match := _ATTRIBUTE.match(line)):
            key = match.group(1)
            current[key] = match.group(2)
        elif current is not None and key and line[:1].isspace():
            current[key] += line[1:] if line.startswith("\t") else line.strip()
        else:
            raise SchedulerError(f"qstat -f printed a line vlaunch cannot read: {line.strip()[:80]!r}")
    return jobs


def exec_nodes(exec_host: object) -> tuple[str, ...]:
    """Host names from ``exec_host`` (``nodeA/0*4+nodeB/0*4`` -> ``("nodeA", "nodeB")``), in order."""
    if not isinstance(exec_host, str):
        return ()
    return tuple(dict.fromkeys(part.split("/")[0] for part in exec_host.split("+") if part))


def _exit_status(attrs: dict) -> int | None:
    value = attrs.get("Exit_status", attrs.get("exit_status"))
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        raise SchedulerError(f"qstat shows an Exit_status that is not a number: {value!r}") from None


def _waiting_reason(state: str, attrs: dict, comment: str | None) -> str | None:
    if state == "Q":
        return comment
    word = _WAITING[state]
    if state == "H":
        holds = [_HOLDS[h] for h in str(attrs.get("Hold_Types", "")) if h in _HOLDS]
        word = f"held ({', '.join(holds)} hold; qrls releases it)" if holds else word
    elif state == "W" and attrs.get("Execution_Time"):
        word = f"{word} ({attrs['Execution_Time']})"
    return f"{word}: {comment}" if comment else word


def _finished(state: str, attrs: dict, comment: str | None, nodes: tuple[str, ...]) -> JobStatus | None:
    code = _exit_status(attrs)
    if code is None and state == "C":
        return None  # Torque without an exit status: the job's own exit marker tells
    if code is None or (comment and "terminated" in comment):
        who = _DELETED_BY.search(comment or "")
        why = "deleted" + (f" by {who.group(1)}" if who else "")
        why += f" (Exit_status {code})" if code is not None else " before it ran"
        return JobStatus(JobState.CANCELLED, why, code, nodes)
    if code == 0:
        return JobStatus(JobState.COMPLETED, "server exited normally", 0, nodes)
    if code == _WALLTIME:
        return JobStatus(JobState.TIMEOUT, f"{_PBS_EXIT[code]} (Exit_status {code})", code, nodes)
    if code < 0:
        why = _PBS_EXIT.get(code, "ended the job itself")
        return JobStatus(JobState.FAILED, f"PBS {why} (Exit_status {code})", code, nodes)
    if code >= 256:
        return JobStatus(JobState.FAILED, f"killed by signal {code - 256} (Exit_status {code})", code, nodes)
    return JobStatus(JobState.FAILED, f"server exited with status {code}", code, nodes)


def job_status(job_id: str, attrs: dict) -> JobStatus | None:
    """The status of one job from its attributes; None when only the job's exit marker can tell."""
    state = attrs.get("job_state")
    if state not in STATE_MAP:
        if not isinstance(state, str) or not state:
            raise SchedulerError(f"qstat shows job {job_id} without a job_state (output cut short?)")
        return JobStatus(JobState.UNKNOWN, f"PBS state {state!r}")
    comment = attrs.get("comment") or None
    nodes = exec_nodes(attrs.get("exec_host"))
    if STATE_MAP[state] is JobState.RUNNING:
        # "Job run at <date> on (<vnodes>)" says when it started, not why anything happened.
        who = _DELETED_BY.search(comment or "")
        why = f"being deleted by {who.group(1)}" if who else (
            None if comment is None or comment.startswith("Job run at") else comment)
        return JobStatus(JobState.RUNNING, why, nodes=nodes)
    if STATE_MAP[state] is JobState.PENDING:
        return JobStatus(JobState.PENDING, _waiting_reason(state, attrs, comment))
    return _finished(state, attrs, comment, nodes)


def parse_qstat(stdout: str, form: str) -> dict[str, JobStatus]:
    """Statuses by job id from ``qstat -f`` output in ``form`` "dsv" (PBS Pro) or "text" (Torque).

    A job is also listed under its bare sequence number (``2`` for ``2.server``), since some
    servers and wrappers print one form and accept the other.
    """
    text = stdout.strip()
    if not text:
        return {}
    jobs = parse_dsv_jobs(text) if form == "dsv" else parse_text_jobs(text)
    statuses: dict[str, JobStatus] = {}
    for job_id, attrs in jobs.items():
        status = job_status(job_id, attrs)
        if status is not None:
            statuses[job_id] = status
    for job_id, status in list(statuses.items()):
        statuses.setdefault(job_id.split(".")[0], status)
    return statuses
