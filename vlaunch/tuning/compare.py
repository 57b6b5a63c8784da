"""``vlaunch bench --compare``: launch each profile in turn, benchmark it, bring it down, compare.

Every profile runs on the same backend with the same model, overrides and workload, through
:func:`vlaunch.api.up` / :func:`vlaunch.api.down`, so any backend works. A profile that fails to
start or to finish the benchmark is reported; the others' results are kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..errors import ConfigError, VlaunchError
from ..paths import state_dir
from .bench import ROWS, BenchFailed, run_bench
from .workload import Workload

__all__ = ["compare", "render_compare", "winner", "metric_of", "LOWER_IS_BETTER"]

#: Metrics where less is better; every other metric is better when higher.
LOWER_IS_BETTER = ("duration", "failed")


def _better(metric: str) -> Callable[[float, float], bool]:
    low = metric in LOWER_IS_BETTER or metric.endswith("_ms")
    return (lambda a, b: a < b) if low else (lambda a, b: a > b)


def _preflight(profiles: list[str], backend: str, overrides) -> str:
    """Resolve every profile before launching any; they must serve the same model."""
    from .. import api

    if len(profiles) < 2:
        raise ConfigError("--compare needs at least two profiles")
    if len(set(profiles)) != len(profiles):
        raise ConfigError("--compare lists a profile twice")
    models = {p: api.prepare(p, backend, overrides).profile.server.model for p in profiles}
    if None in models.values():
        raise ConfigError(f"no model for {', '.join(p for p, m in models.items() if not m)}: pass --model")
    if len(set(models.values())) > 1:
        raise ConfigError("the profiles serve different models (" + ", ".join(f"{p}: {m}" for p, m in models.items())
                          + "); pass --model to compare them on one")
    return next(iter(models.values()))


def _run_one(profile: str, backend: str, overrides, wl: Workload, where: str, via: str | None,
             start_timeout: float | None, progress, echo, bench_options: dict) -> dict:
    from .. import api

    entry: dict = {"profile": profile, "job": None, "summary": None, "error": None}
    try:
        echo(f"== {profile}: starting on {backend}")
        record = api.up(profile, backend, overrides, via=via, timeout=start_timeout, progress=progress)
        entry["job"], entry["config"] = record.name, record.config
        echo(f"== {profile}: job {record.name} ready; benchmarking ({wl.describe()})")
        entry["summary"] = run_bench(record.name, wl, where, **bench_options)
    except BenchFailed as exc:
        entry["summary"], entry["error"] = exc.summary, str(exc)
    except VlaunchError as exc:
        entry["error"] = str(exc)
    finally:
        if entry["job"]:
            try:
                api.down(entry["job"])
                echo(f"== {profile}: job {entry['job']} stopped")
            except VlaunchError as exc:
                entry["error"] = (entry["error"] or "") + f" (and stopping it failed: {exc})"
    if entry["error"]:
        echo(f"== {profile}: {entry['error']}")
    return entry


def metric_of(entry: dict, metric: str) -> float | None:
    """One figure of a compare entry's benchmark summary; None when the profile was not measured."""
    return ((entry.get("summary") or {}).get("metrics") or {}).get(metric)


def winner(entries: list[dict], metric: str) -> dict | None:
    """The entry with the best ``metric`` among complete runs."""
    better = _better(metric)
    best = None
    for entry in entries:
        value = metric_of(entry, metric)
        if (entry.get("summary") or {}).get("status") == "complete" and value is not None and (best is None or better(value, best[1])):
            best = (entry, value)
    return best[0] if best else None


def compare(profiles: list[str], backend: str, overrides, wl: Workload, where: str = "auto",
            metric: str = "output_throughput", via: str | None = None, start_timeout: float | None = None,
            progress=None, echo: Callable[[str], None] = print, bench_options: dict | None = None) -> dict:
    """Run the comparison and store it under the state directory; return the stored result.

    ``bench_options`` are passed to :func:`~vlaunch.tuning.bench.run_bench` (tokenizer, python, timeout).
    """
    model = _preflight(profiles, backend, overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    entries = [_run_one(p, backend, overrides, wl, where, via, start_timeout, progress, echo, bench_options or {})
               for p in profiles]
    best = winner(entries, metric)
    result = {"id": f"compare-{stamp}", "backend": backend, "model": model, "workload": wl.to_json(),
              "metric": metric, "winner": best["profile"] if best else None, "entries": entries}
    path = state_dir() / "bench" / f"compare-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    result["saved"] = str(path)
    return result


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def render_compare(result: dict) -> list[str]:
    """Side by side: a column per profile, then each profile's ratio to the first."""
    entries = result["entries"]
    names = [e["profile"] for e in entries]
    base = names[0]
    header = ["", *names, *(f"{n}/{base}" for n in names[1:])]
    rows = [header]
    for label, key, digits in ROWS:
        values = [metric_of(e, key) for e in entries]
        ratios = [f"{v / values[0]:.2f}x" if v is not None and values[0] else "-" for v in values[1:]]
        rows.append([label, *(_fmt(v, digits) for v in values), *ratios])
    rows.append(["status", *((e.get("summary") or {}).get("status", "not run") for e in entries),
                 *("" for _ in names[1:])])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    from .bench import describe_workload

    lines.insert(0, f"compare on {result['backend']}, model {result['model']},"
                    f" workload {describe_workload(result['workload'])}")
    winner_name = result["winner"] or "none (no profile completed)"
    lines.append(f"winner on {result['metric']}: {winner_name}; saved: {result['saved']}")
    return lines
