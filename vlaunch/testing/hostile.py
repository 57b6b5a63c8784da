"""The property behind ``BackendConformance.test_every_string_stays_data``: any string a user gives, in
any field, is refused in one line or reaches vLLM (and the environment) as exactly that value.

The rendered script runs under bash with a recording stand-in for the server command; what that
received is compared word for word with what the profile says, and nothing but the files the
script writes may appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import typing
from pathlib import Path

from pydantic import ValidationError

from ..config.flags import server_argv
from ..errors import VlaunchError

__all__ = ["PIECES", "hostile_text", "string_options", "Outcome", "run_with_values"]

#: Pieces that have broken launchers: shell syntax, quoting, option look-alikes, control characters.
PIECES = ["'", '"', "\\", "$(touch pwned)", "`touch pwned`", "$HOME", "${X}", ";", "&&", "|", "\n", "\r", "\t",
          "\x1b", "\x00", "#", "--", "-", "--api-key=x", "--api_key", "=", "*", "~", " ", "é", "💥", "\u2028", "%s",
          "{{ server }}"]
#: The environment variable that carries a hostile value to the stand-in.
ENV_NAME = "VLAUNCH_HOSTILE"
_PORT = 8000
_RECORDER = f"""#!/usr/bin/env python3
import json, os, sys
with open(os.environ["VLAUNCH_RECORD"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": os.environ.get({ENV_NAME!r})}}, f)
"""
#: Files the job script itself leaves in its run directory (besides the two written before it runs).
_SCRIPT_FILES = {"server.log", "rendezvous.json", "exit_code"}


def hostile_text():
    """A hypothesis strategy: strings of :data:`PIECES` and arbitrary characters (surrogates excepted)."""
    from hypothesis import strategies as st

    char = st.characters(blacklist_categories=("Cs",))
    piece = st.sampled_from(PIECES) | st.text(char, min_size=1, max_size=4)
    return st.lists(piece, min_size=1, max_size=6).map("".join)


def string_options(options_model) -> list[str]:
    """The fields of a backend's options model that hold one string."""
    names = []
    for name, field in options_model.model_fields.items():
        args = set(typing.get_args(field.annotation))
        if field.annotation is str or args == {str, type(None)}:
            names.append(name)
    return names


class Outcome(typing.NamedTuple):
    """What became of one set of values: refused (with the message), or what the server command got."""

    refused: str | None
    argv: list[str] = []
    expected: list[str] = []
    env: str | None = None
    stray: list[str] = []


def _toml(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def run_with_values(prepare, values: dict[str, str], workdir: Path) -> Outcome:
    """Render a script whose profile has every dotted path of ``values`` set to its string ("model" is the
    model, "env" the value of :data:`ENV_NAME`), run it with bash and report what the server command got.

    ``prepare(model, sets)`` is the conformance suite's :meth:`prepared`."""
    recorder = workdir / "bin" / "vllm-recorder"
    recorder.parent.mkdir(parents=True)
    recorder.write_text(_RECORDER)
    recorder.chmod(0o755)
    sets = [f"{path}={_toml(value)}" for path, value in values.items() if path not in ("model", "env")]
    sets += [f"environment.variables.{ENV_NAME}={_toml(values['env'])}",
             f"server.command={_toml([str(recorder), 'serve'])}", f"server.port={_PORT}"]
    run_dir = workdir / "runs" / "job"
    try:
        prepared = prepare(values["model"], sets)
        job = prepared.job("job", str(run_dir))
        script = prepared.script(job)
        expected = server_argv(prepared.profile, str(_PORT))[1:]  # the program itself is the recorder
    except (VlaunchError, ValidationError) as exc:
        return Outcome(str(exc))
    if prepared.profile.server.api_key:
        expected += ["--config", job.path("api_key.yaml")]
    run_dir.mkdir(parents=True)
    (run_dir / "job.sh").write_text(script)
    (run_dir / "api_key.yaml").write_text('api-key: "k"\n')
    record = workdir / "argv.json"
    env = {"PATH": f"{recorder.parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(workdir),
           "VLAUNCH_RECORD": str(record)}
    subprocess.run(["bash", str(run_dir / "job.sh")], cwd=workdir, env=env, timeout=60,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got = json.loads(record.read_text()) if record.exists() else {"argv": [], "env": None}
    known = {"argv.json", "bin/vllm-recorder", "runs/job/job.sh", "runs/job/api_key.yaml",
             *(f"runs/job/{leaf}" for leaf in _SCRIPT_FILES)}
    stray = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                   if p.is_file() and str(p.relative_to(workdir)) not in known)
    return Outcome(None, got["argv"], expected, got["env"], stray)
