"""The keeper of a replica group: one process on the machine that ran ``vlaunch up --replicas N``.

It runs vLLM's router: as its child (``replicas.router = "here"``), or as the group's router job on the
replicas' backend (``"job"``), which it follows like a replica and submits again when it ends; a router
that runs but leaves its /health unanswered for ``replicas.router_timeout`` is ended and replaced. It waits
for each replica to really answer (the same readiness as ``up``) and only then gives it to the router
(once the router serves), takes a replica away as soon as its job has ended, and submits a replacement
while ``replicas.keep`` allows; it takes out of the router any worker it did not give it (the router's
admin routes take no key). It holds each job's transport, so a forward over SSH lives as long as the
group. It writes what happens to the group's record (``vlaunch status GROUP``) and to its log (``vlaunch
logs GROUP``). SIGTERM (``vlaunch down``) stops it and a router run here; ``down`` then stops the jobs.
Run as ``python -m vlaunch.keeper GROUP``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.parse

from . import api, router
from .errors import SchedulerError, TransportError, VlaunchError
from .group import GroupRecord, Groups, GroupState, Process
from .lifecycle import Backoff
from .plugins import get_host
from .registry import JobRecord, Registry
from .replicas import group_jobs, members, next_number, submit_replica, submit_router_job
from .session import DOWN_CAUSE, JobSession, refresh_many
from .transport import Transport

__all__ = ["Keeper", "main"]

#: Seconds between the keeper's rounds (the replicas' states are asked of their backends each round):
#: short while something changes, backing off to the longest while nothing does.
ROUND = (1.0, 5.0)
#: Seconds the router has to answer its /health after it starts.
ROUTER_START = 30.0
#: Router jobs in a row that may fail to serve, once one has served, before the keeper gives up (the first
#: one failing is a setting to fix: the keeper gives up at once).
ROUTER_JOB_TRIES = 3
#: First and longest seconds between two tries to submit a router job when the scheduler refuses it.
ROUTER_JOB_RESUBMIT = (5.0, 60.0)


def _first_line(exc: BaseException) -> str:
    """An error's first line (its type's name when it has no text), for events."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} keeper: {text}", flush=True)


