"""Replica groups: N ordinary jobs of one profile behind vLLM's router, one endpoint (``vlaunch up --replicas N``).

:func:`up_group` submits the replicas (each with its own record, key and readiness; backends in turn) and
starts the group's keeper (:mod:`vlaunch.keeper`): a process on this machine that runs the router (here,
or as its own job: ``replicas.router``), gives it each replica once that replica really answers, takes a
replica away as soon as it has ended, and submits replacements while ``replicas.keep`` allows.
:func:`down_group` stops the keeper and its router, then every replica, and confirms each gone.

    >>> from vlaunch import api, replicas
    >>> group = replicas.up_group("cpu-tiny", "slurm", api.Overrides(model="/models/tiny", sets=["replicas.count=3"]))
    >>> replicas.down_group(group.name)
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from . import api, apikey, router, shell
from .backend import ProcessBackend
from .errors import CancelError, ConfigError, Interrupted, NotReady, ServerDied, SubmitError, VlaunchError
from .group import GroupRecord, Groups, GroupState, Process, replica_name, router_job_name
from .paths import state_dir
from .registry import JobRecord, Registry
from .session import LOOPBACK
from .states import JobState

__all__ = ["up_group", "down_group", "group_status", "group_log", "submit_replica", "submit_router_job",
           "render_router_job", "members", "group_jobs", "next_number", "ROUTER_JOB_SETTINGS"]

#: Seconds ``down`` gives the keeper to stop after SIGTERM, and the router after its own, before SIGKILL.
STOP_WAIT = 10.0
#: What a router job asks for, whatever the replicas ask for: one node, no GPU, a core, a little memory
#: (vllm-router itself uses tens of MB); ``replicas.router_set`` comes after, and may change any of it.
ROUTER_JOB_SETTINGS = ("resources.nodes=1", "resources.gpus_per_node=0", "resources.cpus_per_node=1",
                       'resources.memory="1G"')


def _plans(profile: str, backend: str, overrides: api.Overrides) -> list[api.Prepared]:
    """One launch plan per replica backend, in turn; refused unless every backend serves the same model."""
    first = api.prepare(profile, backend, overrides)
    backends = first.profile.replicas.backends or [backend]
    plans = {b: first if b == backend else api.prepare(profile, b, overrides) for b in dict.fromkeys(backends)}
    served = {b: (p.profile.server.model, p.profile.server.name_for_clients) for b, p in plans.items()}
    if len(set(served.values())) > 1:
        said = ", ".join(f"{b} serves {model!r} as {name!r}" for b, (model, name) in served.items())
        raise ConfigError(f"the replicas of one group must serve one model, but {said}")
    if not first.profile.server.model:
        raise ConfigError(f"profile {profile!r} names no model: pass --model or set server.model")
    if first.profile.replicas.router == "job":
        _check_router_job(plans)
    return [plans[b] for b in backends]


def _check_router_job(plans: dict[str, api.Prepared]) -> None:
    """A router job runs next to the replicas and reaches them over their cluster's network: one backend,
    and replicas bound to an address other nodes reach (unless the backend runs every job on one machine)."""
    if len(plans) > 1:
        raise ConfigError(f"replicas.router = \"job\" runs the router next to the replicas, on their backend: they"
                          f" must all go to one backend (not {', '.join(plans)}); or run the router here")
    plan = next(iter(plans.values()))
    if not isinstance(plan.backend, ProcessBackend) and plan.profile.server.host in LOOPBACK:
        raise ConfigError(f"replicas.router = \"job\": the router's job reaches the replicas from another node, but"
                          f" they bind {plan.profile.server.host}: set server.host = \"0.0.0.0\"")


def _launch(group: GroupRecord) -> tuple[api.Overrides, str | None, bool]:
    launch = group.launch
    return api.Overrides(**launch["overrides"]), launch.get("via"), launch.get("check_model", True)


def submit_replica(group: GroupRecord, number: int, key: str, registry: Registry,
                   backend: str | None = None) -> JobRecord:
    """Submit the group's ``number``-th replica without waiting for it: on ``backend``, or on the group's
    backends in turn."""
    overrides, via, check_model = _launch(group)
    backend = backend or group.backends[(number - 1) % len(group.backends)]
    return api.up(group.profile, backend, overrides, name=replica_name(group.name, number), via=via, wait=False,
                  check_flags=False, check_model=check_model, registry=registry, group=(group.name, key))


def submit_router_job(group: GroupRecord, key: str, registry: Registry) -> JobRecord:
    """Submit the group's next router job (``replicas.router = "job"``) on the replicas' backend, without
    waiting."""
    tries = [r for r in group_jobs(group.name, registry) if r.serves]
    refused = [r for r in tries if r.state is JobState.FAILED and not r.native_id]
    for record in refused:  # tries the scheduler refused: the next try takes the place of the last one
        registry.remove(record.name)
    overrides, via, _ = _launch(group)
    router_overrides, program = _router_job(group.profile, group.backends[0], overrides)
    return api.up(group.profile, group.backends[0], router_overrides, via=via, wait=False, check_flags=False,
                  name=router_job_name(group.name, 1 + len(tries) - len(refused)), check_model=False,
                  registry=registry, group=(group.name, key), program=program)


def render_router_job(profile: str, backend: str, overrides: api.Overrides | None = None, name: str | None = None,
                      run_root: str | None = None, via: str | None = None) -> str:
    """The exact script of the router job a group of ``profile`` would submit first (``vlaunch render
    --router-job``; ``name`` as the group's first router job is named, ``GROUP-router1``)."""
    router_overrides, program = _router_job(profile, backend, overrides or api.Overrides())
    name = name or router_job_name(api.name_prefix(profile)[:54], 1)
    return api.render(profile, backend, router_overrides, name=name, run_root=run_root, via=via, program=program)


def _router_job(profile: str, backend: str, overrides: api.Overrides) -> tuple[api.Overrides, tuple[str, ...]]:
    """A router job's settings (the group's, then :data:`ROUTER_JOB_SETTINGS`, its port and
    ``replicas.router_set``) and its program: vllm-router with no replica yet, on ``server.host``."""
    from .script import METRICS_PORT_VAR

    settings = api.prepare(profile, backend, overrides).profile.replicas
    if settings.router != "job":
        raise ConfigError(f"profile {profile!r} runs its router here, not as a job: set replicas.router = \"job\"")
    port = settings.router_port if settings.router_port != "auto" else '"auto"'
    sets = [*overrides.sets, *ROUTER_JOB_SETTINGS, f"server.port={port}", *settings.router_set]
    program = (*settings.router_command, *router.options(settings.policy, shell.Var(METRICS_PORT_VAR)))
    return api.Overrides(sets=sets, model=overrides.model), program


def group_jobs(name: str, registry: Registry) -> list[JobRecord]:
    """The records of every job group ``name`` has had, its router jobs first, then its replicas (a job whose
    submission the keeper could not note in the group's record is found by its own record, which names the
    group)."""
    records, _ = registry.all()
    return sorted((r for r in records if r.group == name), key=lambda r: (not r.serves, r.created_at))


def members(name: str, registry: Registry) -> list[JobRecord]:
    """The records of every replica group ``name`` has had."""
    return [r for r in group_jobs(name, registry) if not r.serves]


def next_number(name: str, registry: Registry) -> int:
    """The number of group ``name``'s next replica: one past every replica it has had a record for."""
    numbers = [int(r.name.rsplit("-r", 1)[1]) for r in members(name, registry)]
    return max(numbers, default=0) + 1


def _start_keeper(group: GroupRecord) -> Process:
    """The keeper, detached in its own session (it outlives this command), its output in the group's log."""
    os.makedirs(group.run_dir, mode=0o700, exist_ok=True)
    with open(group.path("group.log"), "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "vlaunch.keeper", group.name], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, cwd=group.run_dir, start_new_session=True)
    return Process.of(child.pid) or Process(pid=child.pid, started=0)


def up_group(profile: str, backend: str = "local", overrides: api.Overrides | None = None, *, name: str | None = None,
             via: str | None = None, wait: bool = True, timeout: float | None = None, check_flags: bool = True,
             check_model: bool = True, keep_on_failure: bool = False, progress: Callable[[str], None] | None = None,
             groups: Groups | None = None, registry: Registry | None = None) -> GroupRecord:
    """Submit the profile's replicas, start the keeper (and through it the router) and, with ``wait``, wait
    until every replica serves or has failed; ``progress`` is given each of the group's events. The group
    serves once one replica does; when none does (or on Ctrl-C), it is stopped unless ``keep_on_failure``."""
    overrides = overrides or api.Overrides()
    plans = _plans(profile, backend, overrides)
    settings = plans[0].profile.replicas
    if settings.router == "here":
        router.program()  # not installed: one line, before anything is submitted
    if check_flags:
        api.check_vllm_flags(plans[0])
    groups, registry = groups or Groups(), registry or Registry()
    name = _free_name(name or groups.new_name(api.name_prefix(profile)[:47]), groups, registry)
    key = apikey.new_key()
    group = GroupRecord(name=name, profile=plans[0].resolved.name, model=plans[0].profile.server.name_for_clients,
                        backends=[p.backend.name for p in plans], count=settings.count, keep=settings.keep,
                        launch={"overrides": dataclasses.asdict(overrides), "via": via, "check_model": check_model},
                        policy=settings.policy, router_at=settings.router, router_host=settings.router_host,
                        router_port=None if settings.router_port == "auto" or settings.router == "job"
                        else settings.router_port, router_timeout=settings.router_timeout,
                        run_dir=str(state_dir() / "runs" / name))
    groups.create(group)
    groups.store_key(name, key)
    try:  # from the first submission on, an interrupt stops what was started
        return _start(group, key, wait, timeout, groups, registry, progress or (lambda line: None))
    except KeyboardInterrupt:
        if keep_on_failure:
            raise Interrupted(f"interrupted: group {name} left starting; `vlaunch down {shlex.quote(name)}`"
                              " stops it") from None
        down_group(name, groups, registry)
        raise Interrupted(f"interrupted: group {name} stopped") from None
    except (NotReady, ServerDied) as exc:
        if not keep_on_failure:
            down_group(name, groups, registry)
        raise type(exc)(f"{exc}" + ("" if keep_on_failure else f"; group {name} was stopped")) from None


def _start(group: GroupRecord, key: str, wait: bool, timeout: float | None, groups: Groups, registry: Registry,
           progress: Callable[[str], None]) -> GroupRecord:
    """Submit the replicas, start the keeper and (with ``wait``) follow it."""
    for number in range(1, group.count + 1):
        _submit_member(group, number, key, groups, registry)
    group = groups.get(group.name)
    if not group.members:
        groups.update(group.name, lambda g: setattr(g, "state", GroupState.FAILED))
        raise SubmitError(f"group {group.name}: no replica could be submitted ({group.events[-1].split(' ', 1)[1]})")
    keeper = _start_keeper(group)
    groups.update(group.name, lambda g: setattr(g, "keeper", keeper))
    return _wait(group.name, timeout, groups, registry, progress) if wait else groups.get(group.name)


def _free_name(name: str, groups: Groups, registry: Registry) -> str:
    """``name``, checked: a group's name may be no job's, since commands take either, and leaves room for its
    jobs' (``NAME-rK``, ``NAME-routerK``)."""
    api.check_name(name)
    if len(name) > 54:
        raise ConfigError(f"group name {name!r}: at most 54 characters (its jobs are named {name}-r1...,"
                          f" {name}-router1...)")
    if registry.has(name) or groups.has(name):
        raise ConfigError(f"the name {name!r} is taken by a job or group; choose another --name")
    return name


def _submit_member(group: GroupRecord, number: int, key: str, groups: Groups, registry: Registry) -> None:
    try:
        record = submit_replica(group, number, key, registry)
    except VlaunchError as exc:
        said = f"{replica_name(group.name, number)} not submitted: {exc}"
        groups.update(group.name, lambda g: g.note(said))
        return
    groups.update(group.name, lambda g: (g.members.append(record.name), g.note(
        f"{record.name} submitted to {record.backend} (id {record.native_id})")))


def _wait(name: str, timeout: float | None, groups: Groups, registry: Registry, progress) -> GroupRecord:
    """Follow the keeper's work until every replica serves or no replica is still starting."""
    deadline, shown = (time.monotonic() + timeout if timeout else None), 0
    while True:
        group = groups.get(name)
        for event in group.events[shown:]:
            progress(event.split(" ", 1)[1])
        shown = len(group.events)
        starting = [m for m in group.members if m not in group.serving and not registry.get(m).state.is_final]
        if len(group.serving) >= group.count or (group.serving and not starting):
            return group
        why = f" ({group.reason})" if group.reason else ""
        if group.state is GroupState.FAILED and group.reason:
            raise ServerDied(f"group {name} failed: {group.reason}")
        if group.state.is_final or not (starting or group.replaced < group.keep):
            raise ServerDied(f"no replica of group {name} became ready{why}")
        if not (group.keeper and group.keeper.alive()):
            raise ServerDied(f"the keeper of group {name} ended{why}; see `vlaunch logs {shlex.quote(name)}`")
        if deadline and time.monotonic() > deadline:
            if group.serving:
                return group
            raise NotReady(f"no replica of group {name} became ready within {timeout:.0f} s")
        time.sleep(0.5)


def _stop(process: Process | None, what: str) -> None:
    """SIGTERM, up to :data:`STOP_WAIT` seconds, then SIGKILL; raises if the process still runs after that."""
    if not process or not process.alive():
        return
    for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(process.pid, sig)
        except ProcessLookupError:
            return
        ends = time.monotonic() + wait
        while time.monotonic() < ends:
            if not process.alive():
                return
            time.sleep(0.1)
    raise CancelError(f"the {what} (pid {process.pid}) still runs after SIGKILL")


def down_group(name: str, groups: Groups | None = None, registry: Registry | None = None) -> GroupRecord:
    """Stop group ``name``: its keeper (no more replacements), its router (the process here, or its jobs),
    then every replica, each confirmed gone. A job that cannot be confirmed stopped leaves the group
    STOPPING and is named."""
    groups, registry = groups or Groups(), registry or Registry()

    def stopping(group: GroupRecord) -> None:
        group.stop_requested = True
        if not group.state.is_final:
            group.state = GroupState.STOPPING

    group = groups.update(name, stopping)
    _stop(group.keeper, f"keeper of group {name}")
    _stop(group.router, f"router of group {name}")
    failed = []
    for record in group_jobs(name, registry):
        try:
            api.down(record.name, registry)
        except VlaunchError as exc:
            failed.append(f"{record.name}: {exc}")
    if failed:
        groups.update(name, lambda g: g.note(f"down could not confirm every job stopped: {'; '.join(failed)}"))
        raise CancelError(f"group {name}: {'; '.join(failed)}")

    def ended(group: GroupRecord) -> None:
        if group.state is not GroupState.FAILED:
            group.state = GroupState.ENDED
        group.serving = []
        group.note("stopped by vlaunch down: keeper, router and every replica")

    return groups.update(name, ended)


def group_status(name: str, groups: Groups | None = None, registry: Registry | None = None,
                 refresh: bool = True) -> tuple[GroupRecord, list[JobRecord], list[str]]:
    """Group ``name``, its jobs (router jobs, then replicas; refreshed from their backends) and one line per
    problem, a keeper or a router that is gone while the group should run among them."""
    groups, registry = groups or Groups(), registry or Registry()
    group = groups.get(name)
    records, problems = api.status([r.name for r in group_jobs(name, registry)], registry, refresh=refresh)
    if not group.state.is_final:
        for what, process in (("keeper", group.keeper), ("router", group.router)):
            if process and not process.alive():
                problems.append(f"group {name}: its {what} (pid {process.pid}) is gone; replicas are no longer"
                                f" {'replaced or added' if what == 'keeper' else 'reachable through it'};"
                                f" `vlaunch down {shlex.quote(name)}` stops the group")
    return group, records, problems


def group_log(name: str, follow: bool = False, groups: Groups | None = None) -> Iterator[bytes]:
    """The group's log (its keeper's lines and its router's); with ``follow``, new bytes as they come until
    the group has ended (read at the lifecycle's follow cadence)."""
    from .lifecycle import LOG_FOLLOW, Backoff

    groups = groups or Groups()
    path, offset, reads = groups.get(name).path("group.log"), 0, Backoff(*LOG_FOLLOW)
    while True:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        if chunk:
            reads.reset()
            yield chunk
            continue
        if not follow or groups.get(name).state.is_final:
            return
        time.sleep(reads.next())
