"""The Python API: the operations the CLI offers, for scripts and tests.

    >>> from vlaunch import api
    >>> job = api.up("cpu-tiny", "local", api.Overrides(model="/models/tiny"))  # waits until really ready
    >>> api.down(job.name)
"""

from __future__ import annotations

import re
import shlex
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import apikey
from .backend import EXIT_MARKER, SIGNAL_MARKER, Backend, JobSpec
from .config.flags import vllm_flags
from .config.layers import Layer, Resolved, cli_layer, resolve_profile, validate_options
from .config.values import check_one_line
from .errors import (ConfigError, Interrupted, NotReady, SchedulerError, ServerDied, SubmitError, TransportError,
                     VlaunchError)
from .lifecycle import let_go
from .paths import state_dir
from .plugins import PluginHost, get_host
from .readiness import Readiness, StageEvent
from .registry import JobRecord, Registry, now_iso
from .script import launch_line
from .session import JobSession, refresh_many
from .states import JobState
from .transport import Transport

__all__ = ["ReplicasWanted", "Overrides", "Prepared", "prepare", "render", "up", "wait_ready", "wait", "status", "look", "down",
           "logs", "session_for", "forget", "name_prefix", "check_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ReplicasWanted(ConfigError):
    """:func:`up` was asked for a profile that starts a replica group (:func:`vlaunch.replicas.up_group`)."""


@dataclass
class Overrides:
    """Command-line settings, the top layer: ``--set``, ``--model``, ``--port``, free-form vLLM flags."""

    sets: list[str] = field(default_factory=list)
    model: str | None = None
    port: str | None = None
    vllm_args: list[str] = field(default_factory=list)

    def layer(self) -> Layer:
        """As a config layer."""
        return cli_layer(self.sets, self.model, self.port, self.vllm_args)


@dataclass
class Prepared:
    """A resolved profile on a chosen backend: what ``render`` shows and ``up`` starts."""

    resolved: Resolved
    backend: Backend
    options: object
    host: PluginHost

    @property
    def profile(self):
        """The resolved :class:`~vlaunch.config.Profile`."""
        return self.resolved.profile

    def transport_spec(self, via: str | None) -> dict:
        """Where the job's commands run: the backend's own choice (ssh), ``via`` a login node, or here."""
        spec = self.backend.transport_spec(self.options)
        if spec and via:
            raise ConfigError(f"backend {self.backend.name} chooses its own host; --via does not apply")
        return spec or ({"kind": "ssh", "host": via} if via else {"kind": "local"})

    def job(self, name: str, run_dir: str, program: tuple[str, ...] = ()) -> JobSpec:
        """The job to render or submit (serving ``program`` instead of vLLM, if given)."""
        return JobSpec(name, self.resolved.name, self.profile, self.options, run_dir, tuple(self.resolved.notes),
                       program)

    def script(self, job: JobSpec) -> str:
        """The rendered job script."""
        return self.host.render_script(self.backend, job)


def prepare(profile: str, backend: str, overrides: Overrides | None = None, host: PluginHost | None = None) -> Prepared:
    """Resolve ``profile`` for ``backend`` through every layer, let site plugins amend it, validate it."""
    host = host or get_host()
    backend_obj = host.backend(backend)
    resolved = resolve_profile(profile, (overrides or Overrides()).layer())
    host.amend_config(resolved.profile, backend)
    options = validate_options(resolved, backend, backend_obj.options_model, host.backends)
    return Prepared(resolved, backend_obj, options, host)


def _run_root(root: str | None, transport: Transport) -> str:
    """The directory on the target that holds job directories: ``root`` (``~/`` is the target's home) or
    the transport's default."""
    if root:
        return root if not root.startswith("~/") else f"{transport.home()}/{root[2:]}"
    if transport.kind == "local":
        return str(state_dir() / "runs")
    return f"{transport.home()}/.vlaunch/runs"


def _run_dir(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def render(profile: str = "auto", backend: str = "local", overrides: Overrides | None = None,
           name: str | None = None, run_root: str | None = None, via: str | None = None,
           program: tuple[str, ...] = ()) -> str:
    """The exact job script ``up`` submits for the same arguments and ``name`` (``up``'s default name adds
    a random suffix to the profile's); nothing is launched. Byte-stable for the same inputs.

    The run directory is computed as ``up`` computes it; where it lies under a remote target's home
    (no absolute ``run_root``), render asks the target for its home, as ``up`` would. ``program``: as for
    :func:`up` (a group's router job, :func:`vlaunch.replicas.render_router_job`).
    """
    prepared = prepare(profile, backend, overrides)
    spec = prepared.transport_spec(via)
    name = check_name(name or name_prefix(profile))
    if run_root:
        check_one_line("--run-root", run_root)
    root = run_root or prepared.profile.run_root
    if not root or root.startswith("~/"):
        transport = prepared.host.transport(spec)
        try:
            root = _run_root(root, transport)
        finally:
            transport.close()
    return prepared.script(prepared.job(name, _run_dir(root, name), program))


def name_prefix(profile: str) -> str:
    """A job-name prefix from a profile name: characters a job name may not hold become ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", profile).lstrip(".-_")[:56] or "job"


def check_name(name: str) -> str:
    """``name`` if it can name a job (or a group), else a one-line error."""
    if not _NAME.match(name):
        raise ConfigError(f"job name {name!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def _check_port_free(prepared: Prepared, transport: Transport) -> None:
    port, bind = prepared.profile.server.port, prepared.profile.server.host
    if port == "auto" or transport.kind != "local" or prepared.backend.name != "local":
        return
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET) as sock:
        # As servers do: connections of an earlier server in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            raise ConfigError(f"port {port} on {bind} is not free ({exc.strerror}); choose another or use --port auto") from None


def check_vllm_flags(prepared: Prepared) -> bool:
    """Check the profile's flags with the vLLM installed here (raises in one line); False when there is none."""
    from .vllm_args import check_flags, vllm_available

    if not vllm_available():
        return False
    check_flags(prepared.profile.server.model or "model", vllm_flags(prepared.profile.vllm))
    return True


def up(profile: str, backend: str = "local", overrides: Overrides | None = None, *, name: str | None = None,
       via: str | None = None, wait: bool = True, timeout: float | None = None, check_flags: bool = True,
       check_model: bool = True, keep_on_failure: bool = False, progress: Callable[[StageEvent], None] | None = None,
       registry: Registry | None = None, notice: Callable[[str], None] | None = None,
       group: tuple[str, str] | None = None, program: tuple[str, ...] = ()) -> JobRecord:
    """Resolve, render, check the flags (vLLM's parser) and the model (where the job is submitted),
    submit and (unless ``wait=False``) wait until the server really answers. ``notice`` is given what
    the user should know before the job starts (``auto``'s fallback when it could not plan the model).
    ``group`` is (name, key) for a replica: the job joins that group and its server accepts the group's
    key besides its own (a profile that asks for replicas goes to :func:`vlaunch.replicas.up_group`).
    ``program`` serves that instead of vLLM (a group's router job, :attr:`JobSpec.program`): no key, and
    readiness ends at ``/health``.

    On a timeout or an interrupt while waiting, the job is cancelled unless ``keep_on_failure``;
    its record stays in the registry in every case.
    """
    prepared = prepare(profile, backend, overrides)
    if prepared.profile.replicas.grouped and not group:
        raise ReplicasWanted(f"profile {profile!r} asks for replicas (replicas.count, keep or backends): start it"
                             " with vlaunch.replicas.up_group (vlaunch up does)")
    if not prepared.profile.server.model:
        raise ConfigError(f"profile {profile!r} names no model: pass --model or set server.model")
    if notice and prepared.resolved.fallback:
        notice(prepared.resolved.fallback)
    registry = registry or Registry()
    if name:  # before the slower checks: a name in use is the first thing to say
        _check_name_free(registry, check_name(name))
    if check_flags:
        check_vllm_flags(prepared)
    transport = prepared.host.transport(prepared.transport_spec(via))
    try:
        _check_port_free(prepared, transport)
        if check_model:
            from .model_check import check_model as check_model_there

            check_model_there(prepared.profile, transport)
        name = check_name(name or registry.new_name(name_prefix(profile)))
        session = _submit(prepared, registry, transport, name, group, program)
        if wait:
            wait_ready(session, timeout, keep_on_failure, progress)
        return session.record
    finally:
        transport.close()


def _submit(prepared: Prepared, registry: Registry, transport: Transport, name: str,
            group: tuple[str, str] | None, program: tuple[str, ...]) -> JobSession:
    _check_name_free(registry, name)
    job = prepared.job(name, _run_dir(_run_root(prepared.profile.run_root, transport), name), program)
    script = prepared.script(job)
    if any(transport.read_file(job.path(leaf)) is not None for leaf in ("rendezvous.json", EXIT_MARKER, SIGNAL_MARKER)):
        raise SubmitError(f"{job.run_dir} holds the files of an earlier job named {name} (they would mislead"
                          " readiness); choose another --name, or remove that directory")
    record = JobRecord(name=name, backend=prepared.backend.name, profile=prepared.resolved.name,
                       transport=transport.describe(), run_dir=job.run_dir,
                       config=prepared.profile.model_dump(mode="json"), command=launch_line(job),
                       served_model_name=None if program else prepared.profile.server.name_for_clients,
                       group=group and group[0], serves=program[0].rsplit("/", 1)[-1] if program else None)
    registry.create(record)
    session = JobSession(prepared.host, registry, record, transport)
    try:
        if prepared.profile.server.api_key and not program:
            key = apikey.new_key()
            registry.store_key(name, key)
            also = [group[1]] if group else []
            transport.write_file(job.path(apikey.FILE), apikey.file_text(key, *also), mode=0o600)
        script_path = job.path("job.sh")
        transport.write_file(script_path, script, mode=0o700)
        record.native_id = prepared.host.submit(prepared.backend, job, script_path, transport)
    except (VlaunchError, OSError) as exc:
        record.state, record.reason = JobState.FAILED, str(exc)
        registry.save(record)
        raise SubmitError(str(exc)) from None
    record.state = JobState.PENDING
    registry.save(record)
    return session


def _check_name_free(registry: Registry, name: str) -> None:
    """Refuse, in the user's terms, a name a kept job already has: how to reach it, or how to free the name."""
    if not registry.has(name):
        return
    record, quoted = registry.get(name), shlex.quote(name)
    if record.state.is_final:
        raise SubmitError(f"job {name} has ended ({record.state.value}); its record and run directory ({record.run_dir})"
                          f" keep the name: choose another --name, or `vlaunch forget {quoted}` and remove that"
                          " directory")
    where = (f"ready at {record.endpoint}/v1: `vlaunch env {quoted}` points clients at it" if record.ready_at
             else f"not ready yet: `vlaunch wait {quoted}` waits for it")
    raise SubmitError(f"job {name} is already {record.state.value}, {where}; `vlaunch down {quoted}` stops it")


def wait_ready(session: JobSession, timeout: float | None = None, keep: bool = False, progress=None) -> str:
    """Wait until the job of ``session`` really answers (the URL that reaches it from here); on a timeout,
    an interrupt or a server that died, cancel it unless ``keep``, and raise."""
    deadline = time.monotonic() + timeout if timeout else None
    name = session.record.name
    readiness = Readiness(session, progress, deadline)
    try:
        url = readiness.run()
    except (TransportError, SchedulerError) as exc:  # not observable: unknown, not failed
        raise type(exc)(f"{exc}; job {name} is kept: `vlaunch status {shlex.quote(name)}` looks again") from None
    except KeyboardInterrupt:
        if keep:
            raise Interrupted(f"interrupted: job {name} left queued/running; `vlaunch down {shlex.quote(name)}` stops it") from None
        session.cancel("interrupted during vlaunch up")
        raise Interrupted(f"interrupted: job {name} cancelled") from None
    except (NotReady, ServerDied) as exc:
        # A server that died is cancelled too, once its job had a moment to end by itself: the scheduler
        # may still hold the job (and its nodes).
        if isinstance(exc, ServerDied) and not keep:
            try:
                let_go(session.backend, session.record, session.transport)
            except VlaunchError:  # not observable now: the cancel below asks again
                pass
        if not keep:
            session.cancel(f"cancelled by vlaunch up: {str(exc).splitlines()[0]}")
        suffix = "" if keep or isinstance(exc, ServerDied) else "; the job was cancelled (use --keep-on-failure to keep it)"
        raise type(exc)(f"{exc}{suffix}") from None
    _mark_ready(session, readiness.start.text)
    return url


def _mark_ready(session: JobSession, log_text: str) -> None:
    """Record that the job is ready (under the registry's lock, changing nothing else of the record: another
    vlaunch may be stopping it), and, by the one caller that marked it, how long its start took."""
    from .start_history import record_start

    marked = []

    def ready(record: JobRecord) -> None:
        if not record.ready_at:
            record.ready_at, record.reason = now_iso(), None
            marked.append(True)

    stored = session.registry.update(session.record.name, ready)
    session.record.ready_at, session.record.reason = stored.ready_at, stored.reason
    if marked and not session.record.serves:
        record_start(session.record, log_text, time.time())


def wait(name: str, timeout: float | None = None, progress=None, registry: Registry | None = None) -> JobRecord:
    """Wait until job ``name``, whoever started it, really answers; the job is never cancelled here (a
    timeout or an interrupt leaves it as it was). Raises :class:`ServerDied` with the cause once it ended."""
    session = session_for(name, registry)
    try:
        session.refresh()
        record = session.record
        if record.state.is_final:
            raise ServerDied(f"job {name} has ended ({record.state.value}: {record.reason or 'no reason recorded'})")
        if not record.ready_at:
            try:
                wait_ready(session, timeout, keep=True, progress=progress)
            except NotReady as exc:
                raise NotReady(f"{exc}; job {name} keeps running (`vlaunch wait {shlex.quote(name)}` again, or"
                               f" `vlaunch down {shlex.quote(name)}`)") from None
        return session.record
    finally:
        session.transport.close()


def session_for(name: str, registry: Registry | None = None) -> JobSession:
    """A session for a stored job (connects its transport)."""
    registry = registry or Registry()
    record = registry.get(name)
    host = get_host()
    return JobSession(host, registry, record, host.transport(record.transport))


def status(names: list[str] | None = None, registry: Registry | None = None,
           refresh: bool = True) -> tuple[list[JobRecord], list[str]]:
    """Records of the named jobs (all when None), refreshed in batches; plus one line per problem."""
    registry = registry or Registry()
    if names:
        records, problems = [registry.get(n) for n in names], []
    else:
        records, problems = registry.all()
    if refresh:
        host, transports = get_host(), {}

        def transport_for(spec: dict) -> Transport:
            key = tuple(sorted(spec.items()))
            if key not in transports:
                transports[key] = host.transport(spec)
            return transports[key]

        try:
            problems += refresh_many(host, registry, records, transport_for)
            for record in records:
                if record.state is JobState.RUNNING and not record.ready_at:
                    problems += look(JobSession(host, registry, record, transport_for(record.transport)))
        finally:
            for transport in transports.values():
                transport.close()
    return records, problems


def look(session: JobSession) -> list[str]:
    """Establish readiness for a running job not ready yet, whoever started it: one look through the
    stages ``up`` waits for (:meth:`Readiness.look`); ready once all pass, else the reason says what holds it
    and what vLLM is doing. A look that cannot be made is a problem to report, never a new state."""
    readiness, name = Readiness(session), session.record.name
    try:
        holding = readiness.look()
    except (VlaunchError, OSError) as exc:
        return [f"{name}: cannot tell whether its server answers yet: {exc}"]
    if holding is None:
        _mark_ready(session, readiness.start.text)
    elif holding != session.record.reason:
        session.record.reason = session.registry.update(name, lambda r: setattr(r, "reason", holding)).reason
    return []


def down(name: str, registry: Registry | None = None, forget_job: bool = False) -> JobRecord:
    """Stop job ``name`` and confirm it is gone (the backend is asked even when the record says it ended);
    ``forget_job`` also drops its record."""
    registry = registry or Registry()
    session = session_for(name, registry)
    try:
        session.cancel()
    finally:
        session.transport.close()
    if forget_job:
        registry.remove(name)
    return session.record


def forget(name: str, registry: Registry | None = None, force: bool = False) -> JobRecord:
    """Drop a job's record and return it; refuses while the job may still run, unless ``force``."""
    registry = registry or Registry()
    record = registry.get(name)
    if not record.state.is_final and not force:
        raise VlaunchError(f"job {name} is {record.state.value}; run `vlaunch down {shlex.quote(name)}` first"
                           " (or `vlaunch forget --force` if its backend cannot be reached)")
    registry.remove(name)
    return record


def logs(name: str, follow: bool = False, registry: Registry | None = None) -> Iterator[bytes]:
    """The server log of job ``name``; with ``follow``, new bytes as they come until the job ends (read at
    the lifecycle's follow cadence; the job watched as readiness watches it, :class:`~vlaunch.lifecycle.Liveness`)."""
    from .lifecycle import LOG_FOLLOW, Backoff, Liveness

    session = session_for(name, registry)
    offset, reads, liveness = 0, Backoff(*LOG_FOLLOW), Liveness(session)
    try:
        while True:
            chunk = session.read_log(offset)
            offset += len(chunk)
            if chunk:
                reads.reset()
                yield chunk
                if follow:
                    continue
            if not follow:
                return
            status, _ = liveness.check()
            if status is not None and status.state.is_final:
                tail = session.read_log(offset)
                if tail:
                    yield tail
                return
            time.sleep(reads.next())
    finally:
        session.transport.close()
