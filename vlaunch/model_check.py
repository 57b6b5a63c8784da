"""Before submitting: is the model there, as the job will look for it? Asked through the transport
where the job is submitted (this machine, the SSH host, the login node).

A local path must be a model vLLM loads, there: a directory holding ``config.json`` (or Mistral's
``params.json``), or a ``.gguf`` file. A hub id (``org/name``) with ``HF_HUB_OFFLINE=1`` in the job's
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


#: Prints what ``$1`` is, then what its folder is: ``model`` (a directory vLLM loads), ``folder``, ``file`` or
#: ``absent``.
_KINDS = ('kind() { if [ -f "$1/config.json" ] || [ -f "$1/params.json" ]; then echo model;'
          ' elif [ -d "$1" ]; then echo folder; elif [ -e "$1" ]; then echo file; else echo absent; fi; };'
          ' kind "$1"; kind "$(dirname "$1")"')


def _exists(transport: Transport, path: str) -> bool:
    return transport.run(["test", "-e", path]).returncode == 0


def where(transport: Transport) -> str:
    """``here`` or ``on HOST``: where the transport runs commands, for messages."""
    host = transport.describe().get("host")
    return f"on {host}" if host else "here"


def _check_path(model: str, path: str, transport: Transport) -> str:
    """What the local path ``model`` (``path`` on the target) is, or :class:`ConfigError` when vLLM cannot load it."""
    kind, folder_kind = (transport.run(["sh", "-c", _KINDS, "sh", path]).stdout.split() + ["absent"] * 2)[:2]
    name, here = shlex.quote(model), where(transport)
    if kind == "absent":
        raise ConfigError(f"model {name} does not exist {here}, where the job is submitted; {_SKIP}")
    if kind == "model":
        return f"a model directory {here}"
    if kind == "file" and path.endswith(".gguf"):
        return f"a .gguf file {here}"
    if kind == "file" and folder_kind == "model":
        raise ConfigError(f"model {name} is a file, not a model directory: pass its folder"
                          f" {shlex.quote(model.rsplit('/', 1)[0] or '/')}")
    if kind == "file":
        raise ConfigError(f"model {name} is a file, neither a model directory (a folder holding config.json) nor a"
                          " .gguf file")
    raise ConfigError(f"model {name} is not a model directory {here} (it holds no config.json, nor Mistral's"
                      f" params.json): pass the folder that holds the model's config.json; {_SKIP}")


def _hub_cache(profile: Profile, home: str) -> str:
    """The hub cache the job's vLLM reads, from the job's own environment variables (else the default)."""
    env = profile.environment.variables
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HF_HOME"):
        return f"{env['HF_HOME'].rstrip('/')}/hub"
    return f"{home}/.cache/huggingface/hub"


def check_model(profile: Profile, transport: Transport) -> str:
    """What the job's model was seen to be, for messages; :class:`ConfigError` in one line when the job would
    not find it."""
    model = profile.server.model or ""
    if model.startswith(("/", "./", "../", "~")):
        return _check_path(model, f"{transport.home()}/{model[2:]}" if model.startswith("~/") else model, transport)
    if profile.environment.variables.get("HF_HUB_OFFLINE") not in ("1", "true", "True"):
        return "a hub id left to vLLM to fetch"
    if model.count("/") != 1:
        return "a name left to vLLM (the job runs with HF_HUB_OFFLINE=1)"
    cache = _hub_cache(profile, transport.home())
    folder = f"{cache}/models--{model.replace('/', '--')}/snapshots"
    if not _exists(transport, folder):
        raise ConfigError(f"model {model} is not in the Hugging Face cache {where(transport)} ({cache}), and the"
                          f" job runs with HF_HUB_OFFLINE=1 so vLLM will not download it; fetch it with"
                          f" `huggingface-cli download {model}` there, or {_SKIP}")
    return f"in the Hugging Face cache {where(transport)} ({cache})"
