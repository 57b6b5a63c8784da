"""Click commands of the tuning wing, added to the `vlaunch` group by vlaunch.cli.

Only click is imported here; each command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import shlex
import sys

import click

from .. import completion

__all__ = ["COMMANDS", "watch", "bench", "plan", "advise"]


def _echo_lines(lines) -> None:
    for line in lines:
        click.echo(line)


@click.command()
@click.argument("job", shell_complete=completion.jobs)
@click.option("--interval", "-i", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between two scrapes of /metrics.")
@click.option("--once", is_flag=True, help="Print one interval's figures and exit.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many intervals.")
@click.option("--json", "json_", is_flag=True, help="JSON (one object per interval; pretty with --once).")
def watch(job, interval, once, count, json_):
    """Live view of a job's vLLM metrics, per data-parallel engine and summed.

    Running and waiting requests, KV-cache usage, prompt and generation tokens/s (from counter
    deltas), preemptions, and TTFT / inter-token latency from vLLM's histograms.
    """
    from .watch import watch as run_watch

    run_watch(job, interval, once, json_, click.echo, tty=sys.stdout.isatty(), count=count)


def _workload_options(func):
    from_options = [
        click.option("--workload", "-w", "workload_name", default="smoke", show_default=True,
                     help="Named workload: smoke, chat, throughput, long-prompt."),
        click.option("--num-prompts", type=int, help="Requests to send."),
        click.option("--input-len", type=int, help="Prompt tokens per request."),
        click.option("--output-len", type=int, help="Generated tokens per request."),
        click.option("--concurrency", type=int, help="Most requests in flight at once."),
        click.option("--request-rate", type=float, help="Requests per second (default: all at once)."),
        click.option("--seed", type=int, help="Seed of the random dataset."),
        click.option("--where", type=click.Choice(["auto", "here", "target"]), default="auto", show_default=True,
                     help="Run the benchmark here (needs vLLM here) or through the job's transport on its target."),
    ]
    for option in reversed(from_options):
        func = option(func)
    return func


@click.command()
@click.argument("names", nargs=-1, required=True, shell_complete=completion.jobs_or_profiles)
@_workload_options
@click.option("--tokenizer", help="Tokenizer for the prompts (default: the job's model).")
@click.option("--python", "python_", metavar="PATH", help="Python with vLLM on the target (--where target).")
@click.option("--timeout", type=float, help="Give up on one benchmark after this many seconds.")
@click.option("--compare", "compare_", is_flag=True,
              help="NAMES are profiles: launch, benchmark and stop each in turn.")
@click.option("--backend", "-b", default="local", show_default=True, help="Backend for --compare.")
@click.option("--model", "-m", help="Model for --compare (the same for every profile).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override for every profile of --compare.")
@click.option("--vllm-args", default="", metavar="FLAGS", help="Extra vLLM flags for every profile of --compare.")
@click.option("--via", metavar="HOST", help="Submit --compare jobs through this SSH host.")
@click.option("--start-timeout", type=float, help="--compare: seconds each server may take to become ready.")
@click.option("--metric", default="output_throughput", show_default=True, help="--compare: what picks the winner.")
@click.option("--write", "write_name", metavar="NAME", help="--compare: write the winner as user profile NAME.")
@click.option("--force", is_flag=True, help="Let --write replace an existing profile.")
@click.option("--json", "json_", is_flag=True, help="Print the stored result as JSON.")
def bench(names, workload_name, num_prompts, input_len, output_len, concurrency, request_rate, seed, where,
          tokenizer, python_, timeout, compare_, backend, model, sets, vllm_args, via, start_timeout, metric,
          write_name, force, json_):
    """Benchmark a job with vLLM's own serving benchmark, or compare profiles.

    `vlaunch bench JOB` runs `vllm bench serve` (vLLM's module) against JOB in a subprocess and
    keeps the result with the job. `vlaunch bench --compare A B ...` starts each profile in turn on
    one backend with one model, benchmarks it with the same workload, stops it, and prints the
    results side by side with ratios to A.
    """
    from .workload import workload

    wl = workload(workload_name, num_prompts=num_prompts, input_len=input_len, output_len=output_len,
                  concurrency=concurrency, request_rate=request_rate, seed=seed)
    bench_options = {"tokenizer": tokenizer, "python": python_, "timeout": timeout}
    if compare_:
        _compare(list(names), wl, where, bench_options, json_, backend=backend, model=model, sets=sets,
                 vllm_args=vllm_args, via=via, start_timeout=start_timeout, metric=metric, write_name=write_name,
                 force=force)
        return
    if len(names) != 1 or write_name:
        from ..errors import ConfigError

        raise ConfigError("give one JOB (or --compare with two or more profiles; --write needs --compare)")
    from .bench import BenchFailed, render_result, run_bench

    try:
        summary = run_bench(names[0], wl, where, **bench_options)
    except BenchFailed as exc:
        if exc.summary and exc.summary.get("metrics"):
            _echo_lines([json.dumps(exc.summary, indent=2)] if json_ else render_result(exc.summary))
        raise
    _echo_lines([json.dumps(summary, indent=2)] if json_ else render_result(summary))


def _compare(profiles, wl, where, bench_options, json_, *, backend, model, sets, vllm_args, via, start_timeout,
             metric, write_name, force):
    from ..api import Overrides
    from ..errors import VlaunchError
    from ..progress import Progress
    from .compare import compare, render_compare

    overrides = Overrides(sets=list(sets), model=model, vllm_args=shlex.split(vllm_args))
    progress = Progress()

    def say(line: str) -> None:
        progress.close()  # a waiting line left open ends first
        click.echo(line, err=json_)

    try:
        result = compare(profiles, backend, overrides, wl, where=where, metric=metric, via=via,
                         start_timeout=start_timeout, progress=progress, echo=say, bench_options=bench_options)
    finally:
        progress.close()
    _echo_lines([json.dumps(result, indent=2)] if json_ else render_compare(result))
    best = next((e for e in result["entries"] if e["profile"] == result["winner"]), None)
    if write_name and best:
        path = _write_winner(write_name, best, result, force)
        say(f"wrote profile {write_name}: {path}")
    failed = [e for e in result["entries"] if e["error"]]
    if failed:
        raise VlaunchError("; ".join(f"{e['profile']}: {e['error'].splitlines()[0]}" for e in failed))
    if write_name and not best:
        raise VlaunchError(f"no profile completed its benchmark; {write_name} was not written")


def _write_winner(name, best, result, force):
    from .compare import metric_of
    from .profiles import derive, write_profile

    metric = result["metric"]

    def value(entry):
        figure = metric_of(entry, metric)
        return "n/a" if figure is None else f"{figure:,.1f}"

    others = ", ".join(f"{e['profile']} {value(e)}" for e in result["entries"] if e is not best)
    data = {"description": f"Winner of vlaunch bench --compare ({result['id']}): {metric} {value(best)} vs {others}",
            **derive(best["profile"], best["config"], {})}
    comments = [f"Written by vlaunch bench --compare; measurements: {result['saved']}",
                f"workload: {json.dumps(result['workload'])}"]
    return write_profile(name, data, comments, force)


@click.command()
@click.option("--model", "-m", required=True, help="Hub id (read from the local HF cache), folder or config.json.")
@click.option("--gpus", type=int, required=True, help="GPUs per node (engines, for vllm-cpu).")
@click.option("--gpu-memory", type=float, metavar="GiB", help="Memory of one GPU.")
@click.option("--nodes", type=int, default=1, show_default=True, help="Nodes (each replica stays on one node).")
@click.option("--utilization", type=float, default=0.9, show_default=True, help="gpu_memory_utilization to plan for.")
@click.option("--reserve", type=float, default=2.0, show_default=True, metavar="GiB",
              help="Per-GPU memory kept for activations and CUDA graphs.")
@click.option("--kv-headroom", type=float, default=0.25, show_default=True,
              help="Least share of the usable memory the KV cache must keep.")
@click.option("--prompt-len", type=int, default=512, show_default=True, help="Expected prompt tokens.")
@click.option("--output-len", type=int, default=256, show_default=True, help="Expected output tokens.")
@click.option("--context-len", type=int, help="Tokens per sequence for max-num-seqs (default: prompt + output).")
@click.option("--max-model-len", type=int, help="Longest context to allow.")
@click.option("--dtype", help="Weight dtype (default: the config's).")
@click.option("--kv-cache-dtype", help="KV cache dtype, e.g. fp8 (default: the weights').")
@click.option("--kv-space", type=float, metavar="GiB",
              help="Fixed KV cache per engine (vllm-cpu's VLLM_CPU_KVCACHE_SPACE).")
@click.option("--extends", help="Base profile of the written profile (its environment, command...).")
@click.option("--write", "write_name", metavar="NAME", help="Write the plan as user profile NAME.")
@click.option("--force", is_flag=True, help="Let --write replace an existing profile.")
@click.option("--json", "json_", is_flag=True, help="Print the plan and profile as JSON.")
def plan(model, gpus, gpu_memory, nodes, utilization, reserve, kv_headroom, prompt_len, output_len, context_len,
         max_model_len, dtype, kv_cache_dtype, kv_space, extends, write_name, force, json_):
    """Plan parallelism and batch sizes from the model's config.json and the GPUs' memory.

    Never downloads weights: the config comes from a local folder or the Hugging Face cache.
    """
    from .plan import PlanInput, make_plan, plan_profile
    from .profiles import to_toml, write_profile

    inp = PlanInput(model, gpus, gpu_memory, nodes, utilization, reserve, kv_headroom, prompt_len, output_len,
                    context_len, max_model_len, dtype, kv_cache_dtype, kv_space)
    result = make_plan(inp)
    from ..config.layers import resolve_profile

    data = plan_profile(result, inp, extends, resolve_profile(extends).profile if extends is not None else None)
    if json_:
        click.echo(json.dumps({"plan": result.to_json(), "profile": data}, indent=2))
    else:
        _echo_lines(result.reasoning)
        click.echo("\nprofile:\n" + to_toml(data))
    if write_name:
        path = write_profile(write_name, data, ["Written by vlaunch plan; reasoning: vlaunch plan "
                                                + " ".join(shlex.quote(a) for a in sys.argv[2:])], force)
        click.echo(f"wrote profile {write_name}: {path}", err=json_)


@click.command()
@click.argument("job", shell_complete=completion.jobs)
@click.option("--window", type=click.FloatRange(min=0.5), default=30.0, show_default=True,
              help="Seconds of metrics to read.")
@click.option("--interval", "-i", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between scrapes.")
@click.option("--gpu-memory", type=float, metavar="GiB", help="Memory of one GPU, for the parallelism check.")
@click.option("--write", "write_name", metavar="NAME", help="Write the job's profile with the change as NAME.")
@click.option("--force", is_flag=True, help="Let --write replace an existing profile.")
@click.option("--json", "json_", is_flag=True, help="Print the advice as JSON.")
def advise(job, window, interval, gpu_memory, write_name, force, json_):
    """Name the next change to try for a running job, with its reason, from live metrics."""
    from dataclasses import asdict

    from .advise import advise as decide
    from .advise import api_server_check, collect, evidence, observe, parallelism_check
    from .live import open_job

    with open_job(job) as live:
        scrapes, cut = collect(live, window, interval)
        config = live.record.config
        vllm = config.get("vllm", {})
        parallel, note = parallelism_check(live.session.profile.server.model, vllm, gpu_memory)
        seen = observe(scrapes)
        advice = decide(seen, vllm, parallel, api_server_check(seen, live.session.profile))
        advice.notes += [n for n in (cut, note) if n]
        profile = live.record.profile
    if json_:
        click.echo(json.dumps({"job": job, "observed": asdict(seen), "advice": asdict(advice)}, indent=2))
    else:
        _echo_lines([f"job {job} (profile {profile}): {evidence(seen)}", f"next change: {advice.summary}",
                     f"  why: {advice.reason}"]
                    + [f"  then: {t}" for t in advice.then] + [f"  note: {n}" for n in advice.notes])
        if advice.change:
            sets = " ".join("--set " + shlex.quote(f"{k}={v if isinstance(v, int) else json.dumps(v)}")
                            for k, v in advice.change.items())
            click.echo(f"  try: vlaunch up -p {profile} {sets}  (or --write NAME, then vlaunch bench --compare)")
    if write_name:
        if not advice.change:
            from ..errors import VlaunchError

            raise VlaunchError(f"no change to write: {advice.summary}")
        from .profiles import derive, write_profile

        data = {"description": f"{profile} after vlaunch advise: {advice.summary}",
                **derive(profile, config, advice.change)}
        path = write_profile(write_name, data, [f"Written by vlaunch advise {job}: {advice.reason}"], force)
        click.echo(f"wrote profile {write_name}: {path}", err=json_)


COMMANDS: list = [watch, bench, plan, advise]

