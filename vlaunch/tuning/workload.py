"""Named benchmark workloads: what ``vlaunch bench`` asks vLLM's serving benchmark to send."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..errors import ConfigError

__all__ = ["Workload", "WORKLOADS", "workload"]


@dataclass(frozen=True)
class Workload:
    """Random-dataset requests: prompt and output lengths, how many, how many at once, how fast.

    Every request generates exactly ``output_len`` tokens (``--ignore-eos``; vLLM forces it for the
    random dataset anyway), so runs of different profiles do the same work.
    """

    name: str
    num_prompts: int
    input_len: int
    output_len: int
    concurrency: int | None
    request_rate: float = math.inf
    seed: int = 0

    def vllm_args(self) -> list[str]:
        """The workload as ``vllm bench serve`` arguments."""
        words = ["--dataset-name", "random", "--random-input-len", str(self.input_len),
                 "--random-output-len", str(self.output_len), "--num-prompts", str(self.num_prompts),
                 "--request-rate", "inf" if math.isinf(self.request_rate) else repr(self.request_rate),
                 "--seed", str(self.seed)]
        if self.concurrency:
            words += ["--max-concurrency", str(self.concurrency)]
        return words + ["--ignore-eos"]

    def to_json(self) -> dict:
        """A JSON-able dict (an infinite request rate is written "inf")."""
        data = asdict(self)
        data["request_rate"] = "inf" if math.isinf(self.request_rate) else self.request_rate
        return data

    def describe(self) -> str:
        """One line, e.g. "smoke: 32 prompts, 32 in / 16 out, concurrency 8, rate inf, seed 0, ignore-eos"."""
        rate = "inf" if math.isinf(self.request_rate) else f"{self.request_rate:g}/s"
        return (f"{self.name}: {self.num_prompts} prompts, {self.input_len} in / {self.output_len} out,"
                f" concurrency {self.concurrency or 'unlimited'}, rate {rate}, seed {self.seed}, ignore-eos")


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("smoke", 32, 32, 16, 8),
    Workload("chat", 200, 512, 256, 64),
    Workload("throughput", 1000, 512, 256, 512),
    Workload("long-prompt", 200, 4096, 256, 32),
)}


def workload(name: str, **changes) -> Workload:
    """Workload ``name`` with the given fields changed (None leaves a field as it is)."""
    if name not in WORKLOADS:
        raise ConfigError(f"unknown workload {name!r}; available: {', '.join(WORKLOADS)}")
    changes = {k: v for k, v in changes.items() if v is not None}
    for key in ("num_prompts", "input_len", "output_len", "concurrency"):
        if key in changes and changes[key] < 1:
            raise ConfigError(f"workload {key.replace('_', '-')} must be at least 1, got {changes[key]}")
    if changes.get("request_rate", 1) <= 0:
        raise ConfigError(f"request rate must be positive (or inf), got {changes['request_rate']}")
    return replace(WORKLOADS[name], **changes)
