"""docs/hooks.md documents every hook with its exact signature."""

from __future__ import annotations

import inspect
import re

from helpers import REPO

from vlaunch import hookspecs


def test_every_hookspec_is_documented_with_its_signature():
    text = (REPO / "docs" / "hooks.md").read_text()
    documented = dict(re.findall(r"^### `(vlaunch_\w+)(\(.*\) -> .*)`$", text, re.M))
    specs = {name: str(inspect.signature(fn)).replace("'", "")
             for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vlaunch_")}
    assert documented == specs


def test_every_hookspec_has_a_versionadded_line():
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("vlaunch_"):
            assert ".. versionadded::" in (fn.__doc__ or ""), name


def test_every_profile_key_is_documented():
    from pydantic import BaseModel

    from vlaunch.config.model import Profile

    text = (REPO / "docs" / "configuration.md").read_text()
    for name, field in Profile.model_fields.items():
        assert f"`{name}`" in text or f"`[{name}]`" in text, name
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            for key in field.annotation.model_fields:
                assert f"| `{key}` |" in text, f"{name}.{key}"
