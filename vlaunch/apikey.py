"""The per-job API key: how it is made, stored on the target and handed to vLLM and its clients.

vLLM gets the key from a private YAML file named by ``--config``, not from ``VLLM_API_KEY``: some vLLM
releases (0.26 among them) hash every ``VLLM_*`` variable, ``VLLM_API_KEY`` included, into the
torch.compile cache key, so a fresh key per job would defeat the compile cache on every start. The
command line carries only the file's path, never the key.
"""

from __future__ import annotations

import json
import secrets

from . import shell

__all__ = ["FILE", "new_key", "file_text", "server_args", "client_export_line"]

#: The key file's name in the job's run directory (mode 0600), a vLLM ``--config`` YAML file.
FILE = "api_key.yaml"
_YAML_KEY = "api-key"


def new_key() -> str:
    """A fresh random key: 48 hexadecimal digits (192 bits). No character needs escaping anywhere, and
    none can start it with ``-``, which vLLM's ``--config`` loading would hand to its parser as an option
    (about 1 in 64 ``token_urlsafe`` keys did, and vLLM refused to start)."""
    return secrets.token_hex(24)


def file_text(key: str, *also: str) -> str:
    """The key file's content: one YAML line that vLLM's ``--config`` turns into ``--api-key KEY``; with
    ``also`` (a replica's group key), a list: vLLM then accepts any of them (``--api-key KEY OTHER``)."""
    return f"{_YAML_KEY}: {json.dumps([key, *also] if also else key)}\n"


def server_args(path: str) -> list[str]:
    """The vLLM arguments that point it at the key file ``path`` (the job's ``job.path(FILE)``)."""
    return ["--config", path]


def client_export_line(run_dir_var: str, name: str = "OPENAI_API_KEY") -> str:
    """A shell line that exports the job's own key (the first) from the run directory's key file as ``name``,
    if the file exists."""
    path = f'"${run_dir_var}"/{FILE}'
    expression = "s/^" + _YAML_KEY + r': \[\{0,1\}"\([^"]*\)".*$/\1/p'
    read = f"sed -n {shell.quote(expression)} {path}"
    return f'if [ -f {path} ]; then {name}="$({read})" && export {name}; fi'
