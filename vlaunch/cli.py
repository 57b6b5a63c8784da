"""The ``vlaunch`` command line: a thin layer over :mod:`vlaunch.api`."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import click

from . import completion
from .errors import VlaunchError
from .progress import Progress

__all__ = ["main", "cli"]


def _renamed_profile(ctx, param, name):
    """An old profile name still works (``default`` is the seed's baseline), with a line saying it was renamed."""
    from .paths import PROFILE_ALIASES, available_profiles

    if name in PROFILE_ALIASES and name not in available_profiles():
        click.echo(f"vlaunch: profile {name!r} is now called {PROFILE_ALIASES[name]!r} (the seed's slow baseline);"
                   " the default profile is 'auto'", err=True)
    return name


def profile_options(func):
    """The options that choose and override a profile (shared by ``up`` and ``render``)."""
    options = [
        click.option("--profile", "-p", default="auto", show_default=True, envvar="VLAUNCH_PROFILE",
                     shell_complete=completion.profiles, callback=_renamed_profile,
                     help="Profile name (see `vlaunch profiles`); auto plans the layout for the model."),
        click.option("--backend", "-b", default="local", show_default=True, envvar="VLAUNCH_BACKEND",
                     shell_complete=completion.backends, help="Where to run (see `vlaunch backends`)."),
        click.option("--model", "-m", help="Model to serve (hub name or path)."),
        click.option("--port", help='Port, or "auto".'),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override a setting, e.g. vllm.max_num_seqs=256 (repeatable)."),
        click.option("--vllm-args", default="", metavar="FLAGS", help='Extra vLLM flags as one string, e.g. "--max-num-seqs 256".'),
        click.option("--on", "on", metavar="HOST", help="Run on this SSH host: short for --backend ssh --set"
                     " backend.ssh.host=HOST."),
        click.option("--bind", metavar="ADDRESS", help="Address the server listens on (server.host), e.g. 0.0.0.0."),
        click.option("--host", metavar="HOST", hidden=True, help="Deprecated spelling of --on."),
        click.option("--name", help="Job name (up: PROFILE-xxxxxx, a random suffix; render: PROFILE)."),
        click.argument("extra", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: Addresses that only make sense as a server's bind address, never as a host to reach.
_BIND_ONLY = {"0.0.0.0", "::", "[::]"}


def _target(backend, on, bind, host, model, port, sets, vllm_args, extra):
    """The backend and :class:`~vlaunch.api.Overrides` of ``up``/``render``: ``--on HOST`` means the ssh
    backend on that host (with a scheduler backend the user wants ``--via``); ``--bind`` is server.host.
    ``--host`` is the old spelling of ``--on``: vLLM users read it as the bind address, so it warns."""
    from .api import Overrides

    if host:
        if host in _BIND_ONLY:
            raise click.UsageError(f"--host {host} looks like a bind address, but vlaunch's --host was the SSH host"
                                   f" (now --on HOST); for the address the server listens on use --bind {host}")
        click.echo(f"vlaunch: --host is deprecated and will be removed: use --on {host} (the SSH host to run"
                   " on); --bind ADDRESS sets the address the server listens on", err=True)
        on = on or host
    if on and backend not in ("local", "ssh"):
        raise click.UsageError(f"--on runs vLLM directly on a host (backend ssh); to submit to {backend}"
                               f" through a login node use --via {on}")
    words = shlex.split(vllm_args) + list(extra)
    sets = list(sets) + ([f"backend.ssh.host={json.dumps(on)}"] if on else [])
    sets += [f"server.host={json.dumps(bind)}"] if bind else []
    return ("ssh" if on else backend), Overrides(sets=sets, model=model, port=port, vllm_args=words)


#: The tuning wing's commands (vlaunch/tuning/commands.py), imported only when one of them or the full help
#: is asked for, so that the other commands and completion do not build them.
TUNING_COMMANDS = ("watch", "bench", "plan", "advise")


class _Group(click.Group):
    """vlaunch's command group: the core commands here, the tuning wing loaded on first use."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *TUNING_COMMANDS})

    def get_command(self, ctx, name):
        if name in TUNING_COMMANDS and name not in self.commands:
            from .tuning.commands import COMMANDS

            for command in COMMANDS:
                self.add_command(command)
        return super().get_command(ctx, name)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vlaunch")
def cli():
    """Launch vLLM's OpenAI-compatible server with tuned profiles: locally, over SSH, on Slurm or PBS."""


@cli.command(context_settings={"ignore_unknown_options": False})
@profile_options
@click.option("--via", metavar="HOST", help="Submit through this SSH host (a cluster's login node).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the server really answers.")
@click.option("--timeout", type=float, help="Give up waiting after this many seconds (the job is then cancelled).")
@click.option("--keep-on-failure", is_flag=True, help="Keep the job running when waiting fails.")
@click.option("--no-check-flags", is_flag=True, help="Skip checking the flags with the vLLM installed here.")
@click.option("--no-check-model", is_flag=True, help="Skip checking that the model is there where the job is"
              " submitted (for compute nodes that see other filesystems).")
@click.option("--json", "json_", is_flag=True, help="Print the job record as JSON.")
@click.option("--replicas", type=click.IntRange(1, 64), metavar="N",
              help="N jobs of the profile behind one endpoint, vLLM's router (replicas.count); with"
              " --backend a,b the replicas go to each backend in turn.")
@click.option("--keep", type=click.IntRange(min=0), metavar="N",
              help="Replicas: submit up to N replacements for replicas that fail or end (replicas.keep).")
def up(profile, backend, model, port, sets, vllm_args, on, bind, host, name, extra, via, wait, timeout,
       keep_on_failure, no_check_flags, no_check_model, json_, replicas, keep):
    """Start a vLLM server and wait until it is ready; print its endpoint.

    Extra vLLM flags may follow `--`, e.g. `vlaunch up -p turbo -- --max-num-seqs 256`.
    """
    from . import api

    progress = None if json_ else Progress()
    backends = [b.strip() for b in backend.split(",")]
    backend, overrides = _target(backends[0], on, bind, host, model, port, sets, vllm_args, extra)
    overrides.sets += [f"replicas.count={replicas}"] if replicas else []
    overrides.sets += [f"replicas.keep={keep}"] if keep is not None else []
    overrides.sets += [f"replicas.backends={json.dumps(backends)}"] if len(backends) > 1 else []
    options = {"name": name, "via": via, "wait": wait, "timeout": timeout, "check_flags": not no_check_flags,
               "check_model": not no_check_model, "keep_on_failure": keep_on_failure}
    try:
        record = api.up(profile, backend, overrides, progress=progress,
                        notice=lambda line: click.echo(f"vlaunch: {line}", err=True), **options)
    except api.ReplicasWanted:
        from . import replicas as groups

        group = groups.up_group(profile, backend, overrides, progress=None if json_ else _event, **options)
        _print_group(group, json_)
        return
    finally:
        if progress:
            progress.close()
    if json_:
        click.echo(json.dumps(_record_json(record), indent=2))
        return
    if not wait:
        click.echo(f"job {record.name} submitted ({record.backend} id {record.native_id}); `vlaunch wait"
                   f" {shlex.quote(record.name)}` waits until it is ready, `vlaunch status` shows how far it is")
        click.echo(f"log: {record.log_path}")
        return
    _print_ready(record)


def _print_ready(record):
    click.echo(f"job {record.name} is ready: {record.endpoint}/v1 (model {record.served_model_name!r})")
    click.echo(f"log: {record.log_path}")
    if record.transport.get("kind") != "local":
        click.echo(f"the server listens on {record.endpoint} as {record.transport.get('host')} sees it;"
                   f" reach it from here with: vlaunch tunnel {shlex.quote(record.name)}")
    _print_client_lines(_client_exports(record), record.served_model_name)


def _print_client_lines(exports: str, model: str | None) -> None:
    click.echo(exports)
    payload = json.dumps({"model": model, "prompt": "Hello", "max_tokens": 32})
    auth = ' -H "Authorization: Bearer $OPENAI_API_KEY"' if "OPENAI_API_KEY=" in exports else ""
    click.echo(f'try it: curl -s "$OPENAI_BASE_URL/completions"{auth} -H "Content-Type: application/json"'
               f" -d {shlex.quote(payload)}")


def _client_exports(record, registry=None) -> str:
    """``export OPENAI_BASE_URL=... OPENAI_API_KEY=...`` for a job or a group (the key read from its private
    file; ``registry`` is where the record is kept: the jobs' by default)."""
    from .registry import Registry

    key = (registry or Registry()).root / f"{record.name}.key"
    line = f"export OPENAI_BASE_URL={shlex.quote(record.endpoint + '/v1')}"
    if key.exists():
        line += f' OPENAI_API_KEY="$(cat {shlex.quote(str(key))})"'
    return line


def _event(line: str) -> None:
    click.echo(f"  {line}", err=True)


def _print_group(group, json_: bool) -> None:
    from .group import Groups

    if json_:
        click.echo(json.dumps(group.model_dump(mode="json"), indent=2))
        return
    if not group.serving:
        click.echo(f"group {group.name} submitted ({len(group.members)} replicas); follow it with:"
                   f" vlaunch status {shlex.quote(group.name)}")
        return
    click.echo(f"group {group.name} is ready: {group.endpoint}/v1 (model {group.model!r}), {len(group.serving)} of"
               f" {group.count} replicas serving through vLLM's router")
    click.echo(f"log: {group.path('group.log')}")
    _print_client_lines(_client_exports(group, Groups()), group.model)


@cli.command()
@profile_options
@click.option("--run-root", help="Directory for job files in the rendered paths.")
@click.option("--via", metavar="HOST", help="As for up: the job is submitted through this SSH host.")
@click.option("--router-job", is_flag=True,
              help="Print the script of the group's router job instead (replicas.router = \"job\").")
def render(profile, backend, model, port, sets, vllm_args, on, bind, host, name, extra, run_root, via, router_job):
    """Print the exact job script `up` would submit; nothing is launched.

    With the same options and --name it is byte for byte what `up` writes (up's default name is
    PROFILE-xxxxxx, render's PROFILE; a group's jobs are GROUP-rK and GROUP-routerK). A run directory
    under a remote home asks that host for it.
    """
    from . import api

    backend, overrides = _target(backend, on, bind, host, model, port, sets, vllm_args, extra)
    if router_job:
        from .replicas import render_router_job

        text = render_router_job(profile, backend, overrides, name=name, run_root=run_root, via=via)
    else:
        text = api.render(profile, backend, overrides, name=name, run_root=run_root, via=via)
    click.echo(text, nl=False)


@cli.command()
@profile_options
@click.option("--via", metavar="HOST", help="As for up: the job would be submitted through this SSH host.")
@click.option("--json", "json_", is_flag=True, help="Print the checks as JSON.")
def doctor(profile, backend, model, port, sets, vllm_args, on, bind, host, name, extra, via, json_):
    """Check, without submitting, that `up` with the same options can work: the profile renders, the
    target answers, the backend's commands are there, the GPUs the profile asks for are there (local,
    ssh), vLLM starts in the job's environment, the model is a model vLLM loads where the job looks,
    vLLM's parser accepts the flags. Exits 1 when a check fails."""
    from dataclasses import asdict

    from .doctor import doctor as run_checks

    backend, overrides = _target(backend, on, bind, host, model, port, sets, vllm_args, extra)
    checks = run_checks(profile, backend, overrides, via)
    failed = [c.name for c in checks if c.passed is False]
    if json_:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for check in checks:
            word = {True: "passed", False: "FAILED", None: "skipped"}[check.passed]
            click.echo(f"  {check.name:<9} {word:<8} {check.detail}")
        click.echo(f"doctor: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)})" if failed
                   else f"doctor: nothing in the way ({len(checks)} checks)")
    if failed:
        sys.exit(1)


def _record_json(record):
    data = record.model_dump(mode="json")
    data["endpoint"] = record.endpoint
    data["log_path"] = record.log_path
    return data


_COLUMNS = ("NAME", "BACKEND", "PROFILE", "MODEL", "STATE", "READY", "AGE", "ENDPOINT", "REASON")


def _age(created_at: str, now) -> str:
    """How long ago a job was created, in its largest whole unit (``45s``, ``12m``, ``3h``, ``2d``)."""
    from datetime import datetime

    seconds = max(0, int((now - datetime.fromisoformat(created_at)).total_seconds()))
    unit, size = next(((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60)) if seconds >= n), ("s", 1))
    return f"{seconds // size}{unit}"


def _table_lines(records) -> list[str]:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    rows = [(r.name, r.backend, r.profile, f"({r.serves})" if r.serves else r.served_model_name
             or (r.config.get("server") or {}).get("model") or "-",
             r.state.value, "yes" if r.ready_at and not r.state.is_final else "-", _age(r.created_at, now),
             (r.endpoint if not r.state.is_final else None) or "-", r.reason or "") for r in records]
    widths = [max(len(str(x)) for x in col) for col in zip(_COLUMNS, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [_COLUMNS, *rows]]


@cli.command()
@click.argument("names", nargs=-1, shell_complete=completion.jobs)
@click.option("--json", "json_", is_flag=True, help="Print records as JSON.")
@click.option("--no-refresh", is_flag=True, help="Show stored states without asking the backends.")
@click.option("--watch", "-w", is_flag=True,
              help="Refresh in place until every job shown is ready or has ended (Ctrl-C stops watching).")
def status(names, json_, no_refresh, watch):
    """Show jobs and replica groups (all, or the named ones), refreshed from their backends; exit status 1
    when some could not be refreshed."""
    from .paths import group_names, job_names

    if watch and (json_ or no_refresh):
        raise click.UsageError("--watch refreshes a table: it takes neither --json nor --no-refresh")
    if not names and not job_names() and not group_names():  # nothing to load models or plugins for
        click.echo("[]" if json_ else "no jobs")
        return
    known_groups = set(group_names())
    groups = [n for n in names if n in known_groups] if names else sorted(known_groups)
    if watch:
        sys.exit(_watch(_expand_groups(names, known_groups) or None))
    from . import api

    jobs = [n for n in names if n not in known_groups]
    records, problems = api.status(jobs or None, refresh=not no_refresh) if jobs or not names else ([], [])
    shown = [_group_status(name, not no_refresh and bool(names)) for name in groups]  # else: in the jobs table
    problems += [problem for _, _, group_problems in shown for problem in group_problems]
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    if json_:
        click.echo(json.dumps([*({**g.model_dump(mode="json"),
                                  "router_jobs": [_record_json(r) for r in jobs if r.serves],
                                  "replicas": [_record_json(r) for r in jobs if not r.serves]}
                                 for g, jobs, _ in shown if names),
                               *(_record_json(r) for r in records)], indent=2))
    else:
        lines = []
        for group, members, _ in shown:
            lines += _group_lines(group, members if names else [])
        lines += ([""] if lines and records else []) + (_table_lines(records) if records else [])
        click.echo("\n".join(lines) if lines else "no jobs")
    if problems:
        sys.exit(1)


def _expand_groups(names, known_groups) -> list[str]:
    """Job names, a group's name standing for its jobs (router jobs and replicas)."""
    from .registry import Registry
    from .replicas import group_jobs

    registry = Registry()
    return [m.name for n in names for m in (group_jobs(n, registry) if n in known_groups else [registry.get(n)])]


def _group_status(name: str, refresh: bool):
    from .replicas import group_status

    return group_status(name, refresh=refresh)


def _group_lines(group, members) -> list[str]:
    """A group's line (its router's endpoint, replicas serving, replacements used), its latest events, and
    with ``members`` its jobs' table (router jobs, then replicas)."""
    endpoint = f"{group.endpoint}/v1" if group.endpoint and not group.state.is_final else "-"
    lines = [f"group {group.name}  {group.state.value}  {endpoint}  model {group.model}  serving"
             f" {len(group.serving)}/{group.count}  replaced {group.replaced}/{group.keep}"
             + (f"  ({group.reason})" if group.reason else "")]
    if members:
        lines += [f"  {event}" for event in group.events[-6:]] + [""] + _table_lines(members)
    return lines


def _watch(names) -> int:
    """Redraw the table (in place on a terminal, else whenever a state or a reason changes, its timers aside)
    at the lifecycle's watch cadence until every job is ready or ended; the exit status of the last refresh."""
    import re
    import shutil

    from . import api
    from .lifecycle import WATCH_POLL, Backoff

    tty, gaps, drawn, seen, warned = sys.stdout.isatty(), Backoff(*WATCH_POLL), 0, None, set()
    while True:
        records, problems = api.status(names)
        for problem in set(problems) - warned:
            click.echo(f"warning: {problem}", err=True)
        warned = set(problems)
        lines = _table_lines(records) if records else ["no jobs"]
        if tty:  # one row per line, or moving up `drawn` rows would leave the wrapped ones behind
            width = shutil.get_terminal_size().columns - 1
            lines = [line if len(line) <= width else line[:max(0, width - 3)] + "..." for line in lines]
        states = [(r.name, r.state, bool(r.ready_at), re.sub(r"\d+ s\b", "", r.reason or "")) for r in records]
        if tty or states != seen:
            click.echo((f"\x1b[{drawn}F\x1b[J" if tty and drawn else "") + "\n".join(lines))
            drawn, seen = len(lines), states
        if all(r.ready_at or r.state.is_final for r in records):
            return 1 if problems else 0
        time.sleep(gaps.next())


@cli.command()
@click.argument("name", shell_complete=completion.jobs)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Give up after this many seconds"
              " (the job keeps running).")
def wait(name, timeout):
    """Wait until a job, however it was started (`up --no-wait`, another shell), really answers; exit 0
    when ready, non-zero with the cause when it ends first. The job is never cancelled here."""
    from . import api

    progress = Progress()
    try:
        record = api.wait(name, timeout, progress)
    finally:
        progress.close()
    _print_ready(record)


@cli.command("ls")
@click.option("--json", "json_", is_flag=True, help="Print records as JSON.")
@click.pass_context
def ls_(ctx, json_):
    """List all jobs (same as `status` without names)."""
    ctx.invoke(status, names=(), json_=json_, no_refresh=False)


@cli.command()
@click.argument("names", nargs=-1, shell_complete=completion.jobs)
@click.option("--all", "all_", is_flag=True, help="Every job that has not ended.")
@click.option("--forget", is_flag=True, help="Also remove the job's record.")
def down(names, all_, forget):
    """Stop jobs and replica groups and confirm they are gone (a group: its router, then every replica)."""
    from . import api
    from .paths import group_names
    from .registry import Registry

    if bool(names) == all_:
        raise click.UsageError("name the jobs to stop, or give --all (not both)")
    known_groups = set(group_names())
    if all_:
        from .group import Groups

        groups, _ = Groups().all()
        records, _ = Registry().all()
        names = [g.name for g in groups if not g.state.is_final] + [r.name for r in records if not r.state.is_final]
        if not names:
            click.echo("no running or queued jobs")
    failed, stopped = [], set()
    for name in names:
        if name in stopped:  # a replica its group's down already stopped
            continue
        try:
            if name in known_groups:
                from .replicas import down_group, group_jobs

                group = down_group(name)
                stopped.update(m.name for m in group_jobs(name, Registry()))
                count = len(group.members)
                click.echo(f"group {name}: {group.state.value} (router and {count} replica{'s' * (count != 1)} stopped)")
                continue
            record = api.down(name, forget_job=forget)
        except VlaunchError as exc:
            if len(names) == 1:
                raise
            click.echo(f"error: {name}: {exc}", err=True)
            failed.append(name)
            continue
        click.echo(f"job {name}: {record.state.value}" + (f" ({record.reason})" if record.reason else ""))
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("name", shell_complete=completion.jobs)
@click.option("--force", is_flag=True,
              help="Remove the record even if the job may still run (when `down` cannot reach its backend).")
def forget(name, force):
    """Remove an ended job's record."""
    from . import api

    record = api.forget(name, force=force)
    if not record.state.is_final:
        click.echo(f"warning: job {name} was {record.state.value} when forgotten; whatever still runs of it"
                   f" (native id {record.native_id or '-'}, run directory {record.run_dir}) is yours to stop", err=True)
    click.echo(f"forgot job {name}")


@cli.command()
@click.argument("name", shell_complete=completion.jobs)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option("--lines", "-n", type=click.IntRange(min=0), help="Start with only the last N lines.")
def logs(name, follow, lines):
    """Print a job's server log (a replica group's: its keeper's and router's log)."""
    from . import api
    from .paths import group_names

    out = click.get_binary_stream("stdout")
    if name in group_names():
        from .replicas import group_log

        chunks = group_log(name, follow=follow)
    else:
        chunks = api.logs(name, follow=follow)
    if lines is not None:
        first = next(chunks, b"")
        out.write(b"".join(first.splitlines(keepends=True)[-lines:]) if lines else b"")
    for chunk in chunks:
        out.write(chunk)
        out.flush()


@cli.command("env")
@click.argument("name", shell_complete=completion.jobs)
def env_(name):
    """Print the shell exports that point OpenAI clients at a ready job or group: eval "$(vlaunch env NAME)"."""
    from .paths import group_names
    from .registry import Registry

    if name in group_names():
        from .group import Groups

        groups = Groups()
        group = groups.get(name)
        if not group.serving or group.state.is_final:
            raise VlaunchError(f"group {name} has no replica serving (state {group.state.value})")
        click.echo(_client_exports(group, groups))
        return
    record = Registry().get(name)
    if not record.ready_at and not record.state.is_final:  # whoever started it: establish readiness now
        from . import api

        record = api.status([name])[0][0]
    if not record.endpoint or record.state.is_final:
        why = f": {record.reason}" if record.reason else ""
        hint = "" if record.state.is_final else f"; `vlaunch wait {shlex.quote(name)}` waits for it"
        raise VlaunchError(f"job {name} has no endpoint to point clients at (state {record.state.value}{why}){hint}")
    if record.transport.get("kind") != "local":
        click.echo(f"vlaunch: {record.endpoint} is the address as {record.transport.get('host')} sees it; from here"
                   f" `vlaunch tunnel {shlex.quote(name)}` prints a local one", err=True)
    click.echo(_client_exports(record))


@cli.command()
@click.argument("name", shell_complete=completion.jobs)
@click.option("--port", "local_port", type=int, default=0, help="Local port to listen on (default: a free one).")
def tunnel(name, local_port):
    """Forward a local port to a remote job's server until interrupted."""
    from . import api

    session = api.session_for(name)
    try:
        record = session.record
        if not record.endpoint:
            raise VlaunchError(f"job {name} has not published its address yet (state {record.state.value})")
        if session.transport.kind == "local":
            click.echo(f"job {name} runs on this machine; no tunnel needed: {record.endpoint}/v1")
            return
        host, port = session.transport.forward(record.host, record.port, local_port)
        click.echo(f"forwarding http://{host}:{port} -> {record.host}:{record.port} on"
                   f" {record.transport.get('host')}; Ctrl-C stops")
        by_hand = session.transport.tunnel_command(record.host, record.port, port)
        if by_hand:
            click.echo(f"the same with OpenSSH: {by_hand}")
        click.echo(f"export OPENAI_BASE_URL=http://{host}:{port}/v1")
        while True:  # short sleeps: Ctrl-C may land on a forward's thread, and only a waking main thread acts on it
            time.sleep(0.25)
    finally:
        session.transport.close()


def _interruptible() -> None:
    """Ctrl-C stops every command cleanly (``up`` cancels its job, ``tunnel`` closes its forward), even when
    vlaunch starts with SIGINT ignored, as a background job of a script does: Python then installs no
    handler of its own, and ``tunnel`` never stopped."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@cli.group(invoke_without_command=True)
@click.option("--json", "json_", is_flag=True, help="Print as JSON.")
@click.pass_context
def profiles(ctx, json_):
    """List profiles (or `profiles show NAME`)."""
    if ctx.invoked_subcommand:
        return
    from .config.layers import available_profiles, read_toml

    found = available_profiles()
    rows = {name: read_toml(path).get("description", "") for name, path in found.items()}
    if json_:
        click.echo(json.dumps([{"name": n, "path": str(found[n]), "description": d} for n, d in rows.items()], indent=2))
        return
    width = max(map(len, rows), default=4)
    for name, description in rows.items():
        click.echo(f"{name.ljust(width)}  {description}")


@profiles.command("show")
@click.argument("name", shell_complete=completion.profiles)
@click.option("--sources", is_flag=True, help="Show which layer set each value.")
@click.option("--json", "json_", is_flag=True, help="Print as JSON.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting (repeatable).")
def profiles_show(name, sources, json_, sets):
    """Show a resolved profile (every layer applied)."""
    from .config.layers import cli_layer, resolve_profile

    resolved = resolve_profile(name, cli_layer(list(sets)))
    data = resolved.profile.model_dump(mode="json")
    if json_:
        payload = {"name": name, "profile": data}
        if sources:
            payload["sources"] = {path: resolved.source_of(path) for path in _leaf_paths(data)}
        click.echo(json.dumps(payload, indent=2))
        return
    for path in _leaf_paths(data):
        value = _get(data, path)
        line = f"{path} = {json.dumps(value)}"
        click.echo(f"{line:<60}  # {resolved.source_of(path)}" if sources else line)


def _leaf_paths(data, prefix=""):
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaf_paths(value, path + ".")
        else:
            yield path


def _get(data, path):
    for key in path.split("."):
        data = data[key]
    return data


@cli.command()
@click.option("--json", "json_", is_flag=True, help="Print as JSON, with each options schema.")
def backends(json_):
    """List installed backends (their distributions and options) and transports; report plugins that
    failed to load."""
    from .plugins import get_host

    host = get_host()
    infos = [host.backends[n] for n in sorted(host.backends)]
    transports = [host.transports[k] for k in sorted(host.transports)]
    if json_:
        click.echo(json.dumps({
            "backends": [{"name": i.name, "distribution": i.distribution, "version": i.version,
                          "description": i.cls.description, "options": i.cls.options_model.model_json_schema(),
                          "missing": i.cls.missing_modules()}
                         for i in infos],
            "transports": [{"kind": t.kind.kind, "distribution": t.distribution, "version": t.version,
                            "description": t.kind.description, "spec": t.kind.spec_model.model_json_schema()}
                           for t in transports],
            "failed": [{"entry_point": f.name, "distribution": f.distribution, "error": f.error}
                       for f in host.failures]}, indent=2))
        return
    for info in infos:
        fields = ", ".join(info.cls.options_model.model_fields) or "no options"
        missing = info.cls.missing_modules()
        unusable = f"  UNUSABLE here, needs: {', '.join(missing)}" if missing else ""
        click.echo(f"{info.name:<8} {info.distribution} {info.version}  {info.cls.description}  [{fields}]{unusable}")
    for transport in transports:
        click.echo(f"transport {transport.kind.kind}: {transport.kind.description} ({transport.distribution})")
    for failure in host.failures:
        click.echo(f"failed to load plugin {failure.name!r} from {failure.distribution}: {failure.error}", err=True)


@cli.command("new-backend")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Where to create vlaunch-NAME/.")
def new_backend(name, parent):
    """Write a backend plugin package (vlaunch-NAME/) that passes the conformance suite as generated."""
    from pathlib import Path

    from .testing.newbackend import write_backend

    dest = write_backend(name, Path(parent))
    click.echo(f"wrote {dest}: pip install -e '{dest}[test]' && pytest {dest}/tests")


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_script(shell):
    """Print the shell completion script, e.g. `eval "$(vlaunch completion bash)"`."""
    from click.shell_completion import get_completion_class

    comp = get_completion_class(shell)(cli, {}, "vlaunch", "_VLAUNCH_COMPLETE")
    click.echo(comp.source())


def _fail(message: str, code: int, argv) -> None:
    """One line on stderr and exit ``code``; with ``--json`` on the command line, the same as a JSON object
    on stdout too, so that a script reading stdout gets an answer it can parse."""
    click.echo(message, err=True)
    if "--json" in (sys.argv[1:] if argv is None else argv):
        click.echo(json.dumps({"error": message.removeprefix("error: "), "exit_code": code}))
    sys.exit(code)


def main(argv=None):
    """Entry point: run the CLI, turning every vlaunch error into one line and a non-zero exit."""
    _interruptible()
    try:
        cli.main(args=argv, prog_name="vlaunch", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", 130, argv)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "vlaunch"
        _fail(f"error: {exc.format_message()} (see: {command} --help)", exc.exit_code, argv)
    except click.ClickException as exc:
        _fail(f"error: {exc.format_message()}", exc.exit_code, argv)
    except VlaunchError as exc:
        _fail(f"error: {exc}", exc.exit_code, argv)
    except KeyboardInterrupt:
        _fail("interrupted", 130, argv)
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("VLAUNCH_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set VLAUNCH_DEBUG=1 for the traceback)", 70, argv)
