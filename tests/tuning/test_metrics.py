"""Parsing vLLM's /metrics and turning two scrapes into figures, on snapshots recorded from the CPU server."""

from __future__ import annotations

import re

import pytest

from tuning_support import FIXTURES, scrapes, snapshots
from vlaunch.tuning.metrics import METRICS, parse, window


def _value(path, line_start: str) -> float:
    """An independent reading of one sample from a snapshot file (the test's own regex, not the parser)."""
    for line in path.read_text().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in {path}")


def test_full_real_scrape_parses_every_engine_and_ignores_other_families():
    path = FIXTURES / "metrics" / "dp2-idle.prom"
    scrape = parse(path.read_text())
    assert len([x for x in path.read_text().splitlines() if x and not x.startswith("#")]) == sum(
        len(v) for v in scrape.samples.values())
    assert scrape.by_engine("vllm:num_requests_running") == {"0": 0.0, "1": 0.0}
    assert scrape.by_engine("vllm:prompt_tokens_total") == {
        engine: _value(path, f'vllm:prompt_tokens_total{{engine="{engine}"') for engine in ("0", "1")}
    info = [labels for labels, _ in scrape.samples["vllm:cache_config_info"]]
    assert [x["engine"] for x in info] == ["0", "1"] and info[0]["kv_cache_size_tokens"] == "2097152"
    assert all(scrape.find(short) == names[0] for short, names in METRICS.items())


def test_rates_come_from_counter_deltas_per_engine_and_summed():
    files = snapshots("dp2-full-batch-waiting")
    win = window(*scrapes(files, step=0.5))
    for engine in ("0", "1"):
        key = f'vllm:generation_tokens_total{{engine="{engine}"'
        expected = (_value(files[1], key) - _value(files[0], key)) / 0.5
        assert win.engines[engine].generation_tps == pytest.approx(expected)
        assert win.engines[engine].running == 16 and win.engines[engine].waiting == 16
    assert win.total.generation_tps == pytest.approx(sum(win.engines[e].generation_tps for e in ("0", "1")))
    assert win.total.running == 32 and win.total.waiting == 32
    assert win.total.kv_usage_pct == pytest.approx(100 * _value(files[1], 'vllm:kv_cache_usage_perc{engine="0"'))
    assert win.total.prompt_tps == 0.0  # no prefill happened between these two real scrapes
    assert win.total.ttft_ms == {"mean": None, "p50": None, "p99": None}  # nothing observed: not zero
    assert win.missing == [] and win.notes == []


def test_latency_means_come_from_histogram_deltas():
    before, after = snapshots("dp2-full-batch-waiting")[1], snapshots("dp2-full-batch")[0]  # consecutive scrapes
    win = window(*scrapes([before, after]))
    name = "vllm:time_to_first_token_seconds"
    for engine in ("0", "1"):
        count = (_value(after, f'{name}_count{{engine="{engine}"') - _value(before, f'{name}_count{{engine="{engine}"'))
        total = (_value(after, f'{name}_sum{{engine="{engine}"') - _value(before, f'{name}_sum{{engine="{engine}"'))
        assert count > 0
        ttft = win.engines[engine].ttft_ms
        assert ttft["mean"] == pytest.approx(1000 * total / count)
        assert ttft["p50"] <= ttft["p99"]
    assert win.total.itl_ms["mean"] > 0


def test_missing_and_renamed_metrics_are_named_never_zero():
    text = snapshots("dp2-full-batch")[0].read_text()
    # Constructed from the real snapshot: the KV metric removed, the ITL histogram under its older name.
    edited = "\n".join(x for x in text.splitlines() if "kv_cache_usage_perc" not in x)
    edited = edited.replace("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds")
    win = window(parse(edited, taken=0.0), parse(edited, taken=1.0))
    assert win.missing == ["vllm:kv_cache_usage_perc"]
    assert win.total.kv_usage_pct is None and win.engines["0"].kv_usage_pct is None
    assert any("vllm:time_per_output_token_seconds" in note for note in win.notes)
    assert win.total.itl_ms == {"mean": None, "p50": None, "p99": None}  # found, nothing new observed


def test_a_restart_between_scrapes_is_reported_not_shown_as_negative_rates():
    # Real snapshots replayed out of order: the later (busier) one first, as after a restart.
    later, earlier = snapshots("dp2-full-batch")[1], FIXTURES / "metrics" / "dp2-idle.prom"
    win = window(*scrapes([later, earlier]))
    assert win.total.generation_tps is None and win.total.prompt_tps is None
    assert any("restarted" in note for note in win.notes)


def test_escaped_label_values_and_odd_lines():
    scrape = parse('# HELP x\nvllm:x{engine="0",path="a\\"b,c"} 3 1700000000\nnot a sample line\nvllm:y 2\n')
    assert scrape.samples["vllm:x"] == [({"engine": "0", "path": 'a"b,c'}, 3.0)]
    assert scrape.by_engine("vllm:y") == {"0": 2.0}
    assert re.match(r"^vllm:", next(iter(scrape.samples)))
