"""What the server and the machine did while a benchmark ran, one sample a second: vLLM's queue (running
and waiting requests, from ``/metrics``), the CPU of the job's processes by role and of the benchmark
client, and GPU use. A figure that cannot be read here is left out, never reported as zero: the job's
processes are only seen when they run on this machine (found by their working directory, the run
directory), and the GPU only where ``nvidia-smi`` is on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time

from .metrics import MetricsUnavailable, fetch

__all__ = ["Sampler", "ROLES", "summarize_samples"]

#: Process roles, by the title vLLM gives its processes; the job's main server process (the single API
#: server, or the parent of several) is "api_server" unless it names itself otherwise.
ROLES = {"VLLM::APIServer": "api_server", "VLLM::EngineCore": "engine_core", "VLLM::Worker": "worker",
         "VLLM::DPCoordinator": "coordinator"}
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK) if fields[0] != "Z" else None


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def _role(pid: int, server_pid: int | None) -> str:
    title = _title(pid)
    named = next((role for prefix, role in ROLES.items() if title.startswith(prefix)), None)
    return named or ("api_server" if pid == server_pid else "other")


def _processes(run_dir: str | None, server: int | None, client_root: int) -> dict[int, tuple[str, float]]:
    """{pid: (role, CPU seconds)} of the benchmark client's process tree ("client") and of the job's
    processes here (those working in its run directory; a client started there stays a client);
    ``server`` is the job's main server process."""
    stats = {int(entry): stat for entry in os.listdir("/proc") if entry.isdigit() and (stat := _stat(int(entry)))}
    client, frontier = set(), {client_root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in stats.items() if ppid in frontier} - client
        client |= frontier
    out = {pid: ("client", stats[pid][1]) for pid in client}
    if run_dir:
        for pid in stats.keys() - client:
            try:
                here = os.readlink(f"/proc/{pid}/cwd") == run_dir
            except OSError:
                continue
            if here:
                out[pid] = (_role(pid, server), stats[pid][1])
    return out


def _server_pid(run_dir: str) -> int | None:
    """The pid the job published in its run directory, or None."""
    try:
        with open(os.path.join(run_dir, "rendezvous.json")) as handle:
            return int(json.load(handle)["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _gpu() -> dict | None:
    """Mean utilisation (%) and total power (W) over this machine's GPUs, or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,power.draw", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
        rows = [[float(v) for v in line.split(",")] for line in out.splitlines() if line.strip()]
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if not rows:
        return None
    return {"util_pct": sum(r[0] for r in rows) / len(rows), "power_w": sum(r[1] for r in rows)}


class Sampler:
    """Samples in a background thread from :meth:`start` to :meth:`stop` (which returns them)."""

    def __init__(self, url: str, api_key: str | None, run_dir: str | None, interval: float = 1.0):
        self.url, self.api_key, self.interval = url, api_key, interval
        real = os.path.realpath(run_dir) if run_dir else None
        #: The run directory when it is on this machine (the job's processes are then seen here).
        self.run_dir = real if real and os.path.isdir(real) else None
        self.server = _server_pid(self.run_dir) if self.run_dir else None
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vlaunch-bench-sampler", daemon=True)
        self._gpu = shutil.which("nvidia-smi") is not None

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def _loop(self) -> None:
        started, before = time.monotonic(), _processes(self.run_dir, self.server, os.getpid())
        last = started
        while not self._stop.wait(self.interval):
            now, seen = time.monotonic(), _processes(self.run_dir, self.server, os.getpid())
            sample = {"t": round(now - started, 2), **self._queue(), **self._cpu(before, seen, now - last)}
            if self._gpu and (gpu := _gpu()):
                sample["gpu"] = {k: round(v, 1) for k, v in gpu.items()}
            self.samples.append(sample)
            before, last = seen, now

    def _queue(self) -> dict:
        try:
            scrape = fetch(self.url, self.api_key, timeout=self.interval * 2)
        except MetricsUnavailable:
            return {}
        out = {}
        for short, name in (("running", "vllm:num_requests_running"), ("waiting", "vllm:num_requests_waiting")):
            if name in scrape.samples:
                out[short] = sum(scrape.by_engine(name).values())
        return out

    @staticmethod
    def _cpu(before: dict, seen: dict, seconds: float) -> dict:
        """Cores used since the last sample: per role, the busiest process and the sum."""
        if seconds <= 0:
            return {}
        cpu: dict[str, dict[str, float]] = {}
        for pid, (role, used) in seen.items():
            if pid in before:
                cores = max(0.0, used - before[pid][1]) / seconds
                entry = cpu.setdefault(role, {"busiest": 0.0, "total": 0.0, "processes": 0})
                entry["busiest"] = max(entry["busiest"], round(cores, 3))
                entry["total"] = round(entry["total"] + cores, 3)
                entry["processes"] += 1
        return {"cpu": cpu} if cpu else {}


def summarize_samples(samples: list[dict]) -> dict:
    """Medians over the samples taken while requests were in the server (all of them if none say so):
    running and waiting requests, cores of the busiest process of each role, GPU utilisation and power."""
    busy = [s for s in samples if s.get("running", 0) + s.get("waiting", 0) > 0] or samples
    out: dict = {"samples": len(samples), "busy_samples": len(busy)}

    def median(values):
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    for key in ("running", "waiting"):
        if (value := median(s.get(key) for s in busy)) is not None:
            out[key] = value
    roles = sorted({role for s in busy for role in s.get("cpu", {})})
    cpu = {role: median(s["cpu"][role]["busiest"] for s in busy if role in s.get("cpu", {})) for role in roles}
    if cpu:
        out["cpu_busiest_cores"] = cpu
    for key in ("util_pct", "power_w"):
        if (value := median(s["gpu"][key] for s in busy if "gpu" in s)) is not None:
            out["gpu_" + key] = value
    return out
