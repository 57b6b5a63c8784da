"""``#PBS`` directive lines, built and quoted here (pure functions of the profile and options).

PBS Pro / OpenPBS asks for resources in chunks (``-l select=N:ngpus=G:ncpus=C:mem=M``); Torque asks
for ``-l nodes=N:ppn=C:gpus=G`` and a whole-job ``mem``. Everything else is common to both.
"""

from __future__ import annotations

import re

from vlaunch import JobSpec, shell
from vlaunch.config.model import ResourcesSection
from vlaunch.errors import ConfigError

from .options import PbsOptions

__all__ = ["directive_lines", "pbs_walltime", "pbs_memory", "select_chunk", "torque_nodes", "OUTPUT_FILE"]

#: The scheduler's own output file in the run dir: only what the script prints before it redirects
#: everything to ``server.log`` (the real-time log) lands here.
OUTPUT_FILE = "pbs.out"
_PRO_ONLY = ("place", "filesystems", "chunk_resources")


def pbs_walltime(value: str) -> str:
    """``[D-]HH:MM:SS`` as PBS wants it: ``HH:MM:SS`` with days folded into the hours."""
    days, _, rest = value.rpartition("-")
    hours, minutes, seconds = rest.split(":")
    return f"{int(hours) + 24 * int(days or 0):02d}:{minutes}:{seconds}"


def pbs_memory(value: str, times: int = 1) -> str:
    """``64G`` (or ``64GB``) as a PBS size (``64gb``), multiplied by ``times``; a bare number is megabytes."""
    amount, unit = re.fullmatch(r"(\d+)([KMGT]?)B?", value).groups()
    return f"{int(amount) * times}{(unit or 'M').lower()}b"


def select_chunk(resources: ResourcesSection, options: PbsOptions) -> str:
    """The PBS Pro chunk request ``N:ngpus=G:ncpus=C:mem=M`` plus the site's chunk resources."""
    parts = [str(resources.nodes)]
    if resources.gpus_per_node:
        parts.append(f"ngpus={resources.gpus_per_node}")
    if resources.cpus_per_node:
        parts.append(f"ncpus={resources.cpus_per_node}")
    if resources.memory:
        parts.append(f"mem={pbs_memory(resources.memory)}")
    parts += [f"{name}={value}" for name, value in sorted(options.chunk_resources.items())]
    return ":".join(parts)


def torque_nodes(resources: ResourcesSection) -> str:
    """The Torque node request ``N:ppn=C:gpus=G``."""
    parts = [str(resources.nodes)]
    if resources.cpus_per_node:
        parts.append(f"ppn={resources.cpus_per_node}")
    if resources.gpus_per_node:
        parts.append(f"gpus={resources.gpus_per_node}")
    return ":".join(parts)


def _line(flag: str, value: str | None = None) -> str:
    return f"#PBS {flag}" + ("" if value is None else f" {shell.quote(value)}")


def _resource_lines(job: JobSpec, options: PbsOptions) -> list[str]:
    resources = job.profile.resources
    if options.dialect == "torque":
        used = [name for name in _PRO_ONLY if getattr(options, name)]
        if used:
            raise ConfigError(f"backend.pbs.{used[0]} is a PBS Pro resource; it does not apply to dialect \"torque\"")
        lines = [_line("-l", f"nodes={torque_nodes(resources)}")]
        if resources.memory:
            lines.append(_line("-l", f"mem={pbs_memory(resources.memory, resources.nodes)}"))
    else:
        lines = [_line("-l", f"select={select_chunk(resources, options)}")]
    if resources.walltime:
        lines.append(_line("-l", f"walltime={pbs_walltime(resources.walltime)}"))
    # Chunks of a multi-node job must land on different hosts: one node's share of the ranks each.
    place = options.place or ("scatter" if resources.nodes > 1 and options.dialect == "pro" else None)
    if place:
        lines.append(_line("-l", f"place={place}"))
    if options.filesystems:
        lines.append(_line("-l", "filesystems=" + ":".join(options.filesystems)))
    return lines


def directive_lines(job: JobSpec, options: PbsOptions) -> list[str]:
    """Every ``#PBS`` line of ``job``'s script, in a fixed order."""
    lines = [_line("-N", job.name)]
    if options.queue:
        lines.append(_line("-q", options.queue))
    if options.account:
        lines.append(_line("-A", options.account))
    lines += _resource_lines(job, options)
    lines += [_line("-j", "oe"), _line("-o", job.path(OUTPUT_FILE))]
    if options.keep_files:
        lines.append(_line("-k", options.keep_files))
    return lines + [f"#PBS {extra}" for extra in options.extra_directives]
