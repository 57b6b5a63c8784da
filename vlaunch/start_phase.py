"""What a starting vLLM server is doing, read from its log: the phases of a start, each with when it began.

The job script's first line gives the job's start in epoch seconds and in the node's local time
(``vlaunch: job starting on HOST at ... (epoch 1765142586, local 12-07 21:23:06)``); vLLM stamps its lines
in the node's local time without a year or zone (``INFO 12-07 21:23:40 [...]``), so the pair turns every
stamp into epoch seconds (by the node's clock, which a cluster keeps in step with the login node's). A phase begins at the first line that marks it; lines without a stamp
(a progress bar) take the last stamp seen. Phases only move forward (several engines each load weights).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = ["Phase", "PHASES", "phases", "vllm_version", "gpu_kind"]

#: The phases of a start, in order, and the log text that marks the beginning of each (after Python's).
PHASES = ("starting Python", "starting the engine", "loading weights", "profiling memory", "torch.compile",
          "capturing CUDA graphs", "starting the API server", "ready")
_MARKS = (
    ("loading weights", ("Starting to load model",)),
    ("profiling memory", ("Loading weights took", "Model loading took")),
    ("torch.compile", ("Dynamo bytecode transform time", "Compiling a graph for")),
    ("capturing CUDA graphs", ("Capturing CUDA graph",)),
    ("starting the API server", ("init engine (profile, create kv cache, warmup model) took",)),
    ("ready", ("Application startup complete",)),
)
_START = re.compile(r"^vlaunch: job starting on .* \(epoch (?P<epoch>\d+), local (?P<local>\d\d-\d\d \d\d:\d\d:\d\d)\)")
_STAMP = re.compile(r"(?:^|\s)(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<stamp>\d\d-\d\d \d\d:\d\d:\d\d)")
_VERSION = re.compile(r"(?:Initializing a V1 LLM engine \(v|vLLM API server version |█  version )(?P<version>\d[\w.+-]*)")
_GPUS = re.compile(r"^vlaunch: GPUs: (?P<names>.+)$")


@dataclass(frozen=True)
class Phase:
    """A phase of the start and when it began (epoch seconds, on this machine's clock)."""

    name: str
    began: float


#: Seconds in the leap year the stamps are read in, and half of it: a stamp further back than that from
#: the job's start is in the next year (a start that crossed New Year).
_YEAR = 366 * 86400


def _local_seconds(stamp: str) -> float:
    """``MM-DD HH:MM:SS`` as seconds in a leap year, as if UTC (only differences are used: no zone, no DST)."""
    return float(calendar.timegm(datetime.strptime(f"2024-{stamp}", "%Y-%m-%d %H:%M:%S").timetuple()))


def phases(text: str) -> list[Phase]:
    """The phases the log shows so far, oldest first, of the job's last start (a requeued job starts again
    in the same log); empty without the job script's start line (an old script, or not a vLLM job's log)."""
    found, start_local, epoch, stamp = [], None, 0.0, None
    for line in text.splitlines():
        if start := _START.match(line):
            start_local, epoch, stamp = _local_seconds(start["local"]), float(start["epoch"]), None
            found = [Phase(PHASES[0], epoch)]
            continue
        if start_local is None:
            continue
        if seen := _STAMP.search(line):
            since = _local_seconds(seen["stamp"]) - start_local
            stamp = epoch + (since + _YEAR if since < -_YEAR / 2 else since)
            if len(found) == 1:
                found.append(Phase(PHASES[1], stamp))
        if stamp is None:
            continue
        reached = PHASES.index(found[-1].name)
        for name, marks in _MARKS:
            if PHASES.index(name) > reached and any(mark in line for mark in marks):
                found.append(Phase(name, stamp))
                break
    return found


def vllm_version(text: str) -> str | None:
    """The vLLM version the log names, if it does."""
    found = _VERSION.search(text)
    return found["version"] if found else None


def gpu_kind(text: str) -> str:
    """The GPUs the job script saw (``NVIDIA H100 80GB HBM3 x4``), or ``none``."""
    for line in text.splitlines():
        if found := _GPUS.match(line):
            names = [n.strip() for n in found["names"].split(",") if n.strip()]
            return f"{names[0]} x{len(names)}" if names else "none"
    return "none"
