"""Before submitting: is the model there, as the job will look for it? Asked through the transport
where the job is submitted (this machine, the SSH host, the login node).

A local path must exist there. A hub id (``org/name``) with ``HF_HUB_OFFLINE=1`` in the job's
environment must be in the Hugging Face cache there, since vLLM will not download it. Anything else
(a hub id vLLM may download, a bare name) is left to vLLM. Sites whose compute nodes see other
filesystems than the login node skip the check (``up --no-check-model``).
"""

from __future__ import annotations

import shlex

from .config.model import Profile
from .errors import ConfigError
from .transport import Transport

__all__ = ["check_model", "where"]

_SKIP = "--no-check-model skips this check where the compute nodes see other filesystems"


def _exists(transport: Transport, path: str) -> bool:
    return transport.run(["test", "-e", path]).returncode == 0


def where(transport: Transport) -> str:
    """``here`` or ``on HOST``: where the transport runs commands, for messages."""
    host = transport.describe().get("host")
    return f"on {host}" if host else "here"


def _hub_cache(profile: Profile, home: str) -> str:
    """The hub cache the job's vLLM reads, from the job's own environment variables (else the default)."""
    env = profile.environment.variables
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HF_HOME"):
        return f"{env['HF_HOME'].rstrip('/')}/hub"
    return f"{home}/.cache/huggingface/hub"


def check_model(profile: Profile, transport: Transport) -> None:
    """Raise :class:`ConfigError` in one line when the job would not find its model."""
    model = profile.server.model or ""
    if model.startswith(("/", "./", "../", "~")):
        path = f"{transport.home()}/{model[2:]}" if model.startswith("~/") else model
        if not _exists(transport, path):
            raise ConfigError(f"model {shlex.quote(model)} does not exist {where(transport)}, where the job"
                              f" is submitted; {_SKIP}")
        return
    if model.count("/") != 1 or profile.environment.variables.get("HF_HUB_OFFLINE") not in ("1", "true", "True"):
        return
    cache = _hub_cache(profile, transport.home())
    folder = f"{cache}/models--{model.replace('/', '--')}/snapshots"
    if not _exists(transport, folder):
        raise ConfigError(f"model {model} is not in the Hugging Face cache {where(transport)} ({cache}), and the"
                          f" job runs with HF_HUB_OFFLINE=1 so vLLM will not download it; fetch it with"
                          f" `huggingface-cli download {model}` there, or {_SKIP}")
