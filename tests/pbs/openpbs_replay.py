#!/usr/bin/env python3
"""A stand-in for OpenPBS 23.06's ``qsub``, ``qstat`` and ``qdel``, answering as the real server did.

No OpenPBS server can run in CI, so this replays what one said (``tests/fixtures/pbs/openpbs-23.06``,
recorded with job history off and on): each emulated job is in one recorded state, and a query
gets that state's recorded ``-F dsv`` line with the job's id, the recorded messages on stderr and
the recorded exit status (other forms are not replayed). What the real server does, this does:

* without ``-x``, only live jobs are listed; others give "Unknown Job Id" (rc 153) or, with history
  on, "Job has finished, use -x or -H ..." (rc 35);
* with ``-x`` and history off, no job at all is listed, live ones included: "PBS is not configured to
  maintain job history ID" for each id, rc 0;
* ``qdel`` of a running job leaves it ``R`` with "... and terminated by" in its comment for the next
  query (deletion is asynchronous), then it is gone (history off) or finished (history on).

State lives in the JSON file ``$VLAUNCH_OPENPBS``: ``{"history": bool, "next": N, "start": STATE,
"jobs": {id: STATE}}``; tests change it through ``pbs_support.OpenPBS``. Run as ``openpbs_replay.py
PROGRAM ARGS...``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "pbs" / "openpbs-23.06"
#: Emulated state -> the recording (history setting, case) whose one-job ``-F dsv`` answer it replays,
#: and whether qstat lists the job without ``-x``.
STATES = {
    "queued": ("history_off", "c_queued_f_dsv", True),
    "running": ("history_off", "b_running_f_dsv", True),
    "deleting": ("history_off", "g_after_qdel_running_poll", True),  # R, "... and terminated by ..."
    "finished-0": ("history_on", "f_exit0_xf_dsv", False),
    "finished-3": ("history_on", "f_exit3_xf_dsv", False),
    "deleted-running": ("history_on", "g_after_xf_dsv", False),
    "deleted-queued": ("history_on", "h_after_xf_dsv", False),
    "walltime": ("history_on", "i_walltime_after_xf_dsv", False),
}
SERVER = "vm"


def _dsv_line(state: str, job_id: str) -> str:
    """The recorded answer for a job in ``state``, about ``job_id`` instead of the recorded job."""
    history, case, _ = STATES[state]
    data = json.loads((RECORDED / history / f"{case}.json").read_text())
    stdout = data["stdout"] if "stdout" in data else data["samples"][0]["stdout"]
    recorded_id = re.match(r"Job Id: (\S+?)\|", stdout).group(1)
    return stdout.strip().replace(f"Job Id: {recorded_id}|", f"Job Id: {job_id}|", 1)


class Server:
    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text())

    def save(self):
        self.path.write_text(json.dumps(self.data))

    @property
    def jobs(self) -> dict[str, str]:
        return self.data["jobs"]

    def full_id(self, given: str) -> str:
        return given if "." in given else f"{given}.{SERVER}"

    def qsub(self, args):
        job_id = f"{self.data['next']}.{SERVER}"
        self.data["next"] += 1
        self.jobs[job_id] = self.data.get("start", "running")
        self.save()
        return 0, f"{job_id}\n", ""

    def qdel(self, args):
        errors, rc = [], 0
        for given in [a for a in args if not a.startswith("-")]:
            job_id = self.full_id(given)
            state = self.jobs.get(job_id)
            if state is None or (not STATES[state][2] and not self.data["history"]):
                errors.append(f"qdel: Unknown Job Id {job_id}")
                rc = 153
            elif not STATES[state][2]:
                errors.append(f"qdel: Job has finished {job_id}")
                rc = 35
            else:
                self.jobs[job_id] = {"running": "deleting", "deleting": "deleting"}.get(state, "deleted-queued")
        self._forget_unlisted()
        self.save()
        return rc, "", "".join(f"{line}\n" for line in errors)

    def _forget_unlisted(self):
        if not self.data["history"]:
            for job_id, state in list(self.jobs.items()):
                if not STATES[state][2]:
                    del self.jobs[job_id]

    def qstat(self, args):
        history_query = "-x" in args
        form = args[args.index("-F") + 1] if "-F" in args else "text"
        ids = [self.full_id(a) for a in args if not a.startswith("-") and a not in ("dsv", "json")]
        listed, errors, rc = [], [], 0
        for job_id in ids:
            state = self.jobs.get(job_id)
            if history_query and not self.data["history"]:
                errors.append(f"qstat: PBS is not configured to maintain job history {job_id}")
            elif state is None:
                errors.append(f"qstat: Unknown Job Id {job_id}")
                rc = 153
            elif not STATES[state][2] and not history_query:
                errors.append(f"qstat: {job_id} Job has finished, use -x or -H to obtain historical job information")
                rc = 35
            else:
                listed.append((job_id, state))
        self._advance_deletions(listed)
        self.save()
        stderr = "".join(f"{line}\n" for line in errors)
        if form != "dsv":
            raise SystemExit(f"openpbs_replay: only qstat -F dsv is replayed, not {form!r}")
        return rc, "".join(_dsv_line(state, job_id) + "\n" for job_id, state in listed), stderr

    def _advance_deletions(self, listed):
        """A job being deleted is seen once more as R ("... and terminated by ..."), then it has ended."""
        for job_id, state in listed:
            if state == "deleting":
                self.jobs[job_id] = "deleted-running"
        self._forget_unlisted()


def main(argv: list[str]) -> int:
    program, args = Path(argv[0]).name, argv[1:]
    server = Server(Path(os.environ["VLAUNCH_OPENPBS"]))
    with open(server.path.with_suffix(".calls"), "a") as log:
        log.write(json.dumps([program, *args]) + "\n")
    rc, stdout, stderr = getattr(server, program)(args)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
