"""Every backend's options (the core's BackendOptions) refuse strings that are not one line."""

from __future__ import annotations

import pydantic
import pytest
from pydantic import Field

from vlaunch import BackendOptions


class SiteOptions(BackendOptions):
    queue: str | None = None
    extra: list[str] = Field(default_factory=list)
    resources: dict[str, str] = Field(default_factory=dict)


@pytest.mark.parametrize("values, where", [
    ({"queue": "gpu\n#SBATCH --x"}, "queue"),
    ({"extra": ["-x", "-y\recho"]}, "extra"),
    ({"resources": {"system": "polaris\x1b"}}, "resources.system"),
])
def test_control_characters_are_refused_wherever_a_string_is(values, where):
    with pytest.raises(pydantic.ValidationError, match=f"{where} must be one line without control characters"):
        SiteOptions(**values)


def test_one_line_strings_pass():
    options = SiteOptions(queue="gpu", extra=["-x", "-R 'span[ptile=4]'"], resources={"system": "polaris"})
    assert options.extra == ["-x", "-R 'span[ptile=4]'"]