class Keeper:
    """Keeps group ``name`` serving: its router, and the replicas the router sends to."""

    def __init__(self, name: str, groups: Groups | None = None, registry: Registry | None = None):
        self.name = name
        self.groups = groups or Groups()
        self.registry = registry or Registry()
        self.key = self.groups.key(name) or ""
        self.host = get_host()
        self.stopping = threading.Event()
        self.router: subprocess.Popen | None = None  # a router run here
        self.router_job: str | None = None  # or the router job that serves now, or is being made ready
        self.router_session: JobSession | None = None  # that job's session (its transport, a forward)
        self.router_served, self.router_failures = False, 0  # has one served; how many failed since
        self.resubmit, self.next_submit = Backoff(*ROUTER_JOB_RESUBMIT), 0.0
        self.unsubmitted = ""  # why the last router job could not be submitted, if it could not
        self.endpoint = ""  # where the router serves, once it does
        self.unanswered_since: float | None = None  # when the router that serves stopped answering, if it did
        self.fault: str | None = None  # why the keeper must stop (a router job that never served)
        self.router_at = self.groups.get(name).router_at
        self.urls: dict[str, str] = {}  # replica -> the URL the router has for it
        self.readying: set[str] = set()  # replicas whose readiness a thread is waiting for
        self.sessions: list[JobSession] = []
        self.transports: dict[tuple, Transport] = {}
        self.handled: set[str] = set()  # ended replicas already taken away and replaced (or not)
        self.lock = threading.Lock()

    # -- the group's record -------------------------------------------------------------------------
    def _note(self, text: str, change=None) -> GroupRecord:
        _say(text)

        def apply(group: GroupRecord) -> None:
            if change:
                change(group)
            group.note(text)
        return self.groups.update(self.name, apply)

    def _serving(self, group: GroupRecord) -> None:
        """Set the group's ``serving`` from what the router has now (every change to it ends with this, so
        the last write is the truth whatever order the keeper's threads write in)."""
        with self.lock:
            group.serving = list(self.urls) if self.endpoint else []
        if group.serving and not group.state.is_final:
            group.state = GroupState.SERVING

    def _unserved(self, group: GroupRecord) -> None:
        """The router is gone (its endpoint unset): nothing is served until the next one is."""
        self._serving(group)
        if not group.state.is_final:
            group.state = GroupState.STARTING

    # -- the router ---------------------------------------------------------------------------------
    def _start_router(self) -> None:
        """Start the router here (it serves before this returns) or submit a router job (it joins once it
        answers)."""
        group = self.groups.get(self.name)
        if self.router_at == "job":
            self._submit_router_job(group)
            return
        port = group.router_port or router.free_port(group.router_host)
        argv = router.argv(router.program(), group.router_host, port, group.policy, router.free_port("127.0.0.1"))
        self.router = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sys.stdout, stderr=subprocess.STDOUT)
        endpoint = f"http://{group.router_host}:{port}"
        ends = time.monotonic() + ROUTER_START
        while not router.healthy(endpoint):
            if self.router.poll() is not None or time.monotonic() > ends:
                self.router.kill()
                raise VlaunchError(f"vLLM's router did not start on {group.router_host}:{port} (status"
                                   f" {self.router.wait()}; its lines are in this log)")
            time.sleep(0.2)
        process = Process.of(self.router.pid)
        self._router_serves(endpoint, f"router {' '.join(argv[1:7])} serving at {endpoint} (pid {self.router.pid})",
                            lambda g: (setattr(g, "router", process), setattr(g, "router_port", port)))

    def _router_serves(self, endpoint: str, said: str, change) -> None:
        """The router answers at ``endpoint``: give it every replica that is ready (one it would not take is
        made ready again next round)."""
        refused = []
        with self.lock:
            for name, url in list(self.urls.items()):
                try:
                    router.add_worker(endpoint, url)
                except router.ERRORS as exc:
                    refused.append(f"{name} ({exc})")
                    del self.urls[name]
            self.endpoint = endpoint
        self._note(said, lambda g: (change(g), self._serving(g)))
        if refused:
            self._note(f"the router did not take {', '.join(refused)}: made ready again next round")

    def _submit_router_job(self, group: GroupRecord) -> None:
        record = submit_router_job(group, self.key, self.registry)
        self.router_job, self.unsubmitted = record.name, ""
        self._note(f"router job {record.name} submitted to {record.backend} (id {record.native_id})",
                   lambda g: g.router_jobs.append(record.name) if record.name not in g.router_jobs else None)
        threading.Thread(target=self._follow_router_job, args=(record.name,), daemon=True).start()

    def _follow_router_job(self, name: str) -> None:
        """Wait for router job ``name`` to answer, then make it the group's endpoint (runs in a thread). While
        the job cannot be observed it is waited for; one that ends or times out first did not serve."""
        try:
            record = self.registry.get(name)
            if self.router_session:  # the last router job's, which did not serve
                self.router_session.transport.close()
            self.router_session = JobSession(self.host, self.registry, record, self.host.transport(record.transport))
            while True:
                try:
                    url = api.wait_ready(self.router_session)
                    break
                except (TransportError, SchedulerError) as exc:  # unknown, not failed: look again
                    _say(f"cannot see router job {name} now, looking again: {_first_line(exc)}")
                    if self.stopping.wait(ROUND[1]):
                        return
        except Exception as exc:  # noqa: BLE001 - whatever it was, the keeper must hear of it
            self._router_job_failed(name, exc)
            return
        self.router_served, self.router_failures = True, 0
        where, node = urllib.parse.urlsplit(url), self.router_session.record.node
        self._router_serves(url, f"router job {name} serving at {url} (on {node})", lambda g: (
            setattr(g, "router_host", where.hostname), setattr(g, "router_port", where.port)))

    def _router_job_failed(self, name: str, exc: Exception) -> None:
        """Router job ``name`` did not serve: submit another, unless none has served yet or too many failed."""
        said = _first_line(exc)
        hint = (" (127: the shell found no such program where the job ran: put vllm-router on the job's PATH or"
                " set replicas.router_command)" if "status 127" in said else "")
        self.router_failures += 1
        if not self.router_served or self.router_failures >= ROUTER_JOB_TRIES:
            self.fault = f"router job {name} did not serve: {said}{hint}"
            return
        self._note(f"router job {name} did not serve: {said}; submitting another ({self.router_failures} failed in"
                   f" a row; the keeper gives up at {ROUTER_JOB_TRIES})")
        try:  # readiness cancelled it if it ended or timed out; whatever else happened, it must not stay
            api.down(name, self.registry)
        except VlaunchError as stop:
            _say(f"could not confirm router job {name} stopped: {stop}")
        self.router_job = None  # the next round submits another

    def _router_job_due(self) -> bool:
        """Submit another router job once the one that served has ended (or one failed to serve), or when the
        scheduler refused the last try (tried again with back-off, each new reason noted); True if one was
        submitted."""
        if self.router_at != "job" or (self.router_job and not self.endpoint):
            return False  # the router runs here, or a router job is being made ready
        if self.router_job:
            record = self.registry.get(self.router_job)
            if not record.state.is_final:
                return False
            with self.lock:
                self.endpoint, self.router_job = "", None
            if self.router_session:
                self.router_session.transport.close()
            why = f"{record.state.value}{': ' + record.reason if record.reason else ''}"
            self._note(f"router job {record.name} ended ({why}); submitting another (the endpoint changes)",
                       lambda g: (self._unserved(g), setattr(g, "router_port", None)))
        if time.monotonic() < self.next_submit:
            return False
        try:
            self._submit_router_job(self.groups.get(self.name))
        except (VlaunchError, OSError) as exc:
            self.next_submit = time.monotonic() + self.resubmit.next()
            if str(exc) != self.unsubmitted:
                self.unsubmitted = str(exc)
                self._note(f"no router job could be submitted (tried again, at most a minute apart): {exc}")
            return False
        self.resubmit.reset()
        return True

    def _router_hangs(self, group: GroupRecord) -> bool:
        """Whether the router that serves has left its /health unanswered for ``router_timeout`` seconds (one
        look a round) though it runs: one that ended is started or submitted again by the round instead."""
        looked = time.monotonic()
        if not self.endpoint or router.healthy(self.endpoint):
            self.unanswered_since = None
            return False
        self.unanswered_since = self.unanswered_since or looked
        return time.monotonic() - self.unanswered_since >= group.router_timeout

    def _end_hung_router(self, group: GroupRecord) -> None:
        """End a router that runs but does not answer: one run here is killed and started again at once (on
        the same port); a router job is stopped, and the next round submits another (the endpoint changes)."""
        said = f"the router at {self.endpoint} has not answered its /health for {group.router_timeout:g} s"
        self.unanswered_since = None
        if self.router:
            with self.lock:
                self.endpoint = ""  # replicas that become ready meanwhile join the next one
            self._note(f"{said}; killing it (pid {self.router.pid}) and starting another", self._unserved)
            self.router.kill()
            self.router.wait()
            self._start_router()
            return
        self._note(f"{said} though its job {self.router_job} runs; stopping the job (another is submitted)")
        try:
            api.down(self.router_job, self.registry)
        except VlaunchError as exc:  # looked at again next round, and stopped again once the time has passed
            _say(f"could not confirm router job {self.router_job} stopped: {exc}")

    def _stop_router(self) -> None:
        """Stop a router run here; let go of a router job's session (the job itself: :meth:`_stop_jobs`)."""
        if self.router and self.router.poll() is None:
            self.router.terminate()
            try:
                self.router.wait(10)
            except subprocess.TimeoutExpired:
                self.router.kill()
                self.router.wait()
        if self.router_session:
            self.router_session.transport.close()

    def _stop_jobs(self, group: GroupRecord, everyone: bool) -> None:
        """Unless ``down`` asked (it stops every job itself): stop the router job, and with ``everyone`` (the
        keeper gives up) every job of the group, so that nothing of it is left running unmanaged."""
        if group.stop_requested:
            return
        for record in group_jobs(self.name, self.registry):
            if (everyone or record.serves) and not record.state.is_final:
                try:
                    api.down(record.name, self.registry)
                except VlaunchError as exc:
                    _say(f"could not confirm {record.name} stopped: {exc}")

    # -- the replicas -------------------------------------------------------------------------------
    def _transport(self, spec: dict) -> Transport:
        key = tuple(sorted(spec.items()))
        if key not in self.transports:
            self.transports[key] = self.host.transport(spec)
        return self.transports[key]

    def _ready(self, name: str) -> None:
        """Wait for replica ``name`` to really answer, then give it to the router (runs in a thread)."""
        try:
            record = self.registry.get(name)
            session = JobSession(self.host, self.registry, record, self.host.transport(record.transport))
            self.sessions.append(session)
            url = api.wait_ready(session)
            if self.router_at == "job":  # the router job reaches it as its cluster sees it
                url = session.record.endpoint
            with self.lock:
                if self.stopping.is_set():
                    return
                if self.endpoint:
                    router.add_worker(self.endpoint, url)
                self.urls[name] = url  # only once the router has it: else the next round tries again
                joined = bool(self.endpoint)
            if not joined:
                self._note(f"{name} is ready at {url}; it joins the router once the router serves")
                return
            self._note(f"{name} is ready at {url}; the router sends to it", self._serving)
        except (VlaunchError, *router.ERRORS) as exc:
            self._note(f"{name} did not become ready: {_first_line(exc)}")
        finally:
            self.readying.discard(name)

    def _replace(self, group: GroupRecord, ended: JobRecord) -> None:
        """Submit a replacement for ``ended`` (on its backend) while the group's ``keep`` allows."""
        said = f"{ended.name} ended ({ended.state.value}{': ' + ended.reason if ended.reason else ''})"
        if ended.cancel_cause == DOWN_CAUSE:
            self._note(f"{said}: a user stopped it, so it is not replaced")
            return
        if group.replaced >= group.keep:
            self._note(f"{said}; no replacement left (keep = {group.keep})")
            return
        number = next_number(self.name, self.registry)
        self._note(f"{said}; submitting a replacement ({group.replaced + 1} of {group.keep})",
                   lambda g: setattr(g, "replaced", g.replaced + 1))
        try:
            record = submit_replica(group, number, self.key, self.registry, backend=ended.backend)
        except VlaunchError as exc:
            self._note(f"replacement {number} not submitted: {exc}")
            return
        self._note(f"{record.name} submitted to {record.backend} (id {record.native_id})",
                   lambda g: g.members.append(record.name))

    def _round(self, group: GroupRecord) -> bool:
        """One look at every replica; True when something changed."""
        records = [r for r in members(self.name, self.registry) if r.name not in self.handled]
        serving_job = [self.registry.get(self.router_job)] if self.router_job and self.endpoint else []
        for problem in refresh_many(self.host, self.registry, records + serving_job, self._transport):
            _say(f"cannot see some replicas now (kept as they were): {problem}")
        changed = False
        for record in records:
            if record.state.is_final:
                changed = True
                with self.lock:
                    url = self.urls.pop(record.name, None)
                    if url and self.endpoint:
                        try:
                            router.remove_worker(self.endpoint, url)
                        except router.ERRORS:  # its own health checks take a dead replica out anyway
                            pass
                if url:
                    self._note(f"{record.name} taken out of the router", self._serving)
                self.handled.add(record.name)
                self._replace(self.groups.get(self.name), record)
            elif record.name not in self.urls and record.name not in self.readying:
                changed = True
                self.readying.add(record.name)
                threading.Thread(target=self._ready, args=(record.name,), daemon=True).start()
        if self.router and self.router.poll() is not None:
            changed = True
            _say(f"the router ended (status {self.router.returncode}); starting it again")
            self._start_router()
        changed = self._router_job_due() or changed
        if self._router_hangs(group):
            changed = True
            self._end_hung_router(group)
        if self.unanswered_since:  # its admin routes would not answer either
            return changed
        return self._evict_strangers() or changed

    def _evict_strangers(self) -> bool:
        """Take out of the router every worker the keeper did not give it; True if there was one. Its admin
        routes take no key, so anyone who can reach it could add one (and be sent clients' requests)."""
        if not self.endpoint:
            return False
        try:
            listed = router.workers(self.endpoint)
            with self.lock:
                strangers = [url for url in listed if url not in self.urls.values()]
                for url in strangers:
                    router.remove_worker(self.endpoint, url)
        except router.ERRORS:  # not answering: a router run here is started again if it ended; a router job
            return False  # is submitted again once its job has ended
        for url in strangers:
            self._note(f"{url} was in the router, not given by vlaunch: taken out")
        return bool(strangers)

    def _settle(self, group: GroupRecord) -> bool:
        """True once no replica runs or is being made ready (what could be replaced was, this round)."""
        records = members(self.name, self.registry)
        if any(not r.state.is_final for r in records) or self.readying:
            if not self.urls and group.state is GroupState.SERVING:
                self.groups.update(self.name, lambda g: setattr(g, "state", GroupState.STARTING))
            return False
        stopped = all(r.cancel_cause == DOWN_CAUSE for r in records)
        state, why = (GroupState.ENDED, "every replica was stopped") if stopped else (GroupState.FAILED,
                                                                                      "no replica is left")
        self._note(f"{why}: the group has ended", lambda g: (setattr(g, "state", state), setattr(g, "reason", why)))
        return True

    # -- the loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Keep the group until it is stopped or has ended; the exit status."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        gaps, status = Backoff(*ROUND), 0
        try:
            self._start_router()
            while not self.stopping.is_set():
                group = self.groups.get(self.name)
                if group.stop_requested:
                    break
                if self.fault:
                    raise VlaunchError(self.fault)
                if self._round(group):
                    gaps.reset()
                if self._settle(self.groups.get(self.name)):
                    break
                self.stopping.wait(gaps.next())
        except Exception as exc:  # noqa: BLE001 - the group's record and log say why
            why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, VlaunchError) else str(exc)
            self._note(f"the keeper stops: {why}; it stops every job of the group",
                       lambda g: (setattr(g, "reason", why), setattr(g, "state", GroupState.FAILED)))
            status = 1
        finally:
            self.stopping.set()
            self._stop_router()
            self._stop_jobs(self.groups.get(self.name), everyone=bool(status))
            for session in self.sessions:
                session.transport.close()
            for transport in self.transports.values():
                transport.close()
            _say("stopped")
        return status


def main(argv: list[str] | None = None) -> int:
    """``python -m vlaunch.keeper GROUP``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vlaunch.keeper GROUP", file=sys.stderr)
        return 2
    return Keeper(args[0]).run()


if __name__ == "__main__":
    sys.exit(main())
