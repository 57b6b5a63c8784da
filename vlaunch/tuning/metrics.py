"""vLLM's Prometheus ``/metrics``: fetch a scrape, parse it, and turn two scrapes into per-engine figures.

Only the standard library is used. vLLM V1 labels every series with ``engine="N"`` (one per
data-parallel rank); figures are given per engine and summed. A metric that the server does not
export is reported by name as missing, never shown as zero.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field

from ..errors import VlaunchError
from ..probes import request

__all__ = ["METRICS", "Scrape", "EngineFigures", "Window", "parse", "fetch", "merge", "window", "MetricsUnavailable"]

#: What vlaunch reads, by short name: the V1 metric name first, then older names it also accepts.
METRICS: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
    "preemptions": ("vllm:num_preemptions_total",),
    "ttft": ("vllm:time_to_first_token_seconds",),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
}
_HISTOGRAMS = ("ttft", "itl")
_COUNTERS = ("prompt_tokens", "generation_tokens", "preemptions")
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


class MetricsUnavailable(VlaunchError):
    """The server's ``/metrics`` could not be read."""


@dataclass
class Scrape:
    """One ``/metrics`` response: samples by metric name, each a list of (labels, value), and when it was taken."""

    samples: dict[str, list[tuple[dict[str, str], float]]]
    taken: float = field(default_factory=time.monotonic)

    def find(self, short: str) -> str | None:
        """The name under which this scrape carries metric ``short`` (see :data:`METRICS`), or None."""
        suffix = "_count" if short in _HISTOGRAMS else ""
        return next((n for n in METRICS[short] if n + suffix in self.samples), None)

    def by_engine(self, name: str) -> dict[str, float]:
        """Values of ``name`` summed per ``engine`` label (series without one count as engine "0")."""
        out: dict[str, float] = {}
        for labels, value in self.samples.get(name, []):
            engine = labels.get("engine", "0")
            out[engine] = out.get(engine, 0.0) + value
        return out

    def buckets(self, name: str) -> dict[str, dict[float, float]]:
        """Cumulative histogram buckets of ``name`` per engine: {engine: {upper bound: count}}."""
        out: dict[str, dict[float, float]] = {}
        for labels, value in self.samples.get(name + "_bucket", []):
            bound = float(labels.get("le", "nan"))
            per = out.setdefault(labels.get("engine", "0"), {})
            per[bound] = per.get(bound, 0.0) + value
        return out


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def parse(text: str, taken: float | None = None) -> Scrape:
    """Parse Prometheus text exposition format; comment and malformed lines are ignored."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line.strip())
        if not match:
            continue
        name, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(raw_labels or "")}
        samples.setdefault(name, []).append((labels, value))
    return Scrape(samples, time.monotonic() if taken is None else taken)


def merge(scrapes: dict[str, Scrape]) -> Scrape:
    """Scrapes of several servers as one, each engine named after its server (``r1/0``): a replica
    group's engines side by side, and summed."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for server, scrape in scrapes.items():
        for name, series in scrape.samples.items():
            samples.setdefault(name, []).extend(({**labels, "engine": f"{server}/{labels.get('engine', '0')}"}, value)
                                                for labels, value in series)
    return Scrape(samples, max(scrape.taken for scrape in scrapes.values()))


