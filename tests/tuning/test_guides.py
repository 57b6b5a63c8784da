"""The three guides in docs/guides/ run: each `$ vlaunch render|profiles|plan` of their console blocks
runs here on the CPU, and the output the guide shows is what the command prints.

The guides name models by their hub ids; a Hugging Face cache made here holds the config.json of each
(the hand-checked fixtures of test_plan.py), as `huggingface-cli download --include config.json`
would leave it. Home is a fresh folder shown as `~`, so paths print as they do for a reader.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from helpers import BIN, REPO
from tuning_support import config_path

GUIDES = sorted((REPO / "docs" / "guides").glob("*.md"))
RUNNABLE = ("render", "profiles", "plan")
#: hub id -> config fixture, for every model a guide plans.
HUB_CONFIGS = {"Qwen/Qwen3-1.7B": "qwen3-1.7b", "Qwen/Qwen2.5-7B-Instruct": "qwen2.5-7b",
               "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b"}


def console_commands() -> list[tuple[str, str, list[str]]]:
    """(guide, command, output lines shown) for every `$ ` line of every ```console block."""
    found = []
    for guide in GUIDES:
        for block in re.findall(r"```console\n(.*?)```", guide.read_text(), re.S):
            for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
                command, *shown = chunk.rstrip("\n").split("\n")
                found.append((guide.name, command, shown))
    return found


def test_the_guides_exist_and_show_commands():
    assert {g.name for g in GUIDES} == {"chunked-prefill.md", "performance.md", "presets.md"}
    commands = console_commands()
    assert {name for name, _, _ in commands} == {g.name for g in GUIDES}
    for name, command, _ in commands:  # nothing in a console block escapes this test
        words = command.split()
        assert words[0] == "vlaunch" and words[1] in RUNNABLE, f"{name}: {command}"


@pytest.fixture(scope="module")
def reader_env(tmp_path_factory):
    """A reader's environment: a fresh home, vlaunch on PATH, the guides' models in the HF cache."""
    root = tmp_path_factory.mktemp("guides")
    home, hub = root / "home", root / "home" / ".cache" / "huggingface" / "hub"
    for repo_id, fixture in HUB_CONFIGS.items():
        repo = hub / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0123abcd")
        (repo / "snapshots" / "0123abcd").mkdir(parents=True)
        shutil.copy(config_path(fixture), repo / "snapshots" / "0123abcd" / "config.json")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VLAUNCH_", "XDG_", "HF_", "HUGGINGFACE_"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    return env


@pytest.mark.parametrize("guide, command, shown", console_commands(),
                         ids=[f"{g}:{c[:60]}" for g, c, _ in console_commands()])
def test_guide_command_runs_and_prints_what_the_guide_shows(reader_env, guide, command, shown):
    run = subprocess.run(["bash", "-c", command], env=reader_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{guide}: {command}: {run.stderr}"
    printed = run.stdout.replace(reader_env["HOME"], "~").splitlines()
    remaining = iter(printed)
    for line in shown:  # the guide may leave lines out, but what it shows is printed, in that order
        assert any(line == out for out in remaining), f"{guide}: {command!r} did not print {line!r}"
