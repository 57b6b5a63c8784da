"""``vlaunch bench``: vLLM's own serving benchmark against a job, in a subprocess, results kept with the job.

Where it runs:

* ``here``: this machine's Python (which must import vLLM), against the URL readiness uses
  (through the SSH forward where the job is remote);
* ``target``: through the job's transport, on the machine that runs the job's commands, inside the
  job's own environment (setup lines, variables; the API key read from the job's key file), against
  the address the job published.
  The job's server command picks the program: ``python...`` runs the runner module copied into the
  run directory, a ``vllm`` console script runs ``vllm bench serve`` itself.

``auto`` is ``here`` when vLLM is importable here, else ``target``. Raw output and log go to
``<run dir>/bench/`` (target) or the state directory (here); the summary goes to
``<state dir>/bench/<job>/<id>.json`` and to the job's run directory.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

from .. import apikey, shell
from ..backend import JobSpec
from ..errors import ConfigError, VlaunchError
from ..paths import state_dir
from ..probes import probe
from ..registry import now_iso
from ..script import RUN_DIR_VAR, environment_block
from .live import LiveJob, open_target
from .sampler import Sampler, summarize_samples
from .workload import Workload

__all__ = ["run_bench", "summarize", "render_result", "results_dir", "describe_workload", "BenchFailed", "WHERE",
           "ROWS"]

WHERE = ("auto", "here", "target")
_RUNNER = Path(__file__).with_name("bench_runner.py")
_SCALARS = ("num_prompts", "completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
            "request_throughput", "output_throughput", "total_token_throughput", "max_concurrent_requests")
_LATENCY = re.compile(r"^(mean|median|std|p\d+)_(ttft|tpot|itl|e2el)_ms$")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


class BenchFailed(VlaunchError):
    """The benchmark did not finish, or finished with failed requests; ``summary`` is what was kept."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


def results_dir(job: str) -> Path:
    """Where the summaries of job ``job``'s benchmarks are kept on this machine."""
    return state_dir() / "bench" / job


def _choose(where: str) -> str:
    if where not in WHERE:
        raise ConfigError(f"--where {where!r}: choose one of {', '.join(WHERE)}")
    if where != "auto":
        return where
    from ..vllm_args import vllm_available

    return "here" if vllm_available() else "target"


def _benchmark_args(job: LiveJob, url: str, wl: Workload, tokenizer: str | None) -> list[str]:
    record, profile = job.record, job.session.profile
    model = profile.server.model or record.served_model_name
    return ["--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions",
            "--model", model, "--served-model-name", record.served_model_name or model,
            "--tokenizer", tokenizer or model, *wl.vllm_args(),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
            "--disable-tqdm", "--save-detailed", "--label", record.name]


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if _EXCEPTION.match(line)]
    return (errors or lines or ["no output"])[-1][:300]


