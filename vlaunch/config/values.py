"""Rules for the values a user gives, whatever layer they come from: one line each, and text where text
is expected.

Values reach job scripts (directive and comment lines, where a newline would start a command of its
own), file names and command lines, so control characters are refused everywhere except in
``environment.setup``, whose lines are the user's own shell. TOML reads ``--set x=1`` and
``VLAUNCH_..=true`` as a number or a boolean; a field that holds text gets the text as given there
(:class:`Given`), and in a TOML file the value's TOML spelling.
"""

from __future__ import annotations

import datetime
import re
import types
import typing

from ..errors import ConfigError

__all__ = ["Given", "refuse_control_characters", "check_one_line", "as_text", "as_walltime", "check_memory"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCALARS = (bool, int, float, datetime.date, datetime.time)
_CLOCK = re.compile(r"(\d+-)?\d{1,3}:\d{2}:\d{2}")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_MEMORY = re.compile(r"\d+[KMGT]?B?")


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


class Given(str):
    """A value as typed on the command line or in a ``VLAUNCH_*`` variable: its text, and in ``value``
    what TOML reads it as (``12.10`` is text "12.10" and the float 12.1). A field that holds text gets
    the text, any other field the value; where no field says (a backend's table before its options
    model validates it) it is the text."""

    value: object

    def __new__(cls, text: str, value):
        given = super().__new__(cls, text)
        given.value = value
        return given


def check_one_line(where: str, value: str) -> None:
    """:func:`refuse_control_characters` for a value outside the profile (a profile name, ``--run-root``):
    a :class:`~vlaunch.errors.ConfigError`, which the CLI prints as one line."""
    try:
        refuse_control_characters(where, value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
    """``value`` as the field ``annotation`` takes it: a :class:`Given` as its text where the field holds
    text (``str``, ``str | None``) and as its TOML value elsewhere; TOML scalars (numbers, booleans,
    dates, times) from a file in their TOML spelling where ``str``, ``list[str]`` or ``dict[str, str]``
    expects text."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(value, Given):
        return str(value) if _holds_text(annotation) else value.value
    if _holds_text(annotation):
        return _toml_spelling(value) if isinstance(value, _SCALARS) else value
    if origin is list and args == (str,) and isinstance(value, list):
        return [_toml_spelling(v) if isinstance(v, _SCALARS) else v for v in value]
    if origin is dict and args == (str, str) and isinstance(value, dict):
        return {k: _toml_spelling(v) if isinstance(v, _SCALARS) else v for k, v in value.items()}
    return value


def as_walltime(text: str) -> str:
    """``[D-]HH:MM:SS`` as given, or from a duration such as ``90m``, ``1h30m`` or ``2d``."""
    if _CLOCK.fullmatch(text):
        return text
    match = _DURATION.fullmatch(text)
    seconds = 0
    if text and match:
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        seconds += ((days * 24 + hours) * 60 + minutes) * 60
    if not seconds:
        raise ValueError(f"{text!r}: use [D-]HH:MM:SS (01:30:00) or a duration (90m, 1h30m, 2d)")
    hours, left = divmod(seconds, 3600)
    days, hours = divmod(hours, 24) if hours > 99 else (0, hours)
    return f"{f'{days}-' if days else ''}{hours:02d}:{left // 60:02d}:{left % 60:02d}"


def check_memory(text: str) -> str:
    """A memory size as schedulers read it: digits and an optional K, M, G or T (and B)."""
    if not _MEMORY.fullmatch(text):
        raise ValueError(f"{text!r}: use a number with an optional unit K, M, G or T, e.g. 64G")
    return text
