"""Shell completion through click's real protocol (what `eval "$(vlaunch completion bash)"` calls)."""

from __future__ import annotations

import pytest

from helpers import vlaunch
from vlaunch.registry import JobRecord, Registry


def complete(words: str) -> list[str]:
    """The candidates bash would be offered for the last word of ``words``."""
    parts = words.split(" ")
    result = vlaunch(env={"_VLAUNCH_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)})
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]  # "plain,NAME" lines


@pytest.fixture
def two_jobs(isolated):
    registry = Registry()
    for name in ("tuned-a", "tuned-b"):
        registry.create(JobRecord(name=name, backend="local", profile="turbo", run_dir=str(isolated / name)))


def test_profiles_and_backends():
    assert complete("vlaunch up -p tu") == ["turbo"]
    assert complete("vlaunch render --backend sl") == ["slurm"]


def test_job_names_for_every_command_that_takes_one(two_jobs):
    for command in ("status", "down", "logs", "tunnel", "forget", "watch", "advise", "bench"):
        assert complete(f"vlaunch {command} tuned-") == ["tuned-a", "tuned-b"], command


def test_bench_compare_completes_profiles(two_jobs):
    assert complete("vlaunch bench --compare bas") == ["baseline"]
    assert complete("vlaunch bench bas") == []  # without --compare, bench takes jobs