def _run_here(job: LiveJob, args: list[str], folder: Path, stamp: str, timeout: float | None) -> tuple[str | None, str]:
    """Run the runner with this Python; return (raw JSON or None, log text)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw_path, log_path = folder / f"{stamp}.raw.json", folder / f"{stamp}.log"
    env = {**os.environ, **job.session.profile.environment.variables}
    if job.api_key:
        env["OPENAI_API_KEY"] = job.api_key
    with open(log_path, "ab") as log:
        try:
            subprocess.run([sys.executable, str(_RUNNER), str(raw_path), *args], stdin=subprocess.DEVNULL,
                           stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BenchFailed(f"the benchmark did not finish within {timeout:g} s; log: {log_path}") from None
    raw = raw_path.read_text() if raw_path.is_file() else None
    return raw, log_path.read_text(errors="replace")


def _target_argv(profile, python: str | None, runner: str, raw: str, args: list[str]) -> list[str]:
    program = profile.server.command[0]
    if python or PurePosixPath(program).name.startswith("python"):
        return [python or program, runner, raw, *args]
    if PurePosixPath(program).name == "vllm":
        raw_path = PurePosixPath(raw)
        return [program, "bench", "serve", *args, "--save-result", "--result-dir", str(raw_path.parent),
                "--result-filename", raw_path.name]
    return ["python3", runner, raw, *args]


def _run_target(job: LiveJob, args: list[str], stamp: str, python: str | None,
                timeout: float | None) -> tuple[str | None, str]:
    """Run the benchmark through the job's transport, in the job's environment; return (raw JSON or None, log)."""
    record, transport = job.record, job.session.transport
    spec = JobSpec(record.name, record.profile, job.session.profile, None, record.run_dir)
    runner, raw, log, script = (spec.path(f"bench/{leaf}") for leaf in
                                ("bench_runner.py", f"{stamp}.raw.json", f"{stamp}.log", f"{stamp}.sh"))
    argv = _target_argv(job.session.profile, python, runner, raw, args)
    if runner in argv:  # the `vllm bench serve` form needs no runner
        transport.write_file(runner, _RUNNER.read_text())
    lines = ["#!/bin/bash", f"# vlaunch bench {stamp} of job {record.name}",
             f"{RUN_DIR_VAR}={shell.quote(record.run_dir)}", f'cd -- "${RUN_DIR_VAR}" || exit 1',
             f"exec >>{shell.quote(log)} 2>&1", environment_block(spec),
             apikey.client_export_line(RUN_DIR_VAR),
             "exec " + shell.join(argv)]
    transport.write_file(script, "\n".join(lines) + "\n", mode=0o700)
    try:
        transport.run(["bash", script], timeout=timeout)
    except VlaunchError as exc:
        raise BenchFailed(f"the benchmark on the target failed to run: {exc}; log: {log}") from None
    data = transport.read_file(raw)
    text = (transport.read_file(log) or b"").decode(errors="replace")
    return (data.decode() if data else None), text


def summarize(raw: dict) -> dict:
    """The figures worth keeping from vLLM's result dict, plus a status and the first distinct errors."""
    metrics = {k: raw[k] for k in _SCALARS if k in raw}
    metrics.update({k: v for k, v in raw.items() if _LATENCY.match(k) and v is not None})
    errors = list(dict.fromkeys(str(e).strip().splitlines()[-1][:200] for e in raw.get("errors") or [] if e))[:3]
    total, done = metrics.get("num_prompts"), metrics.get("completed", 0)
    status = "complete" if done and done == total else "partial" if done else "failed"
    return {"status": status, "metrics": metrics, "errors": errors}


def _store(job: LiveJob, summary: dict) -> Path:
    path = results_dir(job.record.name) / f"{summary['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2)
    path.write_text(text)
    try:
        job.session.transport.write_file(job.record.path(f"bench/{summary['id']}.json"), text)
    except (OSError, VlaunchError):
        pass  # the copy here is the one that counts
    return path


