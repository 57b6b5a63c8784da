"""The ``[backend.pbs]`` table of a profile."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from vlaunch import BackendOptions

__all__ = ["PbsOptions"]

class PbsOptions(BackendOptions):
    """Options of the ``[backend.pbs]`` table."""

    dialect: Literal["pro", "torque"] = Field(
        "pro", description="\"pro\": PBS Pro / OpenPBS (select chunks, qstat -F dsv, job history if kept); "
                           "\"torque\": Torque and Torque-style wrappers (nodes=N:ppn=C:gpus=G, text qstat -f).")
    queue: str | None = Field(None, description="Queue (-q), e.g. \"debug\" or \"prod\".")
    account: str | None = Field(None, description="Project or allocation charged for the job (-A).")
    place: str | None = Field(None, description="Chunk placement (-l place=...), e.g. \"scatter:excl\"; PBS Pro only. "
                                                 "Multi-node jobs get \"scatter\" unless set.")
    filesystems: list[str] = Field(default_factory=list, description="Filesystems the job needs (-l filesystems=a:b), "
                                                                      "e.g. [\"home\", \"eagle\"] on Polaris; PBS Pro only.")
    chunk_resources: dict[str, str] = Field(default_factory=dict, description="More resources in each select chunk, "
                                                                                "e.g. {system = \"polaris\"}; PBS Pro only.")
    keep_files: str | None = Field(None, description="-k value; \"doe\" writes the job's own output file directly to "
                                                     "its -o path while it runs (PBS Pro 19+).")
    extra_directives: list[str] = Field(default_factory=list, description="More directives, one per entry without "
                                                                          "\"#PBS\", e.g. \"-l debug=true\" or \"-V\".")
    launcher: Literal["mpiexec", "pbsdsh"] = Field(
        "mpiexec", description="Multi-node only: what starts the headless vLLM on each follower node.")
    launcher_args: list[str] = Field(default_factory=list, description="Multi-node only: extra words after the "
                                                                       "launcher, e.g. [\"--cpu-bind\", \"none\"].")

    @field_validator("chunk_resources")
    @classmethod
    def _chunk_names(cls, value):
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"chunk resource name {name!r} is not a PBS resource name")
        return value
