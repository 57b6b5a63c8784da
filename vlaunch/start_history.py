"""How long starts usually take: each ready start's phase times, kept in the state dir and keyed by what
makes starts alike (backend, profile, model, vLLM version, GPUs), so ``up``, ``wait`` and ``status`` can
say "usually ready in ~95 s (3 earlier starts)" and which phase is slower than usual.

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


def record_start(record, log_text: str, ready_at: float) -> None:
    """Keep the phase times of a start that became ready at ``ready_at`` (epoch seconds); a log without
    phases (an old job script) is not kept."""
    found = phases(log_text)
    if not found:
        return
    key = key_for(record, log_text)
    line = {**key.as_dict(), "vllm": key.vllm or "unknown", "gpus": gpu_kind(log_text), "job": record.name,
            "ready": round(ready_at - found[0].began, 1), "phases": durations(found, ready_at)}
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def usual(key: StartKey) -> Usual | None:
    """The median of the newest earlier starts of ``key``'s kind, or None when there were none."""
    try:
        text = _path().read_text()
    except FileNotFoundError:
        return None
    wanted = {k: v for k, v in key.as_dict().items() if v is not None}
    starts = []
    for line in text.splitlines():
        try:
            start = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash costs that start, not the history
        if all(start.get(k) == v for k, v in wanted.items()):
            starts.append(start)
    starts = starts[-KEPT:]
    if not starts:
        return None
    names = {name for start in starts for name in start["phases"]}
    return Usual(len(starts), statistics.median(s["ready"] for s in starts),
                 {n: statistics.median(s["phases"].get(n, 0.0) for s in starts) for n in names})


def usual_words(found: Usual | None) -> str:
    """``usually ready in ~95 s (3 earlier starts)``, or nothing."""
    if found is None:
        return ""
    return f"usually ready in ~{found.ready:.0f} s ({found.starts} earlier start{'s' if found.starts > 1 else ''})"


def slower_than_usual(phase: str, seconds: float, found: Usual | None) -> str:
    """``usually 12 s`` when ``seconds`` in ``phase`` is well past its usual length, else nothing."""
    typical = found.phases.get(phase) if found else None
    if typical is None or seconds < typical * SLOW_FACTOR or seconds < typical + SLOW_MARGIN:
        return ""
    return f"usually {typical:.0f} s"
