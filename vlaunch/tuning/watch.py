"""``vlaunch watch``: a live view of a server's /metrics, per data-parallel engine and summed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from ..errors import VlaunchError
from .live import LiveJob, open_target
from .metrics import EngineFigures, MetricsUnavailable, Window, window

__all__ = ["watch", "render_window", "HEADER"]

HEADER = ("ENGINE", "RUNNING", "WAITING", "KV%", "PROMPT tok/s", "GEN tok/s", "PREEMPT", "TTFT ms mean/p99",
          "ITL ms mean/p99")
_CLEAR = "\033[H\033[J"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _latency(values: dict) -> str:
    if not values:
        return "n/a"
    if values.get("mean") is None:
        return "-"
    return f"{values['mean']:,.1f}/{_num(values.get('p99'), 1)}"


def _row(label: str, fig: EngineFigures) -> tuple[str, ...]:
    kv_digits = 1 if fig.kv_usage_pct is None or fig.kv_usage_pct >= 0.1 else 3
    return (label, _num(fig.running), _num(fig.waiting), _num(fig.kv_usage_pct, kv_digits), _num(fig.prompt_tps, 1),
            _num(fig.generation_tps, 1), _num(fig.preemptions), _latency(fig.ttft_ms), _latency(fig.itl_ms))


def render_window(win: Window) -> list[str]:
    """The table of one window: a row per engine, then the sum, then what is missing and any notes."""
    rows = [HEADER] + [_row(engine, fig) for engine, fig in win.engines.items()]
    if len(win.engines) != 1:
        rows.append(_row("all", win.total))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    if win.missing:
        lines.append("missing from /metrics (shown as n/a): " + ", ".join(win.missing))
    lines += [f"note: {note}" for note in win.notes]
    lines.append(f"over the last {win.seconds:.1f} s; KV% of 'all' is the mean over engines; '-' = nothing observed")
    return lines


def _payload(job: LiveJob, win: Window) -> dict:
    return {"job": job.record.name, "url": job.url, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **win.to_json()}


def watch(name: str, interval: float, once: bool, as_json: bool, echo: Callable[[str], None],
          tty: bool = False, count: int | None = None) -> Window | None:
    """Show ``name``'s metrics every ``interval`` seconds (``once``: one window, then return it); a replica
    group's: a row per replica's engine (``r1/0``), and their sum.

    A server that stops answering is reported once per outage and watched until it answers again
    or its job ends; what was printed before stays.
    """
    with open_target(name) as job:
        previous = job.scrape()
        shown, outage = 0, None
        while count is None or shown < count:
            time.sleep(interval)
            try:
                current = job.scrape()
            except MetricsUnavailable as exc:
                if once:
                    raise
                ended = job.ended()
                if ended:
                    raise VlaunchError(f"job {name} ended while watching ({ended});"
                                       " figures up to then are above") from None
                if outage is None:
                    outage = str(exc)
                    echo(f"{time.strftime('%H:%M:%S')} server not answering: {exc}; retrying every {interval:g} s")
                continue
            if outage is not None:
                echo(f"{time.strftime('%H:%M:%S')} server answers again")
                outage = None
            win, previous = window(previous, current), current
            shown += 1
            if as_json:
                echo(json.dumps(_payload(job, win), indent=2 if once else None))
            else:
                prefix = _CLEAR if tty and not once else ""
                echo(prefix + f"{'group' if job.replicas else 'job'} {name}  {job.url}  {time.strftime('%H:%M:%S')}\n" + "\n".join(render_window(win)))
            if once:
                return win
    return None
