"""Profile resolution: find the layers, merge them (later wins), remember where each value came from,
and validate once.

Layers, lowest first: the packaged or user profile (with its ``extends`` chain), the user's
``config.toml``, the project's ``vlaunch.toml``, ``VLAUNCH_<SECTION>__<KEY>`` environment variables,
then the command line.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..paths import PROFILE_ALIASES, available_profiles, config_dir
from .auto import plan_layout
from .flags import fold_flag_words, option_words
from .model import Profile
from .values import Given, check_one_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Layer", "Resolved", "available_profiles", "read_toml", "parse_value", "cli_layer",
           "resolve_profile", "validate_options", "PROJECT_FILE", "PROFILE_ALIASES"]

PROJECT_FILE = "vlaunch.toml"
_EXTRA = "extra_args"


@dataclass
class Layer:
    """One source of settings: a label for messages and its (nested) data."""

    source: str
    data: dict


@dataclass
class Resolved:
    """A validated profile plus, for every leaf setting, the layer that set it, and the reasons for what
    the ``auto`` planning chose (comment lines of the rendered script)."""

    name: str
    profile: Profile
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The note saying why ``auto`` fell back to a layout without its memory math (None: it did not).
    fallback: str | None = None

    def source_of(self, path: str) -> str:
        """The layer that set ``path`` (or a value inside it: the last layer that did) or its nearest
        parent; "default" when none did."""
        inside = [source for leaf, source in self.sources.items() if leaf.startswith(f"{path}.")]
        if path not in self.sources and inside:
            return inside[-1]
        while path:
            if path in self.sources:
                return self.sources[path]
            path = path.rpartition(".")[0]
        return "default"


def read_toml(path: Path) -> dict:
    """Parse a TOML file; syntax errors name the file, line and column."""
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def parse_value(text: str):
    """Read a command-line or environment value as TOML (``256``, ``true``, ``["a"]``), else as a string;
    a number, boolean, date or time keeps the text it was given as (:class:`~.values.Given`)."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    return value if isinstance(value, (str, list, dict)) else Given(text.strip(), value)


def _profile_chain(name: str, profiles: dict[str, Path]) -> list[Layer]:
    chain: list[Layer] = []
    seen: list[str] = []
    while name:
        check_one_line("profile name", name)
        if name not in profiles:
            name = PROFILE_ALIASES.get(name, name)
        if name in seen:
            raise ConfigError(f"profile {name!r} extends itself: {' -> '.join(seen + [name])}")
        if name not in profiles:
            where = f"{profiles[seen[-1]]}: extends: " if seen else ""
            raise ConfigError(f"{where}unknown profile {name!r}{_suggest(name, profiles)}; available:"
                              f" {', '.join(profiles) or 'none'}")
        seen.append(name)
        data = read_toml(profiles[name])
        chain.append(Layer(str(profiles[name]), data))
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(f"{profiles[name]}: extends: must be a profile name")
        name = parent
    return chain[::-1]


def _env_layer(environ) -> Layer | None:
    data: dict = {}
    for key, value in sorted(environ.items()):
        if key.startswith("VLAUNCH_") and "__" in key:
            _set_path(data, _env_path(key[len("VLAUNCH_"):].split("__")), parse_value(value))
    return Layer("environment (VLAUNCH_*)", data) if data else None


def _env_path(parts: list[str]) -> list[str]:
    """Setting names are lower case (``SERVER__PORT`` is ``server.port``); environment variable names
    under ``environment.variables`` keep their case."""
    path: list[str] = []
    for part in parts:
        path.append(part if path == ["environment", "variables"] else part.lower())
    return path


def cli_layer(sets: list[str], model: str | None = None, port: str | None = None,
              vllm_words: list[str] | None = None) -> Layer:
    """The command line's layer: ``--set a.b=v``, ``--model``, ``--port`` and free-form vLLM flags."""
    data: dict = {}
    for item in sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. vllm.max_num_seqs=256")
        _set_path(data, key.strip().split("."), parse_value(value))
    if vllm_words:
        data.setdefault("vllm", {}).setdefault(_EXTRA, []).extend(vllm_words)
    if model is not None:
        data.setdefault("server", {})["model"] = model
    if port is not None:
        data.setdefault("server", {})["port"] = parse_value(port)
    return Layer("command line", data)


def _set_path(data: dict, path: list[str], value) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{'.'.join(path)}: {key} is not a table")
    data[path[-1]] = value