def _unique_stamp(job: str, workload: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{workload}"
    n = 1
    while (results_dir(job) / f"{stamp}.json").exists():
        n += 1
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{workload}-{n}"
    return stamp


def run_bench(name: str, wl: Workload, where: str = "auto", tokenizer: str | None = None,
              python: str | None = None, timeout: float | None = None) -> dict:
    """Benchmark job ``name`` (or a replica group, through its router) with workload ``wl``; return the
    stored summary.

    Raises :class:`BenchFailed` (carrying the stored summary when there is one) when the server does
    not answer, the benchmark does not finish, or requests failed.
    """
    asked, where = where, _choose(where)
    with open_target(name) as job:
        if job.replicas:  # a group: through its router, which runs here
            if asked == "target":
                raise ConfigError(f"group {name} is benchmarked here, through its router: drop --where target")
            where = "here"
        health = probe("health", job.url, None, None)
        if not health.ok:
            raise BenchFailed(f"job {name} does not answer at {job.url} ({health.detail}); see `vlaunch status {shlex.quote(name)}`")
        stamp = _unique_stamp(name, wl.name)
        url = job.url if where == "here" else job.record.endpoint
        args = _benchmark_args(job, url, wl, tokenizer)
        summary = _context(job, stamp, wl, where, url)
        sampler = Sampler(job.url, job.api_key, job.record.run_dir).start()
        try:
            if where == "here":
                _check_tokenizer_here(args[args.index("--tokenizer") + 1])
                raw_text, log = _run_here(job, args, results_dir(name), stamp, timeout)
                folder = str(results_dir(name))
            else:
                raw_text, log = _run_target(job, args, stamp, python, timeout)
                folder = job.record.path("bench")
        finally:
            samples = sampler.stop()
        summary.update(server=summarize_samples(samples), samples=samples)
        summary.update(finished_at=now_iso(),
                       files={"raw": f"{folder}/{stamp}.raw.json", "log": f"{folder}/{stamp}.log"})
        if raw_text is None:
            summary.update(status="failed", metrics={}, errors=[_last_error(log)])
        else:
            summary.update(summarize(json.loads(raw_text)))
        summary["saved"] = str(_store(job, summary))
    if summary["status"] != "complete":
        raise BenchFailed(_failure_line(summary), summary)
    return summary


def _check_tokenizer_here(tokenizer: str) -> None:
    if tokenizer.startswith(("/", "./", "~")) and not Path(tokenizer).expanduser().exists():
        raise ConfigError(f"the tokenizer {tokenizer} is not on this machine: use --where target or --tokenizer")


def _context(job: LiveJob, stamp: str, wl: Workload, where: str, url: str) -> dict:
    """What a summary records besides the figures: the job, its engine settings, the workload, where."""
    record = job.record
    return {"id": stamp, "job": record.name, "profile": record.profile, "backend": record.backend,
            "model": job.session.profile.server.model, "command": record.command,
            "vllm": record.config.get("vllm", {}), "workload": wl.to_json(), "where": where, "url": url,
            "started_at": now_iso()}


def _failure_line(summary: dict) -> str:
    m, first = summary["metrics"], (summary["errors"] or ["no error text"])[0]
    if summary["status"] == "partial":
        head = f"benchmark partial: {m.get('failed', '?')} of {m.get('num_prompts', '?')} requests failed"
    elif m:
        head = "benchmark failed: every request failed"
    else:
        head = "benchmark failed"
    return f"{head} ({first}); kept: {summary['saved']}; log: {summary['files']['log']}"


def _cell(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


#: Rows of the result table: label, metric key, digits.
ROWS = (("completed", "completed", 0), ("failed", "failed", 0), ("duration s", "duration", 2),
        ("requests/s", "request_throughput", 2), ("output tok/s", "output_throughput", 1),
        ("total tok/s", "total_token_throughput", 1), ("TTFT mean ms", "mean_ttft_ms", 1),
        ("TTFT p99 ms", "p99_ttft_ms", 1), ("TPOT mean ms", "mean_tpot_ms", 2), ("ITL mean ms", "mean_itl_ms", 2),
        ("ITL p99 ms", "p99_itl_ms", 2), ("E2E mean ms", "mean_e2el_ms", 1))


def render_result(summary: dict) -> list[str]:
    """A benchmark summary as a small table with its context."""
    lines = [f"bench {summary['id']}: job {summary['job']} (profile {summary['profile']}, backend"
             f" {summary['backend']}), run {'here' if summary['where'] == 'here' else 'on the target'}",
             f"workload {describe_workload(summary['workload'])}"]
    width = max(len(row[0]) for row in (*ROWS, *SERVER_ROWS, *CPU_ROWS))
    for label, key, digits in ROWS:
        lines.append(f"  {label.ljust(width)}  {_cell(summary['metrics'].get(key), digits).rjust(12)}")
    lines += [f"  {label.ljust(width)}  {text.rjust(12)}" for label, text in _server_rows(summary.get("server", {}))]
    lines.append(f"status: {summary['status']}; saved: {summary['saved']}")
    return lines


#: Rows of what the server did (medians while requests were in it): label, key of the summary's "server".
SERVER_ROWS = (("running (median)", "running"), ("waiting (median)", "waiting"), ("GPU util %", "gpu_util_pct"),
               ("GPU power W", "gpu_power_w"))
#: CPU rows: label, process role (cores of the busiest process of that role).
CPU_ROWS = (("API server cores", "api_server"), ("EngineCore cores", "engine_core"), ("worker cores", "worker"),
            ("client cores", "client"))


def _server_rows(server: dict) -> list[tuple[str, str]]:
    rows = [(label, _cell(float(server[key]))) for label, key in SERVER_ROWS if server.get(key) is not None]
    cpu = server.get("cpu_busiest_cores", {})
    return rows + [(label, _cell(float(cpu[role]), 2)) for label, role in CPU_ROWS if cpu.get(role) is not None]


def describe_workload(wl: dict) -> str:
    """One line for a stored workload (as :meth:`Workload.to_json` wrote it)."""
    return Workload(**{**wl, "request_rate": float(wl["request_rate"])}).describe()
