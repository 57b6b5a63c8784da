"""The ``nohup`` backend: an example of a third-party vlaunch plugin."""

from __future__ import annotations

import time

from pydantic import Field

from vlaunch import Backend, BackendOptions, JobState, JobStatus, hookimpl
from vlaunch.lifecycle import ended_status
from vlaunch.errors import SubmitError
from vlaunch.shell import join


class NohupOptions(BackendOptions):
    """Options of the ``[backend.nohup]`` table."""

    stop_timeout: float = Field(20.0, gt=0, description="Seconds to wait for the server to stop on `down`.")


class NohupBackend(Backend):
    """Runs the job script under ``nohup`` in the background; the pid comes from a pid file."""

    name = "nohup"
    description = "example plugin: job script under nohup, tracked by a pid file"
    options_model = NohupOptions

    def submit(self, job, script_path, transport):
        pid_file = job.path("nohup.pid")
        line = f"nohup bash {join([script_path])} >/dev/null 2>&1 </dev/null & echo $! > {join([pid_file])}"
        result = transport.run(["bash", "-c", line])
        if not result.ok:
            raise SubmitError(f"nohup: {result.message()}")
        for _ in range(50):
            text = transport.read_file(pid_file)
            if text:
                return text.decode().strip()
            time.sleep(0.1)
        raise SubmitError("nohup did not report a pid")

    def _alive(self, pid, transport):
        stat = transport.run(["ps", "-o", "stat=", "-p", pid]).stdout.strip()
        return bool(stat) and not stat.startswith("Z")

    def poll(self, jobs, transport):
        out = {}
        for job in jobs:
            if self._alive(job.native_id, transport):
                out[job.name] = JobStatus(JobState.RUNNING)
            else:  # how it ended: from the markers the job script writes
                out[job.name] = ended_status(job, transport, "the process list")
        return out

    def cancel(self, job, transport):
        if job.state.is_final:  # a pid is reused once its process ended: never signal it then
            return
        transport.run(["kill", "-TERM", job.native_id])
        deadline = time.monotonic() + self.options_for(job).stop_timeout
        while self._alive(job.native_id, transport) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._alive(job.native_id, transport):
            transport.run(["kill", "-KILL", job.native_id])


@hookimpl
def vlaunch_register_backends(register):
    """Register the ``nohup`` backend."""
    register(NohupBackend)


@hookimpl
def vlaunch_amend_config(profile, backend):
    """Mark jobs of this backend in their environment (shows a site-plugin style hook)."""
    if backend == "nohup":
        profile.environment.variables = {**profile.environment.variables, "VLAUNCH_BACKEND_NOHUP": "1"}
