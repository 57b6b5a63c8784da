"""vLLM flags: from a profile to argv, and from free-form flag strings back into profile fields.

This is the only place that knows how a profile becomes vLLM's command line, so every backend
produces the same flags for the same profile.
"""

from __future__ import annotations

from ..errors import ConfigError
from .model import Profile, VllmSection

__all__ = ["parse_flag_words", "fold_flag_words", "vllm_flags", "server_argv", "api_server_count", "one_api_server",
           "option_words", "PORT_VAR"]

#: The shell variable that holds the port on the node (resolved there when the port is "auto").
PORT_VAR = "VLAUNCH_PORT"

_TYPED = [name for name in VllmSection.model_fields if name != "extra_args"]
#: Typed fields :func:`vllm_flags` writes; the API server count is the server's, not every engine's.
_ENGINE = [name for name in _TYPED if name != "api_server_count"]
_SERVER_FLAGS = {"--model": "model", "--served-model-name": "served_model_name", "--host": "host", "--port": "port"}
_FORBIDDEN = {
    "--api-key": "the API key is handed to vLLM in a private file, never on the command line (set server.api_key)",
    "--config": "vlaunch hands vLLM its API key through --config; put these settings in the profile instead",
}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def option_words(flag: str, value: str) -> list[str]:
    """``flag value`` as argv words; a value that vLLM's parser would read as an option stays attached
    (``--served-model-name=-x``): argparse takes whatever follows ``=`` as the value."""
    return [f"{flag}={value}"] if value.startswith("-") else [flag, value]


def _forbidden(flag: str) -> str | None:
    """Why ``flag`` may not be given, in any spelling vLLM's parser accepts: ``_`` for ``-`` and any
    prefix it would expand (argparse abbreviates ``--api-k`` to ``--api-key``)."""
    spelled = flag.replace("_", "-")
    for name, why in _FORBIDDEN.items():
        if name.startswith(spelled) and len(spelled) > 2:
            return f"{name}: {why}" + ("" if flag == name else f" ({flag} is read as {name})")
    return None


_BY_FLAG = {_flag(name): name for name in _TYPED}


def parse_flag_words(words: list[str]) -> list[tuple[str, list[str]]]:
    """Split argv-style words into ``(flag, values)`` pairs in order; ``--a=b`` counts as ``--a b``."""
    pairs: list[tuple[str, list[str]]] = []
    for word in words:
        if word.startswith("--") and len(word) > 2:
            flag, eq, value = word.partition("=")
            pairs.append((flag, [value] if eq else []))
        elif word.startswith("-") and len(word) > 1 and not _is_number(word):
            raise ConfigError(f"vLLM flag {word!r}: use the long --form")
        elif pairs:
            pairs[-1][1].append(word)
        else:
            raise ConfigError(f"vLLM arguments must start with a --flag, not {word!r}")
    return pairs


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def fold_flag_words(words: list[str]) -> tuple[dict, dict, dict[str, list[str]]]:
    """Sort free-form flags into typed ``vllm`` fields, ``server`` fields and the rest (by flag, ordered)."""
    vllm: dict = {}
    server: dict = {}
    rest: dict[str, list[str]] = {}
    for flag, values in parse_flag_words(words):
        why = _forbidden(flag)
        if why:
            raise ConfigError(why)
        negated = flag.startswith("--no-") and "--" + flag[5:] in _BY_FLAG
        if flag in _SERVER_FLAGS:
            server[_SERVER_FLAGS[flag]] = _one_value(flag, values)
        elif negated:
            vllm[_BY_FLAG["--" + flag[5:]]] = _bool_value(flag, values, negate=True)
        elif flag in _BY_FLAG:
            field = _BY_FLAG[flag]
            if VllmSection.model_fields[field].annotation in (bool, bool | None):
                vllm[field] = _bool_value(flag, values)
            else:
                vllm[field] = _one_value(flag, values)
        else:
            rest.pop(flag, None)  # a repeated flag moves to its latest position
            rest[flag] = values
    return vllm, server, rest


def _one_value(flag: str, values: list[str]) -> str:
    if len(values) != 1:
        raise ConfigError(f"vLLM flag {flag} takes exactly one value, got {len(values)}")
    return values[0]


def _bool_value(flag: str, values: list[str], negate: bool = False) -> bool:
    if not values:
        return not negate
    if len(values) == 1 and values[0].lower() in ("true", "false"):
        return (values[0].lower() == "true") != negate
    raise ConfigError(f"vLLM flag {flag} is a switch; it takes no value")


def vllm_flags(vllm: VllmSection) -> list[str]:
    """The engine flags of a profile, in a fixed order: typed fields first, then ``extra_args``."""
    argv: list[str] = []
    for name in _ENGINE:
        value = getattr(vllm, name)
        default = VllmSection.model_fields[name].default
        if value is None or value == default:
            continue
        if isinstance(value, bool):
            argv.append(_flag(name) if value else "--no-" + name.replace("_", "-"))
        else:
            argv += option_words(_flag(name), str(value))
    return argv + vllm.extra_args


def api_server_count(profile: Profile) -> int:
    """API server processes in front of the engines: the profile's count, else ``api_servers_per_engine``
    per data-parallel engine (1 is what ``vllm serve`` itself chooses on one node)."""
    return profile.vllm.api_server_count or profile.server.api_servers_per_engine * profile.vllm.data_parallel_size


def server_argv(profile: Profile, port_word: str, api_servers: bool = True) -> list[str]:
    """The whole vLLM command: program, model, served name, host, port (``port_word``), the API server
    count (always given, so every command form starts the same server; ``api_servers=False`` for a
    headless engine group, which has none) and engine flags."""
    server = profile.server
    if not server.model:
        raise ConfigError("no model: set server.model in the profile or pass --model")
    argv = list(server.command)
    if argv[-1] != "serve":
        argv += option_words("--model", server.model)
    elif server.model.startswith("-"):
        # vLLM's parser moves even --model=VALUE back to serve's positional, where it reads as an option.
        raise ConfigError(f"model {server.model!r}: `vllm serve` would read it as an option; name the"
                          f" directory with a path ({'./' + server.model!r}) instead")
    else:
        argv.append(server.model)
    if server.served_model_name:
        argv += option_words("--served-model-name", server.served_model_name)
    argv += [*option_words("--host", server.host), "--port", port_word]
    if api_servers:
        argv += ["--api-server-count", str(_checked_count(profile))]
    return argv + vllm_flags(profile.vllm)


#: Command forms that start one API server whatever ``--api-server-count`` says.
_ONE_API_SERVER = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")


def one_api_server(profile: Profile) -> bool:
    """True when the profile's server command starts one API server whatever it is told."""
    return any(word in _ONE_API_SERVER for word in profile.server.command)


def _checked_count(profile: Profile) -> int:
    count, command = api_server_count(profile), profile.server.command
    if count > 1 and one_api_server(profile):
        why = ("vllm.api_server_count" if profile.vllm.api_server_count
               else f"{profile.server.api_servers_per_engine} per data-parallel engine")
        raise ConfigError(f"{count} API servers ({why}) need vLLM's `serve` command, but server.command is"
                          f" {' '.join(command)!r}, which starts one whatever --api-server-count says; set"
                          ' server.command = ["vllm", "serve"] (or ["python3", "-m", "vllm.entrypoints.cli.main",'
                          ' "serve"]), or vllm.api_server_count = 1')
    return count
