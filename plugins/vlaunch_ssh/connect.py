"""Opening an SSH connection the way ``ssh HOST`` would, but with paramiko and strict host keys.

A host comes from ``~/.ssh/config`` (aliases, HostName, User, Port, IdentityFile, UserKnownHostsFile,
ProxyJump, ProxyCommand, ConnectTimeout), overridden by explicit settings. Keys come from the
identity files and the SSH agent. A host key must be in known_hosts: an unknown one is refused
(unless ``accept_new_host_key``, which records it) and a changed one is always refused.
Every failure becomes one :class:`~vlaunch.errors.TransportError` line that says what to do.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

import paramiko

from vlaunch import shell
from vlaunch.errors import TransportError

from .backend import SSHTarget
from .hostkeys import known_hosts_name, load_known_hosts, policy_for

__all__ = ["Destination", "resolve", "open_clients", "ssh_config"]

_CONFIG = "~/.ssh/config"
_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class Destination:
    """One SSH hop, fully resolved: where to connect, as whom, with which keys and known_hosts."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: tuple[str, ...]
    accept_new: bool
    timeout: float
    proxy_jump: str | None
    proxy_command: str | None
    #: ``ssh`` options that reproduce the settings ~/.ssh/config does not hold (for printed commands).
    ssh_options: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How messages name this host: the alias and, if it differs, the address."""
        address = f"{self.user}@{self.hostname}:{self.port}"
        return address if self.alias == self.hostname else f"{self.alias} ({address})"

    def ssh_command(self, *options: str, remote: tuple[str, ...] = ()) -> str:
        """An OpenSSH command line that reaches this host as vlaunch does, with more ``options`` and
        a ``remote`` command."""
        return shell.join(["ssh", *self.ssh_options, *options, self.alias, *remote])


def ssh_config() -> paramiko.SSHConfig:
    """The user's ``~/.ssh/config`` (empty if there is none)."""
    path = os.path.expanduser(_CONFIG)
    if not os.path.isfile(path):
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(path)
    except Exception as exc:  # paramiko raises several types for unsupported or malformed lines
        raise TransportError(f"cannot read {path}: {exc}") from None


def _split_user(host: str) -> tuple[str | None, str]:
    user, sep, name = host.rpartition("@")
    return (user, name) if sep else (None, host)


def resolve(target: SSHTarget, config: paramiko.SSHConfig | None = None) -> Destination:
    """Apply ``~/.ssh/config`` to ``target``; explicit fields win over the config."""
    if not target.host:
        raise TransportError("an ssh transport needs a host")
    config = config if config is not None else ssh_config()
    at_user, alias = _split_user(target.host)
    found = config.lookup(alias)
    user = target.user or at_user or found.get("user") or getpass.getuser()
    identities = _identity_files(target, found)
    known = [target.known_hosts] if target.known_hosts else found.get("userknownhostsfile", _KNOWN_HOSTS).split()
    timeout = found.get("connecttimeout", target.connect_timeout)
    options = (["-p", str(target.port)] if target.port else []) + (["-l", user] if target.user or at_user else [])
    options += ["-i", identities[0]] if target.identity_file else []
    options += ["-o", f"UserKnownHostsFile={os.path.expanduser(known[0])}"] if target.known_hosts else []
    return Destination(
        alias=alias, hostname=found.get("hostname", alias), port=target.port or int(found.get("port", 22)),
        user=user, identity_files=identities, known_hosts=tuple(map(os.path.expanduser, known)),
        accept_new=target.accept_new_host_key,
        timeout=target.connect_timeout if "connect_timeout" in target.model_fields_set else float(timeout),
        proxy_jump=_none_is_unset(found.get("proxyjump")), proxy_command=_none_is_unset(found.get("proxycommand")),
        ssh_options=tuple(options))


def _identity_files(target: SSHTarget, found: dict) -> tuple[str, ...]:
    """The explicit key (which must exist), else the config's IdentityFile entries that exist."""
    if target.identity_file:
        path = os.path.expanduser(target.identity_file)
        if not os.path.isfile(path):
            raise TransportError(f"identity file {path} does not exist")
        return (path,)
    return tuple(p for p in map(os.path.expanduser, found.get("identityfile", [])) if os.path.isfile(p))


def _none_is_unset(value: str | None) -> str | None:
    return None if value is None or value.lower() == "none" else value


def _hop_target(hop: str, target: SSHTarget) -> SSHTarget:
    """A ProxyJump entry (``[user@]host[:port]``) as a target that shares ``target``'s explicit trust settings."""
    host, port = hop.strip(), None
    if host.count(":") == 1 or host.startswith("["):
        host, _, port_text = host.rpartition(":")
        host, port = host.strip("[]"), int(port_text)
    shared = {k: getattr(target, k) for k in ("known_hosts", "accept_new_host_key", "connect_timeout")
              if k in target.model_fields_set}
    return SSHTarget(host=host, port=port, **shared)


