"""The core's default hook implementations, registered before any plugin and marked ``trylast``,
so that a plugin can replace any single step by returning a non-None value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .hookspecs import hookimpl
from .probes import probe
from .script import render_script
from .transport import LocalTransport, TransportKind


@hookimpl(trylast=True)
def vlaunch_render_script(backend, job):
    """Render the backend's template with the core's blocks."""
    return render_script(job, backend)


@hookimpl(trylast=True)
def vlaunch_submit(backend, job, script_path, transport):
    """Let the backend start or queue the job."""
    return backend.submit(job, script_path, transport)


@hookimpl(trylast=True)
def vlaunch_poll(backend, jobs, transport):
    """Let the backend observe its jobs."""
    return backend.poll(jobs, transport)


@hookimpl(trylast=True)
def vlaunch_cancel(backend, job, transport):
    """Let the backend stop the job."""
    backend.cancel(job, transport)
    return True


@hookimpl(trylast=True)
def vlaunch_check_health(job, stage, base_url, api_key):
    """Probe the stage over HTTP; the "port" stage is left to the job's transport (``JobSession.check``)."""
    return None if stage == "port" else probe(stage, base_url, job.served_model_name, api_key)


@hookimpl(trylast=True)
def vlaunch_read_logs(backend, job, transport, offset):
    """Read the job's ``server.log`` from ``offset``."""
    return transport.read_file(job.log_path, offset) or b""


class LocalSpec(BaseModel):
    """The local transport's spec: nothing but its kind."""

    model_config = ConfigDict(extra="forbid")


@hookimpl
def vlaunch_register_transports(register):
    """Register the local transport: commands run on this machine."""
    register(TransportKind("local", LocalSpec, lambda spec: LocalTransport(), "this machine"))
