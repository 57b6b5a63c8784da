"""Rules for the values a user gives, whatever layer they come from: one line each, and text where text
is expected.

Values reach job scripts (directive and comment lines, where a newline would start a command of its
own), file names and command lines, so control characters are refused everywhere except in
``environment.setup``, whose lines are the user's own shell. TOML reads ``--set x=1`` and
``VLAUNCH_..=true`` as a number or a boolean; a field that holds text gets the value's TOML spelling.
"""

from __future__ import annotations

import datetime
import re
import types
import typing

__all__ = ["refuse_control_characters", "as_text"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCALARS = (bool, int, float, datetime.date, datetime.time)


def refuse_control_characters(where: str, value) -> None:
    """Raise ValueError when a string in ``value`` (also in lists and tables) holds a control character."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise ValueError(f"{where} must be one line without control characters: {value!r}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            refuse_control_characters(where, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_control_characters(f"{where} (name {key!r})", key)
            refuse_control_characters(f"{where}.{key}", item)


def _toml_spelling(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)


def _holds_text(annotation) -> bool:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return annotation is str or (union and str in typing.get_args(annotation))


def as_text(value, annotation):
    """``value`` with TOML scalars (numbers, booleans, dates, times) turned into their TOML spelling
    where ``annotation`` expects text: ``str``, ``str | None``, ``list[str]`` or ``dict[str, str]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _holds_text(annotation):
        return _toml_spelling(value) if isinstance(value, _SCALARS) else value
    if origin is list and args == (str,) and isinstance(value, list):
        return [_toml_spelling(v) if isinstance(v, _SCALARS) else v for v in value]
    if origin is dict and args == (str, str) and isinstance(value, dict):
        return {k: _toml_spelling(v) if isinstance(v, _SCALARS) else v for k, v in value.items()}
    return value
