"""Test doubles for backend authors: a transport that records every command and answers from a script."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import CommandNotFound
from ..transport import CommandResult, Transport

__all__ = ["RecordingTransport", "ok", "fail", "process_list"]

Responder = Callable[[tuple[str, ...]], CommandResult]


def ok(stdout: str = "", stderr: str = "") -> CommandResult:
    """A successful command result (for :meth:`RecordingTransport.answer`)."""
    return CommandResult((), 0, stdout, stderr)


def fail(returncode: int = 1, stderr: str = "", stdout: str = "") -> CommandResult:
    """A failed command result (for :meth:`RecordingTransport.answer`)."""
    return CommandResult((), returncode, stdout, stderr)


def process_list(*members: str) -> CommandResult:
    """What ``ps -ww -e -o pgid=,stat=,args=`` prints: ``members`` ("PGID STAT ARGS" lines), then ps itself
    (a listing without it is incomplete, and process backends refuse it)."""
    return ok("".join(f"{line}\n" for line in members) + " 9999 R+   ps -ww -e -o pgid=,stat=,args=\n")


class RecordingTransport(Transport):
    """Runs nothing: records argv lists and answers with scripted results; files live in a dict.

    ``answer("sbatch", ok("Submitted batch job 7\\n"))`` scripts every later ``sbatch`` call;
    several results for one program are returned in order, the last one repeating. Programs in
    ``missing`` raise :class:`~vlaunch.errors.CommandNotFound`, as a real target without them does.
    """

    kind = "recording"

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []
        self.files: dict[str, str] = {}
        self.missing: set[str] = set()
        self._answers: dict[str, list[CommandResult | Responder]] = {}

    def answer(self, program: str, *results: CommandResult | Responder) -> None:
        """Script the results of ``program`` (a result, or a function of the argv)."""
        self._answers[program] = list(results)

    def commands(self, program: str) -> list[tuple[str, ...]]:
        """The recorded calls of ``program``."""
        return [c for c in self.calls if c[0] == program]

    def run(self, argv: Sequence[str], *, input=None, timeout=60.0) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        if argv[0] in self.missing:
            raise CommandNotFound(f"command not found: {argv[0]}")
        queue = self._answers.get(argv[0])
        if not queue:
            return CommandResult(argv, 0, "", "")
        result = queue.pop(0) if len(queue) > 1 else queue[0]
        result = result(argv) if callable(result) else result
        return CommandResult(argv, result.returncode, result.stdout, result.stderr)

    def write_file(self, path, data, mode=0o644):
        self.files[path] = data

    def read_file(self, path, offset=0):
        data = self.files.get(path)
        return None if data is None else data.encode()[offset:]

    def spawn(self, argv, *, cwd, log):
        self.calls.append(tuple(str(a) for a in argv))
        return 4242

    def home(self):
        return "/home/tester"
