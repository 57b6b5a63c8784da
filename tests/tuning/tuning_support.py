"""Helpers of the tuning-wing tests: recorded /metrics snapshots and config.json fixtures."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPLAY = Path(__file__).resolve().parent / "replay_vllm.py"


def snapshots(scenario: str) -> list[Path]:
    """The recorded /metrics files of a scenario folder, oldest first."""
    return sorted((FIXTURES / "metrics" / scenario).glob("*.prom"))


def scrapes(files: list[Path], step: float = 0.5):
    """Parse recorded snapshots as scrapes taken ``step`` seconds apart (they were recorded 0.5 s apart)."""
    from vlaunch.tuning.metrics import parse

    return [parse(f.read_text(), taken=i * step) for i, f in enumerate(files)]


def timed_scrapes(scenario: str):
    """Parse a scenario's snapshots at the times its ``taken.txt`` recorded (file, seconds from the first)."""
    from vlaunch.tuning.metrics import parse

    folder = FIXTURES / "metrics" / scenario
    taken = dict(line.split() for line in (folder / "taken.txt").read_text().splitlines())
    return [parse(f.read_text(), taken=float(taken[f.name])) for f in snapshots(scenario)]


def config_path(name: str) -> str:
    """A config.json fixture, by family name (e.g. "llama-3.1-8b")."""
    return str(FIXTURES / "configs" / f"{name}.json")
