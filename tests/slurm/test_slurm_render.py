"""`vlaunch render --backend slurm`: golden scripts (1, 2 and 4 nodes), the same vLLM flags as on the
local backend, multi-node words, and refusals."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from helpers import REPO, assert_one_line_error, vlaunch

GOLDEN = REPO / "tests" / "golden" / "slurm"
RUN_ROOT = "/srv/vlaunch/runs"
OPTIONS = ["--set", "backend.slurm.partition=gpu", "--set", "backend.slurm.account=proj-42",
           "--set", "backend.slurm.qos=normal", "--set", 'backend.slurm.constraint="a100&ib"',
           "--set", 'resources.memory="200GB"', "--set", "resources.cpus_per_node=32",
           "--set", 'resources.walltime="12:00:00"',
           "--set", 'backend.slurm.extra_directives=["--exclusive", "--comment=vlaunch demo"]']
CASES = {
    "cpu-tiny": ["--profile", "cpu-tiny"],
    "turbo-options": ["--profile", "turbo", *OPTIONS],
    "turbo-2nodes": ["--profile", "turbo", "--set", "resources.nodes=2", "--set", "vllm.data_parallel_size=8",
                     "--set", "backend.slurm.partition=gpu"],
    "balanced-4nodes": ["--profile", "balanced", "--set", "resources.nodes=4", "--set", "vllm.data_parallel_size=8",
                        "--port", "8000"],
    # A group's router job: one node, one core, 1G, no GPU whatever the replicas ask; router_set gives it its
    # own partition and drops what it should not inherit.
    "turbo-router-job": ["--profile", "turbo", *OPTIONS, "--set", 'server.host="0.0.0.0"', "--set",
                         'replicas.router="job"', "--set", "replicas.router_port=8100", "--set",
                         'replicas.router_set=["backend.slurm.partition=\\"cpu\\"",'
                         ' "backend.slurm.extra_directives=[]", "backend.slurm.skip_directives=[\\"constraint\\"]"]',
                         "--router-job"],
}


def render(*args, backend="slurm"):
    result = vlaunch("render", "--backend", backend, "--run-root", RUN_ROOT, "--model", "org/model", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def launch_lines(script: str) -> list[list[str]]:
    """Each backgrounded command of the script as argv (the port variable kept as a word)."""
    return [shlex.split(line.rstrip(" &").replace('"$', "$").replace('"', ""))
            for line in script.splitlines() if line.rstrip().endswith("&")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_and_byte_stable(case):
    first = render(*CASES[case], "--name", case)
    assert render(*CASES[case], "--name", case) == first
    golden = GOLDEN / f"{case}.sh"
    if os.environ.get("VLAUNCH_UPDATE_GOLDEN"):
        golden.write_text(first)
    assert first == golden.read_text(), f"render drifted from {golden} (VLAUNCH_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("profile", ["cpu-tiny", "turbo", "baseline", "auto", "balanced"])
def test_same_vllm_command_as_local(profile):
    args = ["--profile", profile, "--name", "same"]
    assert launch_lines(render(*args)) == launch_lines(render(*args, backend="local"))


def test_directives_follow_the_profile():
    script = render(*CASES["turbo-options"], "--name", "opts")
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("--job-name=opts", "--nodes=1", "--gpus-per-node=4", "--cpus-per-task=32", "--mem=200G",
                     "--time=12:00:00", "--partition=gpu", "--account=proj-42", "--qos=normal",
                     "--constraint='a100&ib'", f"--output={RUN_ROOT}/opts/slurm-%j.out", "--exclusive",
                     "'--comment=vlaunch demo'"):
        assert f"#SBATCH {expected}" in directives, expected
    assert script.index("#SBATCH") < script.index("# environment") < script.index("# server")


def without(words: list[str], *flags: str) -> list[str]:
    """``words`` minus each flag in ``flags`` and its value (``--headless`` has none)."""
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in flags:
            skip = word != "--headless"
        else:
            out.append(word)
    return out


DP_WORDS = ("--data-parallel-size-local", "--data-parallel-address", "--data-parallel-rpc-port")


@pytest.mark.parametrize("nodes, per_node", [(2, 4), (4, 4)])
def test_multinode_head_and_followers(nodes, per_node):
    total = str(nodes * per_node)
    script = render("--profile", "turbo", "--set", f"resources.nodes={nodes}",
                    "--set", f"vllm.data_parallel_size={total}", "--name", "mn")
    follower, srun, head = launch_lines(script)  # the follower program's vLLM line, srun in the loop, the head
    local = launch_lines(render("--profile", "turbo", "--name", "mn", backend="local"))[0]
    # turbo's 4 API servers per engine, all on the head; the followers run engines only.
    scaled = {"--data-parallel-size": total, "--api-server-count": str(4 * int(total))}
    same = [scaled.get(prev, w) for prev, w in zip([""] + local, local)]
    assert without(head, *DP_WORDS) == same
    assert head[head.index("--data-parallel-size-local") + 1] == str(per_node)
    assert "--headless" not in head and "$VLAUNCH_DP_ADDRESS" in head and "$VLAUNCH_DP_RPC_PORT" in head
    assert srun == ["srun", "--nodes=1", "--ntasks=1", "--kill-on-bad-exit=1", "--nodelist=$VLAUNCH_NODE",
                    "/bin/bash", "-c", "$VLAUNCH_FOLLOWER", "vlaunch-follower", "$VLAUNCH_RUN_DIR", "$VLAUNCH_NODE_INDEX",
                    "$VLAUNCH_START_RANK", "$VLAUNCH_DP_ADDRESS", "$VLAUNCH_DP_RPC_PORT", "$VLAUNCH_PORT"]
    assert f"for ((VLAUNCH_NODE_INDEX = 1; VLAUNCH_NODE_INDEX < {nodes}; VLAUNCH_NODE_INDEX++)); do" in script
    assert f"  VLAUNCH_START_RANK=$((VLAUNCH_NODE_INDEX * {per_node}))" in script
    assert without(follower, "--headless", "--data-parallel-start-rank", *DP_WORDS) == without(
        same, "--api-server-count")
    assert "--api-server-count" not in follower
    assert "--headless" in follower and follower[follower.index("--data-parallel-start-rank") + 1] == "$VLAUNCH_START_RANK"
    assert f"#SBATCH --nodes={nodes}" in script and "#SBATCH --ntasks-per-node=1" in script
    assert len(re.findall(r"^printf '\{\"host\".*rendezvous\.json$", script, re.M)) == 1  # the head's only
    assert script.rstrip().endswith('exit "$VLAUNCH_RC"')


def test_tensor_parallel_larger_than_a_node_is_refused():
    result = vlaunch("render", "--backend", "slurm", "--profile", "baseline", "--model", "m",
                     "--set", "resources.nodes=2", "--set", "vllm.tensor_parallel_size=8")
    assert_one_line_error(result, "one model replica needs 8 GPUs", "a node has 4")


def test_uneven_data_parallel_is_refused():
    result = vlaunch("render", "--backend", "slurm", "--profile", "turbo", "--model", "m",
                     "--set", "resources.nodes=2", "--set", "resources.gpus_per_node=3",
                     "--set", "vllm.data_parallel_size=3", "--set", "vllm.tensor_parallel_size=2")
    assert_one_line_error(result, "data_parallel_size 3 does not divide evenly over 2 nodes")


def test_option_with_a_newline_is_a_config_error():
    result = vlaunch("render", "--backend", "slurm", "--profile", "cpu-tiny", "--model", "m",
                     "--set", 'backend.slurm.account="a\\ntouch /tmp/x"')
    assert_one_line_error(result, "backend.slurm.account", "one line")


def test_multinode_needs_the_serve_command():
    """`python -m vllm.entrypoints.openai.api_server` has no --headless mode; `vllm serve` has."""
    result = vlaunch("render", "--backend", "slurm", "--profile", "cpu-tiny", "--model", "m",
                     "--set", "resources.nodes=2", "--set", "vllm.data_parallel_size=2")
    assert_one_line_error(result, "2 nodes need vLLM's `serve` command", "server.command")


def test_a_router_job_is_rendered_only_for_a_profile_that_runs_its_router_as_a_job():
    result = vlaunch("render", "--backend", "slurm", "--model", "org/model", "--profile", "turbo", "--router-job")
    assert_one_line_error(result, "runs its router here, not as a job", 'replicas.router = "job"')
