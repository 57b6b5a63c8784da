"""HTTP readiness probes against vLLM's OpenAI server, with the standard library only (fast start-up)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Probe", "probe", "request"]


@dataclass(frozen=True)
class Probe:
    """The outcome of one probe: passed or not, and what was seen."""

    ok: bool
    detail: str = ""


def request(url: str, api_key: str | None, body: dict | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET ``url`` (POST ``body`` as JSON when given) with the job's key; (status, body). urllib's errors pass through."""
    import urllib.request  # only when probing: keeps `render` and `status` free of HTTP client imports

    data = json.dumps(body).encode() if body is not None else None
    outgoing = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        outgoing.add_header("Content-Type", "application/json")
    if api_key:
        outgoing.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(outgoing, timeout=timeout) as response:
        return response.status, response.read()


def probe(stage: str, base_url: str, served_name: str | None, api_key: str | None, timeout: float = 5.0) -> Probe:
    """Probe HTTP ``stage`` ("health", "models" or "completion") of the server at ``base_url``; never raises
    for network or HTTP failures."""
    import urllib.error

    try:
        if stage == "health":
            status, _ = request(f"{base_url}/health", None, timeout=timeout)
            return Probe(status == 200, f"/health {status}")
        if stage == "models":
            _, raw = request(f"{base_url}/v1/models", api_key, timeout=timeout)
            names = [m.get("id") for m in json.loads(raw).get("data", [])]
            found = served_name in names
            return Probe(found, f"/v1/models lists {', '.join(map(str, names)) or 'nothing'}")
        if stage == "completion":
            body = {"model": served_name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
            _, raw = request(f"{base_url}/v1/completions", api_key, body, timeout=max(timeout, 30.0))
            choices = json.loads(raw).get("choices") or []
            return Probe(bool(choices), "one-token completion answered" if choices else "completion had no choices")
    except urllib.error.HTTPError as exc:
        return Probe(False, f"{urlsplit(exc.url).path} answered {exc.code}")
    except (OSError, ValueError) as exc:
        return Probe(False, str(getattr(exc, "reason", exc)))
    raise ValueError(f"unknown readiness stage {stage!r}")
