"""``vlaunch new-backend NAME``: write a backend plugin package that passes the conformance suite as generated."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

__all__ = ["write_backend"]

_NAME = re.compile(r"^[a-z][a-z0-9]{0,30}$")
#: skeleton file -> path in the new package (``NAME`` replaced).
_FILES = {
    "pyproject.toml.in": "pyproject.toml",
    "README.md.in": "README.md",
    "package/__init__.py.in": "vlaunch_NAME/__init__.py",
    "package/backend.py.in": "vlaunch_NAME/backend.py",
    "package/templates/TEMPLATE.sh.tmpl.in": "vlaunch_NAME/templates/NAME.sh.tmpl",
    "tests/test_NAME.py.in": "tests/test_NAME.py",
}


def write_backend(name: str, parent: Path) -> Path:
    """Write ``vlaunch-NAME/`` under ``parent`` and return its path; never overwrites."""
    if not _NAME.match(name):
        raise ConfigError(f"backend name {name!r}: use lowercase letters and digits, starting with a letter")
    dest = Path(parent) / f"vlaunch-{name}"
    if dest.exists():
        raise ConfigError(f"{dest} already exists")
    skeleton = resources.files(__package__) / "skeleton"
    words = {"__NAME__": name, "__CLASS__": name.capitalize(), "__UPPER__": name.upper()}
    for source, target in _FILES.items():
        text = skeleton.joinpath(source).read_text()
        for placeholder, value in words.items():
            text = text.replace(placeholder, value)
        path = dest / target.replace("NAME", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return dest
