"""The hooks a vlaunch plugin may implement.

Every backend, built-in or third-party, is a plugin found through the ``vlaunch`` entry-point group.
A plugin module implements hooks with ``@vlaunch.hookimpl``. The core registers its own default
implementations first and marks them ``trylast``, so any plugin can replace one step (render, submit,
poll, cancel, health check, logs) for one backend or for all, by returning a non-None value.

Stability: hooks and their arguments are only ever added; pluggy lets an implementation take any
subset of a hook's arguments, so old plugins keep working. See ``docs/hooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .backend import Backend, JobSpec
    from .config.model import Profile
    from .probes import Probe
    from .registry import JobRecord
    from .states import JobStatus
    from .transport import Transport, TransportKind

__all__ = ["hookspec", "hookimpl"]

hookspec = pluggy.HookspecMarker("vlaunch")
#: The marker of an implementation: ``@vlaunch.hookimpl`` (beside the specs, so the core's own
#: implementations and the plugin loader both import it from here).
hookimpl = pluggy.HookimplMarker("vlaunch")


@hookspec
def vlaunch_register_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register the backends this plugin provides, by calling ``register(BackendClass)`` for each.

    Called once, when plugins are loaded. Two plugins registering one backend name is an error
    naming both distributions.

    :param register: Call it with a :class:`vlaunch.Backend` subclass.

    .. versionadded:: 0.1
    """


@hookspec
def vlaunch_amend_config(profile: Profile, backend: str) -> None:
    """Adjust a resolved profile before anything is rendered (site plugins: default partitions,
    module loads, a shared compile cache). Change ``profile`` in place; assignments are validated.

    Called by ``up`` and ``render`` after all layers are merged and validated. Every implementation
    is called.

    :param profile: The resolved :class:`vlaunch.config.Profile`.
    :param backend: The name of the backend the job will use.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_render_script(backend: Backend, job: JobSpec) -> str | None:
    """Return the complete job script for ``job`` on ``backend``.

    Stops at the first non-None result. The core's implementation renders the backend's template
    with the core's environment and server blocks.

    :param backend: The backend instance.
    :param job: The job to render.
    :return: The script text, or None to leave it to the next implementation.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_submit(backend: Backend, job: JobSpec, script_path: str, transport: Transport) -> str | None:
    """Start or queue the job whose script was written to ``script_path`` on the target.

    Stops at the first non-None result. The core's implementation calls ``backend.submit``.

    :param backend: The backend instance.
    :param job: The job being submitted.
    :param script_path: Where the rendered script is, on the target.
    :param transport: Runs commands on the target.
    :return: The native job id (a process group id, a scheduler job id), or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_poll(backend: Backend, jobs: Sequence[JobRecord], transport: Transport) -> dict[str, JobStatus] | None:
    """Observe several jobs of one backend at once (one scheduler call per polling round).

    Stops at the first non-None result. The core's implementation calls ``backend.poll``.

    :param backend: The backend instance.
    :param jobs: Records of the jobs to observe, all on this backend and transport.
    :param transport: Runs commands on the target.
    :return: A :class:`vlaunch.JobStatus` by job name, or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_cancel(backend: Backend, job: JobRecord, transport: Transport) -> bool | None:
    """Stop a job and return once it is confirmed gone.

    Stops at the first non-None result. The core's implementation calls ``backend.cancel``.

    :param backend: The backend instance.
    :param job: The job's record.
    :param transport: Runs commands on the target.
    :return: True when handled, or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_check_health(job: JobRecord, stage: str, base_url: str, api_key: str | None) -> Probe | None:
    """Probe one readiness stage of a server: ``"port"``, ``"health"``, ``"models"`` or ``"completion"``.

    Called repeatedly while ``up`` waits; stops at the first non-None result. The core's
    implementation expects 200 from ``/health``, the served name in ``/v1/models``, and one generated
    token from ``/v1/completions``; it leaves ``"port"`` to the job's transport
    (:meth:`vlaunch.Transport.port_open`, which asks the far side of an SSH connection), unless a
    plugin answers it.

    :param job: The job's record (``served_model_name`` says what must be listed).
    :param stage: The stage to probe.
    :param base_url: ``http://host:port`` reachable from this machine.
    :param api_key: The job's API key, or None.
    :return: A :class:`vlaunch.probes.Probe`, or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def vlaunch_read_logs(backend: Backend, job: JobRecord, transport: Transport, offset: int) -> bytes | None:
    """Return the server log of ``job`` from byte ``offset`` on (``b""`` when nothing is new).

    Stops at the first non-None result. The core's implementation reads the job's ``server.log``
    through the transport.

    :param backend: The backend instance.
    :param job: The job's record.
    :param transport: Reads files on the target.
    :param offset: Bytes already read.
    :return: The new bytes, or None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True, warn_on_impl=DeprecationWarning(
    "vlaunch_make_transport is deprecated: register a TransportKind with vlaunch_register_transports"))
def vlaunch_make_transport(spec: dict) -> Transport | None:
    """Build the transport a registry entry describes, e.g. ``{"kind": "ssh", "host": "login1"}``.

    Deprecated (to be removed in 0.3): register a :class:`vlaunch.TransportKind` with
    :func:`vlaunch_register_transports` instead. Asked before the registered kinds, as before;
    stops at the first non-None result. Implementing it warns when the plugin is registered.

    :param spec: What :meth:`vlaunch.Transport.describe` stored.
    :return: A connected :class:`vlaunch.Transport`, or None if the kind is not this plugin's.

    .. versionadded:: 0.1
    .. deprecated:: 0.2
    """


@hookspec
def vlaunch_register_transports(register: Callable[[TransportKind], None]) -> None:
    """Register the transports this plugin provides, by calling ``register(TransportKind(...))`` for each.

    A :class:`vlaunch.TransportKind` names the ``kind`` a job record's transport spec carries
    (``{"kind": "ssh", "host": "login1"}``), the pydantic model that validates the rest of the spec,
    and the function that connects one. Called once, when plugins are loaded, like
    :func:`vlaunch_register_backends`; two plugins registering one kind is an error naming both. The
    core registers ``"local"``.

    :param register: Call it with a :class:`vlaunch.TransportKind`.

    .. versionadded:: 0.2
    """
