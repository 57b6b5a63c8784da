"""Write a tuned profile into the user's profile folder (``<config dir>/profiles/NAME.toml``), validated."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..config.layers import available_profiles, resolve_profile
from ..errors import ConfigError
from ..paths import config_dir

__all__ = ["write_profile", "to_toml", "derive"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} into a profile")


def to_toml(data: dict, comments: list[str] = (), prefix: str = "") -> str:
    """TOML text for nested ``data`` (plain keys before tables), with ``comments`` as leading ``#`` lines."""
    lines = [f"# {c}".rstrip() for c in comments]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in ((k, v) for k, v in data.items() if isinstance(v, dict)):
        name = f"{prefix}{_key(key)}"
        if any(not isinstance(v, dict) for v in table.values()):
            lines += ["", f"[{name}]"]
        inner = to_toml(table, prefix=name + ".")
        if inner.strip():
            lines.append(inner.rstrip("\n"))
    text = "\n".join(lines)
    return text if prefix else text.strip("\n") + "\n"


def write_profile(name: str, data: dict, comments: list[str], force: bool = False) -> Path:
    """Write profile ``name``; refuse to replace an existing one unless ``force``; check it resolves."""
    if not _NAME.match(name):
        raise ConfigError(f"profile name {name!r}: use letters, digits, '.', '_' and '-'")
    existing = available_profiles().get(name)
    if existing and not force:
        raise ConfigError(f"a profile named {name!r} exists ({existing}); choose another name or pass --force")
    path = config_dir() / "profiles" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.read_text() if path.is_file() else None
    path.write_text(to_toml(data, comments))
    try:
        resolve_profile(name)
    except ConfigError as exc:
        if previous is None:
            path.unlink()
        else:
            path.write_text(previous)
        raise ConfigError(f"the profile vlaunch would write does not validate: {exc}") from None
    return path


def _diff(base: dict, config: dict) -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            inner = _diff(base.get(key) or {}, value)
            if inner:
                out[key] = inner
        elif value is not None and base.get(key) != value:
            out[key] = value
    return out


def derive(base: str, config: dict, change: dict) -> dict:
    """Profile data that ``extends`` profile ``base`` with what ``config`` (a job's resolved profile) set
    differently, then the dotted-key ``change`` on top; without ``extends`` if ``base`` no longer resolves."""
    try:
        base_data = resolve_profile(base).profile.model_dump(mode="json")
    except ConfigError:
        base_data = {}
    data = _diff(base_data, {k: v for k, v in config.items() if k not in ("description", "extends")})
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        table = data
        for key in parents:
            table = table.setdefault(key, {})
        table[leaf] = value
    return {"extends": base, **data} if base_data else data
