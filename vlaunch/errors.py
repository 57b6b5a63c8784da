"""The error hierarchy. The CLI turns every :class:`VlaunchError` into one line and a non-zero exit."""

from __future__ import annotations

__all__ = [
    "VlaunchError",
    "ConfigError",
    "BackendNotFound",
    "PluginError",
    "TransportError",
    "ConnectionLost",
    "CommandNotFound",
    "SubmitError",
    "CancelError",
    "SchedulerError",
    "JobNotFound",
    "RegistryError",
    "NotReady",
    "ServerDied",
    "Interrupted",
]


class VlaunchError(Exception):
    """Base class: a failure that is explained to the user in one line."""

    exit_code = 1


class ConfigError(VlaunchError):
    """A profile or setting is malformed, unknown or impossible."""

    exit_code = 2


class BackendNotFound(ConfigError):
    """No backend of that name is installed."""


class PluginError(VlaunchError):
    """Plugins conflict (two register one backend name) or a hook misbehaves."""


class TransportError(VlaunchError):
    """A command could not be run on the target (connection refused, host key unknown...)."""


class ConnectionLost(TransportError):
    """The connection to the target broke; nothing more can be run over it."""


class CommandNotFound(TransportError):
    """A command the backend needs (``sbatch``, ``qsub``...) is not installed on the target."""


class SubmitError(VlaunchError):
    """The backend refused or failed to start the job; the message carries its own words."""


class CancelError(VlaunchError):
    """The job could not be stopped, or the backend could not confirm that it stopped."""


class SchedulerError(VlaunchError):
    """The scheduler answered with something vlaunch cannot read."""


class JobNotFound(VlaunchError):
    """No job of that name is in the registry."""


class RegistryError(VlaunchError):
    """The job registry could not be read or written."""


class NotReady(VlaunchError):
    """The server did not become ready within a stage's timeout."""


class ServerDied(VlaunchError):
    """The server process ended before it became ready."""


class Interrupted(VlaunchError):
    """The user interrupted a command (Ctrl-C); the message says what became of the job."""

    exit_code = 130
