"""The ``[backend.slurm]`` table of a profile."""

from __future__ import annotations

from pydantic import Field, field_validator

from vlaunch import BackendOptions

__all__ = ["SlurmOptions", "DIRECTIVE_NAMES"]

#: The directives vlaunch writes itself, in the order they appear (names for ``skip_directives``).
DIRECTIVE_NAMES = ("job-name", "chdir", "output", "error", "nodes", "ntasks-per-node", "cpus-per-task",
                   "gpus-per-node", "mem", "time", "partition", "account", "qos", "constraint")


class SlurmOptions(BackendOptions):
    """Options of the ``[backend.slurm]`` table; each becomes one ``#SBATCH`` line when set."""

    partition: str | None = Field(None, description="Partition (queue) to submit to (--partition).")
    account: str | None = Field(None, description="Account charged for the job (--account).")
    qos: str | None = Field(None, description="Quality of service (--qos).")
    constraint: str | None = Field(None, description="Node features the job needs, e.g. \"a100&ib\" (--constraint).")
    gpu_type: str | None = Field(None, description="GPU type, e.g. \"a100\": asks --gpus-per-node=TYPE:COUNT.")
    output: str | None = Field(None, description="Slurm's own output file (--output); default slurm-%j.out in"
                                                 " the job's run directory. vLLM's output goes to server.log.")
    error: str | None = Field(None, description="Slurm's error file (--error); default: the output file.")
    extra_directives: list[str] = Field(default_factory=list, description=(
        "More sbatch options, one per entry, e.g. \"--reservation=maint\" or \"--exclusive\"; an entry for an"
        " option vlaunch writes itself replaces vlaunch's line."))
    skip_directives: list[str] = Field(default_factory=list, description=(
        "Directives vlaunch must not write, by name (e.g. \"mem\" where the site forbids --mem)."))

    @field_validator("extra_directives")
    @classmethod
    def _extra(cls, value):
        for entry in value:
            if not entry.startswith("-"):
                raise ValueError(f"{entry!r}: each entry is one sbatch option, e.g. \"--reservation=maint\"")
        return value

    @field_validator("skip_directives")
    @classmethod
    def _skip(cls, value):
        names = [v.lstrip("-") for v in value]
        unknown = [n for n in names if n not in DIRECTIVE_NAMES]
        if unknown:
            raise ValueError(f"unknown directive {unknown[0]!r}; vlaunch writes: {', '.join(DIRECTIVE_NAMES)}")
        return names
