"""``vlaunch advise``: the next change to try, from live metrics over a window, with its reason.

Rules, in order (the seed's batch-tuning table and parallelism table, after one measured on one H200):

1. The one API server process busy at a full core: more API servers (one Python process feeds every
   engine, and past it nothing the engine does matters).
2. KV cache above 80 %, or preemptions: lower ``max_num_seqs`` (or give the KV cache more memory).
3. Tensor parallelism for a model that fits one GPU: use those GPUs as data-parallel replicas.
4. KV cache below 30 % while requests wait or the running batch is full: raise ``max_num_seqs``.
5. Otherwise: no change (30-70 % is the seed's optimal band).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .metrics import MetricsUnavailable, Scrape, fetch

__all__ = ["Observed", "Advice", "collect", "observe", "advise", "evidence", "parallelism_check", "api_server_check",
           "LOW_KV", "HIGH_KV", "API_SERVER_BUSY"]

LOW_KV, HIGH_KV = 30.0, 80.0
#: Cores of CPU time per second at which the API server process counts as saturated (its event loop
#: runs on one core; it measured 0.99-1.06 wherever it held back an H200, 0.37 at 8 requests).
API_SERVER_BUSY = 0.9
#: prometheus_client's CPU counter of the process that answers /metrics. vLLM exports it only when one
#: API server runs (several share a multi-process registry, which has no process metrics).
_PROCESS_CPU = "process_cpu_seconds_total"


@dataclass
class Observed:
    """What a window of scrapes showed (None: the metric is missing)."""

    samples: int
    seconds: float
    kv_peak: float | None
    kv_mean: float | None
    waiting_peak: float | None
    running_peak: float | None
    preemptions: float | None
    generation_tokens: float | None
    engines: int
    api_server_cores: float | None = None
    itl_mean_ms: float | None = None
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Advice:
    """The next change (settings to set, empty for none), why, and what else was noticed."""

    rule: str
    summary: str
    reason: str
    change: dict = field(default_factory=dict)
    then: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def collect(job, seconds: float, interval: float) -> tuple[list[Scrape], str | None]:
    """Scrape ``job`` (a :class:`~vlaunch.tuning.live.LiveJob`) every ``interval`` s for ``seconds``.

    If the server stops answering after two scrapes, the window is cut short and a note says so.
    """
    import time

    scrapes = [fetch(job.url, job.api_key)]
    deadline = scrapes[0].taken + seconds
    while time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        try:
            scrapes.append(fetch(job.url, job.api_key))
        except MetricsUnavailable as exc:
            if len(scrapes) < 2:
                raise
            return scrapes, f"window cut short after {scrapes[-1].taken - scrapes[0].taken:.1f} s: {exc}"
    if len(scrapes) < 2:
        time.sleep(interval)
        scrapes.append(fetch(job.url, job.api_key))
    return scrapes, None


def _series(scrapes: list[Scrape], short: str) -> list[dict[str, float]] | None:
    name = scrapes[-1].find(short)
    return [s.by_engine(name) for s in scrapes] if name else None


def _delta(series: list[dict[str, float]] | None) -> float | None:
    if not series:
        return None
    first, last = sum(series[0].values()), sum(series[-1].values())
    return last - first if last >= first else None


def _cores(first: Scrape, last: Scrape) -> float | None:
    """CPU seconds per second of the process answering /metrics (None: not exported, or it restarted)."""
    before, after = (sum(v for _, v in s.samples.get(_PROCESS_CPU, [])) for s in (first, last))
    seconds = last.taken - first.taken
    if _PROCESS_CPU not in first.samples or _PROCESS_CPU not in last.samples or seconds <= 0 or after < before:
        return None
    return (after - before) / seconds


def observe(scrapes: list[Scrape]) -> Observed:
    """Summarise a window of at least two scrapes (oldest first)."""
    from .metrics import METRICS, window

    kv, waiting, running = (_series(scrapes, s) for s in ("kv_usage", "waiting", "running"))
    preempt, generation = _series(scrapes, "preemptions"), _series(scrapes, "generation_tokens")
    missing = [METRICS[s][0] for s in ("kv_usage", "waiting", "running", "preemptions", "generation_tokens")
               if scrapes[-1].find(s) is None]
    notes = []
    for name, series in (("preemptions", preempt), ("generation tokens", generation)):
        if series and _delta(series) is None:
            notes.append(f"the {name} counter went back during the window: the server restarted")
    kv_values = [100 * v for sample in kv for v in sample.values()] if kv else []
    return Observed(
        samples=len(scrapes), seconds=scrapes[-1].taken - scrapes[0].taken,
        kv_peak=max(kv_values) if kv_values else None,
        kv_mean=sum(kv_values) / len(kv_values) if kv_values else None,
        waiting_peak=max(sum(s.values()) for s in waiting) if waiting else None,
        running_peak=max((v for s in running for v in s.values()), default=0.0) if running else None,
        preemptions=_delta(preempt), generation_tokens=_delta(generation),
        engines=max((len(s) for s in running or kv or [{}]), default=0),
        api_server_cores=_cores(scrapes[0], scrapes[-1]),
        itl_mean_ms=window(scrapes[0], scrapes[-1]).total.itl_ms.get("mean"), missing=missing, notes=notes)


def _batch_now(max_num_seqs: int | None, seen: Observed) -> tuple[int, str]:
    if max_num_seqs:
        return max_num_seqs, f"max_num_seqs {max_num_seqs}"
    peak = int(seen.running_peak or 1)
    return peak, f"max_num_seqs not set (vLLM's default); {peak} ran at most per engine"


def evidence(seen: Observed) -> str:
    """One line with the figures the advice rests on."""
    def fmt(value, unit="", digits=1):
        return "n/a" if value is None else f"{value:,.{digits}f}{unit}"

    rate = seen.generation_tokens / seen.seconds if seen.generation_tokens is not None and seen.seconds > 0 else None
    return (f"{seen.samples} samples over {seen.seconds:.1f} s, {seen.engines} engine(s): KV cache peak"
            f" {fmt(seen.kv_peak, '%')}, mean {fmt(seen.kv_mean, '%')};"
            f" waiting peak {fmt(seen.waiting_peak, digits=0)}; running peak per engine"
            f" {fmt(seen.running_peak, digits=0)}; preemptions {fmt(seen.preemptions, digits=0)};"
            f" generation {fmt(rate)} tok/s; inter-token latency mean {fmt(seen.itl_mean_ms, ' ms')}"
            + ("" if seen.api_server_cores is None else f"; API server CPU {seen.api_server_cores:.2f} cores"))


def _lower(seen: Observed, max_num_seqs: int | None, utilization: float | None) -> Advice | None:
    hot = seen.kv_peak is not None and seen.kv_peak > HIGH_KV
    if not hot and not seen.preemptions:
        return None
    now, what = _batch_now(max_num_seqs, seen)
    new = max(1, now // 2)
    why = []
    if hot:
        why.append(f"KV cache usage peaked at {seen.kv_peak:.1f}% (> {HIGH_KV:.0f}%)")
    if seen.preemptions:
        why.append(f"{seen.preemptions:,.0f} requests were preempted (evicted and recomputed) in {seen.seconds:.1f} s")
    util = utilization or 0.9
    alt = (f"or give the KV cache more memory (gpu_memory_utilization {util:g} -> {min(0.95, util + 0.05):g},"
           " or kv_cache_dtype fp8)")
    return Advice("lower-batch", f"lower max_num_seqs {now} -> {new}",
                  f"{' and '.join(why)}; {what}. Seed table: > 80% or preemptions -> lower max-num-seqs {alt}",
                  {"vllm.max_num_seqs": new})


def _raise(seen: Observed, max_num_seqs: int | None) -> Advice | None:
    if seen.kv_peak is None or seen.kv_peak >= LOW_KV:
        return None
    now, what = _batch_now(max_num_seqs, seen)
    # Without max_num_seqs in the profile the cap is vLLM's default, unknown here: only waiting counts.
    full = bool(max_num_seqs) and seen.running_peak is not None and seen.running_peak >= max_num_seqs
    waiting = bool(seen.waiting_peak)
    if not (full or waiting):
        return None
    signs = [s for s, on in ((f"up to {seen.waiting_peak:,.0f} requests waited", waiting),
                             (f"the running batch reached {now} per engine", full)) if on]
    return Advice("raise-batch", f"raise max_num_seqs {now} -> {now * 2}",
                  f"KV cache usage peaked at only {seen.kv_peak:.1f}% (< {LOW_KV:.0f}%) while {' and '.join(signs)};"
                  f" {what}. Seed table: < 30% -> raise max-num-seqs (128 -> 256 -> 512)",
                  {"vllm.max_num_seqs": now * 2})


def advise(seen: Observed, vllm: dict, parallelism: Advice | None = None, front_end: Advice | None = None) -> Advice:
    """The next change for a job whose engine settings are ``vllm`` (the profile's ``vllm`` table);
    ``parallelism`` and ``front_end`` are what :func:`parallelism_check` and :func:`api_server_check` found."""
    found = [a for a in (front_end, _lower(seen, vllm.get("max_num_seqs"), vllm.get("gpu_memory_utilization")),
                         parallelism, _raise(seen, vllm.get("max_num_seqs"))) if a]
    notes = list(seen.notes)
    if seen.missing:
        notes.append("missing from /metrics: " + ", ".join(seen.missing))
    if found:
        first = found[0]
        first.then = [a.summary for a in found[1:]]
        first.notes = notes
        return first
    if seen.kv_peak is None:
        return Advice("unknown", "no advice on the batch size", "vllm:kv_cache_usage_perc is missing from /metrics,"
                      " and the batch rules need it", notes=notes)
    if not seen.running_peak and not seen.waiting_peak and not seen.generation_tokens:
        return Advice("idle", "no advice yet: no traffic in the window",
                      "nothing ran or waited; measure under load (e.g. `vlaunch bench` in another terminal)",
                      notes=notes)
    band = "the seed's optimal band (30-70%)" if seen.kv_peak <= 70 else "below the 80% limit"
    if seen.kv_peak < LOW_KV:
        reason = (f"KV cache usage peaked at {seen.kv_peak:.1f}%, but nothing waited and the batch never filled:"
                  " the batch size is not what limits this load")
    else:
        reason = f"KV cache usage peaked at {seen.kv_peak:.1f}%, in {band}, with no preemptions"
    return Advice("keep", "no change", reason, notes=notes)


def parallelism_check(model: str | None, vllm: dict, gpu_memory: float | None) -> tuple[Advice | None, str | None]:
    """Advice to trade tensor for data parallelism when the model fits one GPU; else None and a note why not."""
    from ..errors import ConfigError
    from .model_config import GIB
    from .plan import PlanInput, make_plan

    tp, dp = vllm.get("tensor_parallel_size") or 1, vllm.get("data_parallel_size") or 1
    if tp <= 1:
        return None, None
    if gpu_memory is None or not model:
        return None, ("parallelism check skipped: pass --gpu-memory (GiB per GPU) to check whether one GPU"
                      " holds the model")
    try:
        plan = make_plan(PlanInput(model, gpus=1, gpu_memory=gpu_memory,
                                   utilization=vllm.get("gpu_memory_utilization") or 0.9,
                                   max_model_len=vllm.get("max_model_len"), dtype=vllm.get("dtype"),
                                   kv_cache_dtype=vllm.get("kv_cache_dtype")))
    except ConfigError as exc:
        return None, f"tensor parallel {tp} kept: {exc}"
    return Advice("use-dp", f"tensor_parallel_size {tp} -> 1, data_parallel_size {dp} -> {tp * dp}",
                  f"the weights ({plan.weight_bytes / GIB:,.2f} GiB) fit one {gpu_memory:g} GiB GPU with"
                  f" {plan.kv_tokens_per_replica:,} tokens of KV cache, yet tensor parallel {tp} splits every step"
                  " over GPUs that then mostly wait on each other. Seed table: a model that fits one GPU -> data"
                  " parallelism, one replica per GPU",
                  {"vllm.tensor_parallel_size": 1, "vllm.data_parallel_size": tp * dp}), None


def api_server_check(seen: Observed, profile) -> Advice | None:
    """Advice for more API servers when the one API server process of ``profile``'s job (a
    :class:`~vlaunch.config.model.Profile`) was saturated under load; None otherwise."""
    from ..config.flags import api_server_count, one_api_server
    from .plan import API_SERVERS_PER_ENGINE

    cores = seen.api_server_cores
    if cores is None or cores < API_SERVER_BUSY or not seen.generation_tokens:
        return None
    engines = profile.vllm.data_parallel_size
    wanted = API_SERVERS_PER_ENGINE * engines
    change: dict = ({"vllm.api_server_count": wanted} if profile.vllm.api_server_count
                    else {"server.api_servers_per_engine": API_SERVERS_PER_ENGINE})
    command = list(profile.server.command)
    if one_api_server(profile):
        at = next(i for i, word in enumerate(command) if word.startswith("vllm.entrypoints."))
        change["server.command"] = command[:at] + ["vllm.entrypoints.cli.main", "serve"] + command[at + 1:]
    return Advice("api-servers", f"API servers {api_server_count(profile)} -> {wanted}"
                  f" ({API_SERVERS_PER_ENGINE} per engine x {engines})",
                  f"the API server process used {cores:.2f} cores ({_PROCESS_CPU}), all one Python process gets:"
                  " it tokenizes, detokenizes and streams for every request, so the engine waits on it and its running"
                  " batch dips between refills. Measured on one H200"
                  " (turbo, c=512): one API server 14.4k output tok/s at 1.01 cores, four 23.1k"
                  + ("; the command becomes vLLM's serve form, since the api_server module starts one API server"
                     " whatever it is told" if "server.command" in change else ""), change)
