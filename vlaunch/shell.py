"""The one place where strings become shell text: everything that reaches a shell is quoted here."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

__all__ = ["quote", "join", "export_line", "Var"]

quote = shlex.quote


class Var(str):
    """A word whose value is a shell variable known only where the script runs (``"$NAME"``)."""

    def __new__(cls, name: str):
        if not (name.isidentifier() and name.isascii()):
            raise ValueError(f"not a valid shell variable name: {name!r}")
        return super().__new__(cls, name)


def join(argv: Iterable[str]) -> str:
    """Join ``argv`` into one shell line in which every word stays one argument; only :class:`Var`
    words expand (to the variable's value, double-quoted), every other word is literal."""
    return " ".join(f'"${a}"' if isinstance(a, Var) else shlex.quote(str(a)) for a in argv)


def export_line(name: str, value: str) -> str:
    """An ``export NAME=VALUE`` line; ``name`` must be a valid variable name, ``value`` is quoted."""
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"not a valid environment variable name: {name!r}")
    return f"export {name}={shlex.quote(value)}"