def _hops(dest: Destination, target: SSHTarget, config: paramiko.SSHConfig) -> list[Destination]:
    """The ProxyJump chain in connection order, ending with ``dest``."""
    chain = []
    for hop in dest.proxy_jump.split(",") if dest.proxy_jump else []:
        hop_target = _hop_target(hop, target)
        chain += _hops(resolve(hop_target, config), hop_target, config)
    return chain + [dest]


def open_clients(target: SSHTarget) -> tuple[Destination, list[paramiko.SSHClient]]:
    """Connect to ``target`` (through its jump hosts); return it resolved and the clients, last = target."""
    config = ssh_config()
    dest = resolve(target, config)
    clients: list[paramiko.SSHClient] = []
    try:
        sock = None
        hops = _hops(dest, target, config)
        for i, hop in enumerate(hops):
            if sock is None:
                sock = _proxy_command(hop) if hop.proxy_command else _tcp(hop)
            clients.append(_handshake(hop, sock))
            if i + 1 < len(hops):
                sock = _jump_channel(clients[-1], hop, hops[i + 1])
        return dest, clients
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise


def _tcp(dest: Destination) -> socket.socket:
    where = f"cannot reach {dest.label}"
    try:
        return socket.create_connection((dest.hostname, dest.port), timeout=dest.timeout)
    except socket.gaierror as exc:
        raise TransportError(f"{where}: unknown host name {dest.hostname!r} ({exc.strerror})") from None
    except (socket.timeout, TimeoutError):
        raise TransportError(f"{where}: no answer within {dest.timeout:g} s (connect_timeout)") from None
    except ConnectionRefusedError:
        raise TransportError(f"{where}: connection refused (is sshd listening on port {dest.port}?)") from None
    except OSError as exc:
        raise TransportError(f"{where}: {exc.strerror or exc}") from None


def _proxy_command(dest: Destination):
    try:
        return paramiko.ProxyCommand(dest.proxy_command)
    except Exception as exc:
        raise TransportError(f"cannot start ProxyCommand for {dest.label}: {exc}") from None


def _jump_channel(client: paramiko.SSHClient, via: Destination, dest: Destination):
    try:
        return client.get_transport().open_channel("direct-tcpip", (dest.hostname, dest.port), ("127.0.0.1", 0),
                                                   timeout=dest.timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"cannot reach {dest.label} through jump host {via.label}: {exc}") from None


def _handshake(dest: Destination, sock) -> paramiko.SSHClient:
    """Key exchange, host key check and authentication over an open ``sock``."""
    client = paramiko.SSHClient()
    try:
        load_known_hosts(client, dest.known_hosts)
        client.set_missing_host_key_policy(policy_for(dest))
        client.connect(dest.hostname, dest.port, username=dest.user, sock=sock, timeout=dest.timeout,
                       banner_timeout=dest.timeout, auth_timeout=dest.timeout, channel_timeout=dest.timeout,
                       key_filename=list(dest.identity_files) or None, look_for_keys=not dest.identity_files,
                       allow_agent=True)
        client.get_transport().set_keepalive(15)
        return client
    except BaseException as exc:
        client.close()
        sock.close()
        error = None if isinstance(exc, TransportError) else _explain(dest, exc)
        if error is None:
            raise
        raise error from None


def _explain(dest: Destination, exc: BaseException) -> TransportError | None:
    """A failed handshake in one line that says what to do (None: not an SSH or network failure)."""
    if isinstance(exc, paramiko.BadHostKeyException):
        name = known_hosts_name(dest.hostname, dest.port)
        remove = shell.join(["ssh-keygen", "-R", name, "-f", dest.known_hosts[0]])
        return TransportError(f"the host key of {dest.label} has CHANGED: it sent {exc.key.get_name()} "
                              f"{exc.key.fingerprint}, known_hosts has {exc.expected_key.fingerprint}; refusing to "
                              f"connect (a reinstalled host, or someone in the middle). If you know why: {remove}")
    if isinstance(exc, paramiko.PasswordRequiredException):
        add = shell.join(["ssh-add", *dest.identity_files])
        return TransportError(f"the key for {dest.label} is protected by a passphrase; add it to ssh-agent: {add}")
    if isinstance(exc, paramiko.AuthenticationException):
        tried = ("identity file " + ", ".join(dest.identity_files)) if dest.identity_files else "~/.ssh/id_* keys"
        agent = " and ssh-agent" if os.environ.get("SSH_AUTH_SOCK") else ""
        return TransportError(f"{dest.label} refused authentication as {dest.user!r} (tried {tried}{agent}); "
                              f"check the user, the key and the host's authorized_keys")
    if isinstance(exc, paramiko.SSHException) and "No authentication methods available" in str(exc):
        return TransportError(f"no key to offer {dest.label}: no identity file, no ~/.ssh/id_* key and no ssh-agent "
                              f"(set identity_file, or IdentityFile in ~/.ssh/config, or ssh-add a key)")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TransportError(f"{dest.label} did not complete the SSH handshake within {dest.timeout:g} s")
    if isinstance(exc, (paramiko.SSHException, EOFError, OSError)):
        return TransportError(f"ssh to {dest.label} failed: {exc or type(exc).__name__}")
    return None