def fetch(base_url: str, api_key: str | None = None, timeout: float = 5.0) -> Scrape:
    """GET ``base_url/metrics`` and parse it; :class:`MetricsUnavailable` says why when it cannot."""
    import urllib.error

    try:
        text = request(f"{base_url}/metrics", api_key, timeout=timeout)[1].decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise MetricsUnavailable(f"{base_url}/metrics answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetricsUnavailable(f"{base_url}/metrics does not answer ({reason})") from None
    scrape = parse(text)
    if not any(name.startswith("vllm:") for name in scrape.samples):
        raise MetricsUnavailable(f"{base_url}/metrics has no vllm: metrics (is this a vLLM server?)")
    return scrape


@dataclass
class EngineFigures:
    """Figures of one engine (or of all, summed) over a window. None means "not measured"."""

    running: float | None = None
    waiting: float | None = None
    kv_usage_pct: float | None = None
    prompt_tps: float | None = None
    generation_tps: float | None = None
    preemptions: float | None = None
    preemptions_total: float | None = None
    ttft_ms: dict[str, float | None] = field(default_factory=dict)
    itl_ms: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Window:
    """What two scrapes say: figures per engine and summed, what is missing, and what went wrong."""

    seconds: float
    engines: dict[str, EngineFigures]
    total: EngineFigures
    missing: list[str]
    notes: list[str]

    def to_json(self) -> dict:
        """A JSON-able dict."""
        from dataclasses import asdict

        return {"seconds": round(self.seconds, 3), "engines": {k: asdict(v) for k, v in self.engines.items()},
                "total": asdict(self.total), "missing": self.missing, "notes": self.notes}


def _quantile(q: float, deltas: dict[float, float]) -> float | None:
    """Prometheus-style ``histogram_quantile`` over cumulative bucket deltas."""
    bounds = sorted(deltas)
    if not bounds or deltas[bounds[-1]] <= 0:
        return None
    rank = q * deltas[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = deltas[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _latency(a: Scrape, b: Scrape, name: str, engine: str | None) -> dict[str, float | None]:
    """Mean, p50 and p99 in milliseconds of a histogram's observations between two scrapes."""
    def pick(values: dict[str, float]) -> float:
        return sum(values.values()) if engine is None else values.get(engine, 0.0)

    count = pick(b.by_engine(name + "_count")) - pick(a.by_engine(name + "_count"))
    total = pick(b.by_engine(name + "_sum")) - pick(a.by_engine(name + "_sum"))
    if count <= 0:
        return {"mean": None, "p50": None, "p99": None}
    before, after = a.buckets(name), b.buckets(name)
    engines = list(after) if engine is None else [engine]
    deltas: dict[float, float] = {}
    for eng in engines:
        for bound, value in after.get(eng, {}).items():
            deltas[bound] = deltas.get(bound, 0.0) + value - before.get(eng, {}).get(bound, 0.0)
    p50, p99 = _quantile(0.5, deltas), _quantile(0.99, deltas)
    return {"mean": 1000 * total / count, "p50": p50 and 1000 * p50, "p99": p99 and 1000 * p99}


def _figures(a: Scrape, b: Scrape, names: dict[str, str | None], engine: str | None, seconds: float,
             reset: bool) -> EngineFigures:
    def value(scrape: Scrape, short: str) -> float | None:
        name = names[short]
        if name is None:
            return None
        values = scrape.by_engine(name)
        return sum(values.values()) if engine is None else values.get(engine)

    fig = EngineFigures(running=value(b, "running"), waiting=value(b, "waiting"))
    kv = b.by_engine(names["kv_usage"]) if names["kv_usage"] else {}
    if kv:
        fig.kv_usage_pct = 100 * (sum(kv.values()) / len(kv) if engine is None else kv.get(engine, 0.0))
    deltas = {}
    for short in _COUNTERS:
        before, after = value(a, short), value(b, short)
        deltas[short] = None if before is None or after is None or reset else after - before
    if seconds > 0:
        fig.prompt_tps = deltas["prompt_tokens"] / seconds if deltas["prompt_tokens"] is not None else None
        fig.generation_tps = (deltas["generation_tokens"] / seconds
                              if deltas["generation_tokens"] is not None else None)
    fig.preemptions, fig.preemptions_total = deltas["preemptions"], value(b, "preemptions")
    for short, target in (("ttft", fig.ttft_ms), ("itl", fig.itl_ms)):
        if names[short] and not reset:
            target.update(_latency(a, b, names[short], engine))
    return fig


def window(a: Scrape, b: Scrape) -> Window:
    """Figures between scrape ``a`` and the later scrape ``b`` (rates from counter deltas)."""
    names = {short: b.find(short) for short in METRICS}
    missing = [METRICS[short][0] for short, name in names.items() if name is None]
    notes = [f"{METRICS[short][0]} is missing; read {name} instead (an older vLLM name)"
             for short, name in names.items() if name and name != METRICS[short][0]]
    reset = any(
        after < a.by_engine(names[short]).get(engine, 0.0)
        for short in _COUNTERS if names[short]
        for engine, after in b.by_engine(names[short]).items())
    if reset:
        notes.append("counters went back between two scrapes: the server restarted; rates resume next interval")
    seconds = b.taken - a.taken
    engine_ids = sorted({e for short in ("running", "generation_tokens") if names[short]
                         for e in b.by_engine(names[short])}, key=lambda e: (len(e), e))
    engines = {e: _figures(a, b, names, e, seconds, reset) for e in engine_ids}
    total = _figures(a, b, names, None, seconds, reset)
    return Window(seconds, engines, total, missing, notes)
