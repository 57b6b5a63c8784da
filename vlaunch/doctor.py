"""``vlaunch doctor``: can ``up`` work from here? Each check asks where the job would run, through the
same launch plan and transport as ``up``, and nothing is submitted.

Checks, in order: the profile resolves and renders; the target answers (this machine, the SSH host, the
login node); the backend's commands are there; vLLM imports in the job's environment (for backends that
run the server on the target itself: compute nodes are not reachable from here); the model is where the
job will look; vLLM's parser here accepts the flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import VlaunchError
from .model_check import where

__all__ = ["Check", "doctor"]

#: Printed by the vLLM check's probe, then the version.
_PROBE_WORD = "vlaunch-doctor-vllm"


@dataclass
class Check:
    """One check: ``passed`` (None: skipped) and what it saw."""

    name: str
    passed: bool | None
    detail: str


def _vllm_probe(prepared, job) -> list[str]:
    """A shell command that prepares the job's environment and prints vLLM's version as the job would see it."""
    from . import shell
    from .script import environment_block

    command = list(prepared.profile.server.command)
    if len(command) > 2 and command[1] == "-m":
        probe = shell.join([command[0], "-c", f"import vllm; print({_PROBE_WORD!r}, vllm.__version__)"])
    else:
        probe = f"command -v {shell.quote(command[0])} >/dev/null && echo {_PROBE_WORD} {shell.quote(command[0])}"
    return ["bash", "-c", f"{environment_block(job)}\n{probe}"]


def _scheduler(backend, transport) -> Check:
    if not backend.commands:
        return Check("commands", None, f"backend {backend.name} names none")
    missing = [c for c in backend.commands if transport.run(["sh", "-c", 'command -v "$0"', c]).returncode != 0]
    if missing:
        hint = f" ({backend.install_hint})" if backend.install_hint else ""
        return Check("commands", False, f"missing {where(transport)}: {', '.join(missing)}{hint}")
    return Check("commands", True, f"{', '.join(backend.commands)} {where(transport)}")


def _vllm(prepared, job, transport) -> Check:
    if prepared.backend.name not in ("local", "ssh"):
        return Check("vllm", None, f"the server runs on {prepared.backend.name}'s compute nodes; not checked from here")
    result = transport.run(_vllm_probe(prepared, job), timeout=120)
    words = result.stdout.split()
    if result.returncode == 0 and _PROBE_WORD in words:
        return Check("vllm", True, f"{' '.join(words[words.index(_PROBE_WORD) + 1:])} {where(transport)}")
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return Check("vllm", False, f"`{' '.join(prepared.profile.server.command)}` cannot start vLLM {where(transport)}"
                 f" in the job's environment: {last}")


def _model(profile, transport) -> Check:
    from .model_check import check_model

    if not profile.server.model:
        return Check("model", None, "no model given (--model or server.model)")
    try:
        check_model(profile, transport)
    except VlaunchError as exc:
        return Check("model", False, str(exc))
    return Check("model", True, f"{profile.server.model}: there, or left to vLLM to fetch")


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
        checks.append(_vllm(prepared, job, transport))
        checks.append(_model(prepared.profile, transport))
    except VlaunchError as exc:
        return checks + [Check("target", False, str(exc))]
    finally:
        transport.close()
    return checks + [_flags(prepared)]
