"""Why a server died, read from its log: the lines that say so, and what they mean in a user's words.

vLLM's last log lines after a crash are teardown noise (triton's "leaked function" lines, resource
tracker warnings); the lines that name the death sit higher up. :func:`find_cause` looks for them, most
telling first: a process that died of a signal (``Worker proc VllmWorker-0 died unexpectedly (exit code:
-4)``), a fatal error of the interpreter (``Fatal Python error: Illegal instruction``), running out of
memory, the last line of a Python traceback, a program or module the job could not find, then vLLM's
first ``ERROR`` line. A signal is named with what it usually means (:func:`signal_words`).

Only a server that failed is read this way: vLLM may log an ``EngineDeadError`` traceback during a normal
shutdown, so a stop that was asked for stays clean whatever its log says.
"""

from __future__ import annotations

import itertools
import re
import signal
from dataclasses import dataclass, field

__all__ = ["LogCause", "find_cause", "signal_words"]

#: What a signal that ended a process usually means, for the ones a server dies of.
_MEANINGS = {
    signal.SIGILL: "an illegal instruction: this vLLM build uses CPU instructions this machine cannot run",
    signal.SIGKILL: "killed: often by the out-of-memory killer (`dmesg` on that machine says), or by kill -9",
    signal.SIGSEGV: "a segmentation fault: a crash in native code, a vLLM kernel, torch or a driver",
    signal.SIGBUS: "a bus error: often shared memory, /dev/shm, too small for vLLM's processes",
    signal.SIGABRT: "aborted by native code: a failed check in torch, a driver or a library",
    signal.SIGFPE: "an arithmetic fault in native code",
    signal.SIGTERM: "asked to stop from outside: its scheduler, a user or the system",
}
#: ``Fatal Python error: ...`` words for the signals Python's faulthandler reports.
_FATAL_WORDS = {"Illegal instruction": signal.SIGILL, "Segmentation fault": signal.SIGSEGV,
                "Bus error": signal.SIGBUS, "Aborted": signal.SIGABRT, "Floating-point exception": signal.SIGFPE,
                "Floating point exception": signal.SIGFPE}

#: vLLM's log prefix: ``(EngineCore pid=5188) ERROR 12-07 21:23:46 [core.py:1512] `` (the process part optional).
_PREFIX = re.compile(r"^(?:\((?P<proc>[^)]*)\)\s+)?(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
                     r"\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[[^\]]*\]\s?")
_DIED = re.compile(r"(?P<who>[\w:.-]+) died unexpectedly \(exit code: (?P<code>-?\d+)\)")
_FATAL = re.compile(r"^Fatal Python error: (?P<what>.+?)\s*$")
_OOM = re.compile(r"(CUDA out of memory|OutOfMemoryError|out of memory)", re.IGNORECASE)
_NO_MODULE = re.compile(r"No module named '?(?P<module>[\w.]+)'?")
_NO_COMMAND = re.compile(r"(?P<command>[^\s:]+): (?:command )?not found$")
_VALIDATION = re.compile(r"ValidationError: \d+ validation errors? for ")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)(?:: .*)?$")
#: Lines too long to show whole (vLLM dumps its whole config on an engine error).
_LINE_LIMIT = 300


@dataclass(frozen=True)
class LogCause:
    """What the log says happened (one line for a user) and the log lines that say it."""

    summary: str
    lines: list[str] = field(default_factory=list)


def signal_words(signum: int) -> str:
    """``SIGILL, an illegal instruction: ...``: a signal's name and what it usually means for a server."""
    try:
        sig = signal.Signals(signum)
    except ValueError:
        return f"signal {signum}"
    meaning = _MEANINGS.get(sig)
    return f"{sig.name}, {meaning}" if meaning else sig.name


def _message(line: str) -> str:
    """A log line without vLLM's prefix."""
    return _PREFIX.sub("", line, count=1).strip()


def _short(line: str) -> str:
    return line if len(line) <= _LINE_LIMIT else line[:_LINE_LIMIT] + " ..."


def _died(lines: list[str]) -> LogCause | None:
    """A vLLM process that died of a signal (an exit status is left to the traceback that explains it)."""
    for line in lines:
        if (found := _DIED.search(line)) and int(found["code"]) < 0:
            fatal = _fatal(lines)
            return LogCause(f"vLLM's process {found['who']} died of {signal_words(-int(found['code']))}",
                            [_short(line), *(fatal.lines if fatal else [])])
    return None


def _not_started(lines: list[str]) -> LogCause | None:
    """The job's shell found no such program, or Python no such module: vLLM never started."""
    for line in lines:
        if found := _NO_COMMAND.search(line.strip()):
            return LogCause(f"the job's shell found no program {found['command']!r} (is vLLM installed where the job"
                            " runs, and on its PATH?)", [_short(line)])
        if (found := _NO_MODULE.search(line)) and not _PREFIX.match(line):
            module = found["module"]
            hint = " (is vLLM installed in the job's environment?)" if module.split(".")[0] == "vllm" else ""
            return LogCause(f"Python where the job runs has no module {module!r}{hint}", [_short(line)])
    return None


def _crashed_thread(lines: list[str]) -> list[str]:
    """The frames faulthandler printed for the thread that crashed (``Current thread ...``), innermost first."""
    for index, line in enumerate(lines):
        if line.startswith("Current thread "):
            return list(itertools.takewhile(str.strip, lines[index + 1:]))
    return []


def _fatal(lines: list[str]) -> LogCause | None:
    for index, line in enumerate(lines):
        if found := _FATAL.match(_message(line)):
            what = found["what"]
            sig = _FATAL_WORDS.get(what)
            summary = f"a vLLM process died of {signal_words(sig)}" if sig else f"Python's fatal error: {what}"
            frames = [f for f in _crashed_thread(lines[index + 1:]) if "vllm/" in f and " line " in f][:2]
            return LogCause(summary, [_short(line), *map(_short, frames)])
    return None


def _out_of_memory(lines: list[str]) -> LogCause | None:
    for line in reversed(lines):
        message = _message(line)
        logged = _PREFIX.match(line)
        if _OOM.search(message) and (_EXCEPTION.match(message) or logged and logged["level"] in ("ERROR", "CRITICAL")):
            return LogCause(f"out of memory: {_short(message)}", [_short(line)])
    return None


def _exception(lines: list[str]) -> LogCause | None:
    """The exception that ended the last traceback in the log."""
    starts = [i for i, line in enumerate(lines) if _message(line) == "Traceback (most recent call last):"]
    if not starts:
        return None
    rest = lines[starts[-1] + 1:]
    for index, line in enumerate(rest):
        message = _message(line)
        if _EXCEPTION.match(message):
            if _VALIDATION.search(message) and index + 1 < len(rest):  # pydantic says what was wrong below
                message += ": " + _message(rest[index + 1])
            return LogCause(f"vLLM raised {_short(message)}", [_short(line)])
    return None


def _error(lines: list[str]) -> LogCause | None:
    for line in lines:
        found = _PREFIX.match(line)
        message = _message(line)
        if found and found["level"] in ("ERROR", "CRITICAL") and not message.startswith(("Dumping ", "Traceback")):
            return LogCause(f"vLLM logged: {_short(message)}", [_short(line)])
    return None


def find_cause(text: str) -> LogCause | None:
    """The cause a server log gives for the server's end, most telling first; None when it names none."""
    lines = text.splitlines()
    for finder in (_died, _fatal, _out_of_memory, _exception, _not_started, _error):
        if cause := finder(lines):
            return cause
    return None
