"""Helpers for the pbs backend's tests: recorded outputs, a replaying transport, replaying executables
for PBS Pro commands, the replayed OpenPBS server, and the rig check."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vlaunch.transport import CommandResult, Transport

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pbs"


def fixture(name: str) -> str:
    """The text of a recorded (or constructed) PBS output."""
    return (FIXTURES / name).read_text()


def recorded(history: str, case: str) -> dict:
    """One command recorded from a real OpenPBS 23.06 server: ``cmd``, ``rc``, ``stdout``, ``stderr``
    (or ``samples`` of them over time); ``history`` is "history_off" or "history_on"."""
    return json.loads((FIXTURES / "openpbs-23.06" / history / f"{case}.json").read_text())


def answer(history: str, case: str) -> tuple[int, str, str]:
    """A recorded command's (rc, stdout, stderr), for :class:`ReplayTransport`."""
    data = recorded(history, case)
    return data["rc"], data["stdout"], data["stderr"]


class ReplayTransport(Transport):
    """Answers each command from a queue of results per program (the last one repeats); records every argv.

    Stands in for a PBS Pro server, which cannot run on the test machines.
    """

    kind = "replay"

    def __init__(self, answers: dict[str, list[tuple[int, str, str]]], files: dict[str, bytes] | None = None):
        self.answers = {name: list(queue) for name, queue in answers.items()}
        self.files = dict(files or {})
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], *, input=None, timeout=60.0) -> CommandResult:
        argv = tuple(argv)
        self.calls.append(argv)
        queue = self.answers[argv[0]]
        rc, out, err = queue.pop(0) if len(queue) > 1 else queue[0]
        return CommandResult(argv, rc, out, err)

    def write_file(self, path, data, mode=0o644):
        self.files[path] = data.encode()

    def read_file(self, path, offset=0):
        data = self.files.get(path)
        return None if data is None else data[offset:]

    def spawn(self, argv, *, cwd, log):
        raise AssertionError("a batch backend never spawns")

    def home(self):
        return "/home/pbsuser"

    def programs(self) -> list[str]:
        """The program of every command run, in order."""
        return [argv[0] for argv in self.calls]


def replay_bin(folder: Path, name: str, *answers: tuple[int, str, str]) -> Path:
    """An executable ``folder/name`` (a PBS Pro command stand-in) that gives recorded ``(rc, stdout, stderr)``
    answers in order, the last one repeating, and appends each call's arguments to ``folder/name.calls``."""
    state = folder / f"{name}.d"
    state.mkdir(parents=True, exist_ok=True)
    for index, (rc, out, err) in enumerate(answers, 1):
        (state / f"{index}.out").write_text(out)
        (state / f"{index}.err").write_text(err)
        (state / f"{index}.rc").write_text(str(rc))
    (state / "at").write_text("0")
    d, calls = shlex.quote(str(state)), shlex.quote(str(folder / f"{name}.calls"))
    program = folder / name
    program.write_text(f"""#!/bin/sh
echo "$*" >>{calls}
i=$(cat {d}/at)
if [ -e {d}/$((i + 1)).rc ]; then i=$((i + 1)); echo "$i" >{d}/at; fi
cat {d}/$i.out
cat {d}/$i.err >&2
exit "$(cat {d}/$i.rc)"
""")
    program.chmod(0o755)
    return program


def require_pbs_rig() -> None:
    """Fail (never skip) with a clear message when the Torque-style PBS rig is not up."""
    if not shutil.which("qsub") or not shutil.which("scontrol"):
        raise AssertionError("the PBS rig is not up: no qsub/scontrol on PATH (run scripts/rig/pbs-up.sh as root)")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if "UP" not in ping.stdout:
        raise AssertionError(f"the PBS rig is not up: scontrol ping says {ping.stdout.strip() or ping.stderr.strip()!r}"
                             " (run scripts/rig/pbs-up.sh as root)")


class OpenPBS:
    """The replayed OpenPBS server of ``openpbs_replay.py``: its qsub, qstat and qdel on ``PATH``
    (:attr:`env`), its jobs' states to read and change, and the commands it was given."""

    def __init__(self, folder: Path, history: bool, start: str = "running"):
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.state = folder / "openpbs.json"
        self.state.write_text(json.dumps({"history": history, "next": 1, "start": start, "jobs": {}}))
        replay = Path(__file__).resolve().parent / "openpbs_replay.py"
        for program in ("qsub", "qstat", "qdel"):
            path = self.bin / program
            path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(replay))} {program} \"$@\"\n")
            path.chmod(0o755)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "VLAUNCH_OPENPBS": str(self.state)}

    def jobs(self) -> dict[str, str]:
        return json.loads(self.state.read_text())["jobs"]

    def _change(self, change) -> None:
        data = json.loads(self.state.read_text())
        change(data)
        self.state.write_text(json.dumps(data))

    def set(self, job_id: str, state: str) -> None:
        """Put a job in one of ``openpbs_replay.STATES``."""
        self._change(lambda data: data["jobs"].__setitem__(job_id, state))

    def start_as(self, state: str) -> None:
        """The state qsub gives the jobs it queues from now on."""
        self._change(lambda data: data.__setitem__("start", state))

    def forget(self, job_id: str) -> None:
        """The job leaves the server (ended, with no history kept)."""
        self._change(lambda data: data["jobs"].pop(job_id))

    def calls(self, program: str) -> list[list[str]]:
        path = self.state.with_suffix(".calls")
        lines = path.read_text().splitlines() if path.exists() else []
        return [call[1:] for call in map(json.loads, lines) if call[0] == program]