def _fold(layer: Layer) -> Layer:
    """Move free-form vLLM flags into typed fields; keep the rest keyed by flag so later layers win."""
    vllm = layer.data.get("vllm")
    if not isinstance(vllm, dict) or _EXTRA not in vllm:
        return layer
    words = vllm[_EXTRA]
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError(f"{layer.source}: vllm.extra_args: must be a list of strings")
    try:
        typed, server, rest = fold_flag_words(words)
    except ConfigError as exc:
        raise ConfigError(f"{layer.source}: vllm.extra_args: {exc}") from None
    data = {**layer.data, "vllm": {**{k: v for k, v in vllm.items() if k != _EXTRA}, **typed, _EXTRA: rest}}
    if server:
        data["server"] = {**layer.data.get("server", {}), **server}
    return Layer(layer.source, data)


def _flag_words(flag: str, values: list[str]) -> list[str]:
    """A flag and its values as argv words; a lone value that looks like a flag stays attached (``--a=-b``)."""
    return option_words(flag, values[0]) if len(values) == 1 else [flag, *values]


def _merge(into: dict, layer: dict, source: str, sources: dict[str, str], prefix: str = "") -> None:
    for key, value in layer.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            if key == _EXTRA:
                for flag in value:
                    into[key].pop(flag, None)
            _merge(into[key], value, source, sources, path + ".")
        else:
            into[key] = value if not isinstance(value, dict) else _copy(value)
            for leaf in _leaves(value, path):
                sources.pop(leaf, None)  # kept in the order of the last write: source_of relies on it
                sources[leaf] = source


def _copy(value: dict) -> dict:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in value.items()}


def _leaves(value, path: str):
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}")
    else:
        yield path


def resolve_profile(name: str, cli: Layer | None = None, *, project_dir: Path | None = None,
                    environ=None) -> Resolved:
    """Resolve profile ``name`` through every layer and validate the result."""
    environ = os.environ if environ is None else environ
    layers = _profile_chain(name, available_profiles())
    user = config_dir() / "config.toml"
    project = (project_dir or Path.cwd()) / PROJECT_FILE
    layers += [Layer(str(p), read_toml(p)) for p in (user, project) if p.is_file()]
    layers += [x for x in (_env_layer(environ), cli) if x and x.data]
    merged: dict = {}
    sources: dict[str, str] = {}
    for layer in layers:
        _merge(merged, _fold(layer).data, layer.source, sources)
    vllm = merged.get("vllm")
    if isinstance(vllm, dict) and isinstance(vllm.get(_EXTRA), dict):
        vllm[_EXTRA] = [w for flag, values in vllm[_EXTRA].items() for w in _flag_words(flag, values)]
    merged.pop("extends", None)
    notes, fallback = plan_layout(merged, sources)
    try:
        profile = Profile.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, Profile, sources, whole=f"profile {name}")) from None
    return Resolved(name, profile, sources, notes, fallback)


def validate_options(resolved: Resolved, backend: str, options_model: type[BaseModel],
                     installed: Iterable[str] = ()) -> BaseModel:
    """Validate ``[backend.NAME]`` of a resolved profile against the backend's options model; a table
    for a backend that is not ``installed`` (a misspelt name, most often) is refused, not ignored."""
    installed = {*installed, backend}
    for name in resolved.profile.backend:
        if name not in installed:
            raise ConfigError(f"{resolved.source_of(f'backend.{name}')}: [backend.{name}]: no backend named"
                              f" {name!r} is installed{_suggest(name, sorted(installed))}")
    table = resolved.profile.backend.get(backend, {})
    try:
        return options_model.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, options_model, resolved.sources, prefix=f"backend.{backend}.",
                                   whole=f"profile {resolved.name}")) from None


def _explain(exc: ValidationError, model: type[BaseModel], sources: dict[str, str], prefix: str = "",
             whole: str = "") -> str:
    """One line for the first error: source file, dotted key path, pydantic's words and a suggestion.
    An error about the whole profile (no key path) is attributed to ``whole``."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"]]
    path = prefix + ".".join(loc)
    owner = prefix + ".".join(str(p) for p in _without_list_index(error["loc"]))  # a list is set whole
    source = Resolved("", None, sources).source_of(owner) if loc else whole  # type: ignore[arg-type]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key{_suggest(loc[-1], _fields_at(model, loc[:-1]))}"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    where = f"{path}: " if loc else ""
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {where}{message}{more}"


def _without_list_index(loc: tuple) -> list:
    loc = list(loc)
    while loc and isinstance(loc[-1], int):
        loc.pop()
    return loc


def _fields_at(model, loc: list[str]) -> list[str]:
    for key in loc:
        info = getattr(model, "model_fields", {}).get(key)
        if info is None or not isinstance(info.annotation, type) or not issubclass(info.annotation, BaseModel):
            return []
        model = info.annotation
    return list(getattr(model, "model_fields", {}))


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
