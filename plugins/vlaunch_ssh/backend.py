"""The ``ssh`` backend: vLLM started directly on a machine reached over SSH (no scheduler).

It is the local backend on another machine: the core uploads the job script to the remote run
directory, :class:`~vlaunch.ProcessBackend` starts it detached through the SSH transport, polls and
stops its process group with ``ps``/``kill`` there. This module never imports paramiko.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from vlaunch import BackendOptions, ProcessBackend, shell
from vlaunch.errors import ConfigError, SubmitError

__all__ = ["SSHTarget", "SSHSpec", "SSHOptions", "SSHBackend", "preflight_script"]


class SSHTarget(BackendOptions):
    """Where to connect: the fields of an SSH transport spec (``{"kind": "ssh", ...}``).

    Anything left unset comes from ``~/.ssh/config`` for ``host`` (an alias or a name), as with ``ssh HOST``.
    """

    host: str | None = Field(None, description="Host name or ~/.ssh/config alias, optionally user@host.")
    user: str | None = Field(None, description="Login name (default: ~/.ssh/config, then the local user).")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port (default: ~/.ssh/config, then 22).")
    identity_file: str | None = Field(None, description="Private key file (default: ~/.ssh/config, the agent, "
                                                        "~/.ssh/id_*).")
    known_hosts: str | None = Field(None, description="known_hosts file (default: ~/.ssh/config's UserKnownHostsFile, "
                                                      "then ~/.ssh/known_hosts).")
    accept_new_host_key: bool = Field(False, description="Trust a host whose key is unknown and record its key in "
                                                         "known_hosts; a changed key is always refused.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds for the TCP connection and the SSH handshake "
                                                           "(default: ~/.ssh/config's ConnectTimeout, then 10).")

    @field_validator("host", "user")
    @classmethod
    def _not_an_option(cls, value):
        # These reach the OpenSSH command lines vlaunch prints (`vlaunch tunnel`), where "-o..." is an option.
        if value is not None and value.startswith("-"):
            raise ValueError(f"must not start with '-': {value!r}")
        return value


class SSHSpec(SSHTarget):
    """A job record's ssh transport spec (``{"kind": "ssh", "host": ...}`` less its kind): a target with a host."""

    host: str = Field(min_length=1, description="Host name or ~/.ssh/config alias, optionally user@host.")


class SSHOptions(SSHTarget):
    """Options of the ``[backend.ssh]`` table."""

    kill_grace: float = Field(15.0, gt=0, description="Seconds between SIGTERM and SIGKILL on `vlaunch down`.")


_FIND_SPEC = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
_TAG = "vlaunch-preflight:"


def preflight_script(setup: list[str], command: list[str]) -> str:
    """A bash script that reports in one tagged line, after the profile's setup lines, whether the server
    command's program exists (and, for ``PYTHON -m MODULE``, finds the module)."""
    lines = list(setup)
    missing = f"{{ echo '{_TAG} missing-program'; exit 0; }}"
    lines.append(f"program=$(command -v -- {shell.quote(command[0])}) || {missing}")
    if len(command) > 2 and command[1] == "-m":
        module = command[2].split(".")[0]
        lines.append(f'"$program" -c {shell.quote(_FIND_SPEC)} {shell.quote(module)}'
                     f" || {{ echo \"{_TAG} missing-module $program\"; exit 0; }}")
    lines.append(f"echo '{_TAG} ok'")
    return "\n".join(lines) + "\n"


#: How to get paramiko, which the SSH transport needs (a plain ``pip install vlaunch`` leaves it out).
PARAMIKO_HINT = "pip install paramiko"


class SSHBackend(ProcessBackend):
    """Runs the job script detached on the SSH host; ``down`` stops its whole process group there."""

    name = "ssh"
    description = "vLLM on a machine reached over SSH (a GPU workstation, a cloud VM), detached"
    options_model = SSHOptions
    needs_modules = {"paramiko": PARAMIKO_HINT}

    def transport_spec(self, options: SSHOptions) -> dict:
        """The SSH transport spec for these options (the core connects with it)."""
        if not options.host:
            raise ConfigError("backend ssh needs a host: --set backend.ssh.host=HOST (a name or ~/.ssh/config alias)")
        return {"kind": "ssh", **options.model_dump(include=set(SSHTarget.model_fields), exclude_defaults=True)}

    def submit(self, job, script_path, transport):
        """Check that the server command exists on the host, then start the script detached."""
        self._preflight(job, transport)
        return super().submit(job, script_path, transport)

    def _preflight(self, job, transport) -> None:
        command = job.profile.server.command
        script = preflight_script(job.profile.environment.setup, command)
        result = self._run(transport, ["bash", "-c", script])
        tagged = [line for line in result.stdout.splitlines() if line.startswith(_TAG)]
        verdict = tagged[-1][len(_TAG):].strip() if tagged else f"failed: {result.message()}"
        where = transport.describe().get("host", "the host")
        hint = "install vLLM there or make environment.setup activate the environment that has it"
        if verdict == "missing-program":
            raise SubmitError(f"{command[0]!r} is not on the PATH of {where} (after environment.setup); {hint}")
        if verdict.startswith("missing-module"):
            python = verdict.split(" ", 1)[1]
            module = command[2].split(".")[0]
            raise SubmitError(f"the remote Python {python} on {where} has no module {module!r}; {hint}")
        if verdict != "ok":
            raise SubmitError(f"cannot check the server command on {where}: {verdict}")
