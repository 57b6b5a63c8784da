"""How long starts usually take: each ready start's phase times, kept in the state dir and keyed by what
makes starts alike (backend, profile, model, vLLM version, GPUs), so ``up``, ``wait`` and ``status`` can
say "usually ready in ~95 s, from 3 earlier starts" and which phase is slower than usual.

One JSON line per start in ``starts.jsonl``; the newest :data:`KEPT` starts of a kind count.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from .paths import state_dir
from .start_phase import Phase, gpu_kind, phases, vllm_version

__all__ = ["StartKey", "Usual", "key_for", "record_start", "usual", "durations", "slower_than_usual", "usual_words"]

#: Starts of one kind that count (the newest).
KEPT = 20
#: A phase is slower than usual past this many times its usual length, and by at least SLOW_MARGIN seconds.
SLOW_FACTOR, SLOW_MARGIN = 1.5, 10.0


@dataclass(frozen=True)
class StartKey:
    """What makes two starts comparable; ``vllm`` and ``gpus`` are None (any) until the log names them."""

    backend: str
    profile: str
    model: str
    vllm: str | None
    gpus: str | None

    def as_dict(self) -> dict:
        return {"backend": self.backend, "profile": self.profile, "model": self.model, "vllm": self.vllm,
                "gpus": self.gpus}


@dataclass(frozen=True)
class Usual:
    """The median of earlier starts of one kind: seconds to ready and per phase."""

    starts: int
    ready: float
    phases: dict[str, float]


def key_for(record, log_text: str) -> StartKey:
    """The key of a job's start: its record, and the vLLM version and GPUs its log names (None before it
    names the version: the GPUs line comes first)."""
    model = (record.config.get("server") or {}).get("model") or record.served_model_name or "-"
    version = vllm_version(log_text)
    return StartKey(record.backend, record.profile, model, version, gpu_kind(log_text) if version else None)


def durations(found: list[Phase], ready_at: float) -> dict[str, float]:
    """Seconds spent in each phase, the last one ending at ``ready_at`` (epoch seconds)."""
    ends = [p.began for p in found[1:]] + [ready_at]
    return {p.name: round(max(0.0, end - p.began), 1) for p, end in zip(found, ends)}


def _path():
    return state_dir() / "starts.jsonl"


def record_start(record, log_text: str, seen_ready: float) -> None:
    """Keep the phase times of a start seen ready at ``seen_ready`` (epoch seconds): it ended when vLLM
    said its API server was up, where the log says so (a job looked at long after is not counted as slow).
    A log without phases (an old job script) is not kept; the history is a help, so a state directory
    that cannot be written costs only this start."""
    found = phases(log_text)
    if not found:
        return
    ready_at = found[-1].began if found[-1].name == "ready" else seen_ready
    key = key_for(record, log_text)
    line = {**key.as_dict(), "vllm": key.vllm or "unknown", "gpus": gpu_kind(log_text), "job": record.name,
            "ready": round(ready_at - found[0].began, 1), "phases": durations(found, ready_at)}
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")
    except OSError:
        pass


def _starts(text: str, wanted: dict) -> list[dict]:
    """The recorded starts that match ``wanted``; a line that is not one (cut by a crash, edited) is skipped."""
    starts = []
    for line in text.splitlines():
        try:
            start = json.loads(line)
        except ValueError:
            continue
        if (isinstance(start, dict) and isinstance(start.get("phases"), dict)
                and isinstance(start.get("ready"), (int, float)) and all(start.get(k) == v for k, v in wanted.items())):
            starts.append(start)
    return starts


def usual(key: StartKey) -> Usual | None:
    """The median of the newest earlier starts of ``key``'s kind (each phase over the starts that had it),
    or None when there were none."""
    try:
        text = _path().read_text()
    except OSError:
        return None
    starts = _starts(text, {k: v for k, v in key.as_dict().items() if v is not None})[-KEPT:]
    if not starts:
        return None
    names = {name for start in starts for name in start["phases"]}
    return Usual(len(starts), statistics.median(s["ready"] for s in starts),
                 {n: statistics.median(s["phases"][n] for s in starts if n in s["phases"]) for n in names})


def usual_words(found: Usual | None) -> str:
    """``usually ready in ~95 s, from 3 earlier starts``, or nothing."""
    if found is None:
        return ""
    return f"usually ready in ~{found.ready:.0f} s, from {found.starts} earlier start{'s' if found.starts > 1 else ''}"


def slower_than_usual(phase: str, seconds: float, found: Usual | None) -> str:
    """``usually 12 s`` when ``seconds`` in ``phase`` is well past its usual length, else nothing."""
    typical = found.phases.get(phase) if found else None
    if typical is None or seconds < typical * SLOW_FACTOR or seconds < typical + SLOW_MARGIN:
        return ""
    return f"usually {typical:.0f} s"
