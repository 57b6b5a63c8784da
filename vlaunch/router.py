"""vLLM's router (``vllm-router`` on PyPI) in front of a group's replicas: its command line, and its admin
routes that add and remove a replica.

The router is an existing load balancer (Rust, from the vLLM project), not vlaunch's own proxy. Facts it
was chosen and used for, seen with vllm-router 0.1.17: it starts with no worker and takes them later
through ``POST /add_worker?url=`` and ``/remove_worker?url=``; it retries a request that a worker could not
take on another worker; it checks no key itself but passes the client's ``Authorization`` header on to
the worker, which checks it (each replica accepts the group's key besides its own); its admin routes take
no key, so it binds loopback unless told otherwise.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import sys
import urllib.parse

from .errors import ConfigError
from .probes import request

__all__ = ["PROGRAM", "ERRORS", "program", "options", "argv", "free_port", "add_worker", "remove_worker", "workers",
           "healthy"]

PROGRAM = "vllm-router"
#: What a call to the router's admin routes raises when the router does not answer as it should.
ERRORS = (OSError, ValueError, http.client.HTTPException)
#: Seconds between the router's own health checks of each replica, and failed checks before it stops
#: sending to one (retries on another replica cover the seconds in between).
HEALTH_INTERVAL, HEALTH_FAILURES = 2, 2


def program() -> str:
    """The router's executable: beside this Python (its virtual environment) or on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), PROGRAM)
    found = beside if os.access(beside, os.X_OK) else shutil.which(PROGRAM)
    if not found:
        raise ConfigError(f"replicas need vLLM's router, and {PROGRAM} is not installed here: pip install"
                          " vllm-router (from vlaunch's checkout: pip install '.[router]')")
    return found


def options(policy: str, metrics_port: int | str) -> list[str]:
    """The router's options but its address: no worker yet (the keeper adds each replica once it is ready);
    its metrics on loopback, at ``metrics_port`` (a number, or a :class:`vlaunch.shell.Var` in a job)."""
    return ["--policy", policy, "--health-check-interval-secs", str(HEALTH_INTERVAL),
            "--health-failure-threshold", str(HEALTH_FAILURES), "--health-success-threshold", "1",
            "--prometheus-host", "127.0.0.1", "--prometheus-port", metrics_port if isinstance(metrics_port, str)
            else str(metrics_port), "--log-level", "info"]


def argv(executable: str, host: str, port: int, policy: str, metrics_port: int) -> list[str]:
    """The command line of a router run here, as the keeper's child."""
    return [executable, "--host", host, "--port", str(port), *options(policy, metrics_port)]


def free_port(host: str) -> int:
    """A port that is free on ``host`` now (the router binds it a moment later)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _admin(endpoint: str, route: str, url: str) -> str:
    query = urllib.parse.urlencode({"url": url})
    _, body = request(f"{endpoint}/{route}?{query}", None, body={}, timeout=30.0)
    return body.decode(errors="replace")


def add_worker(endpoint: str, url: str) -> str:
    """Give the router at ``endpoint`` the replica at ``url``; its answer."""
    return _admin(endpoint, "add_worker", url)


def remove_worker(endpoint: str, url: str) -> str:
    """Take the replica at ``url`` out of the router at ``endpoint``; its answer."""
    return _admin(endpoint, "remove_worker", url)


def workers(endpoint: str) -> list[str]:
    """The replicas' URLs the router at ``endpoint`` sends requests to."""
    import json

    _, body = request(f"{endpoint}/list_workers", None, timeout=5.0)
    return list(json.loads(body).get("urls") or [])


def healthy(endpoint: str) -> bool:
    """Whether the router answers its own ``/health``."""
    try:
        status, _ = request(f"{endpoint}/health", None, timeout=5.0)
    except OSError:
        return False
    return status == 200
