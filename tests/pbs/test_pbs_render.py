"""The pbs job script: golden renders, directives, the same vLLM flags as elsewhere, quoting, multi-node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import FAKE_VLLM, REPO, assert_one_line_error, vlaunch
from rig_hosts import RIG_BRIDGE, require_hosts
from vlaunch import apikey
from vlaunch_pbs.directives import pbs_memory, pbs_walltime

GOLDEN = REPO / "tests" / "golden" / "pbs"
RUN_ROOT = "/home/user/.vlaunch/runs"
MODEL = "Qwen/Qwen3-VL-2B-Instruct"
TWO_NODES = ["--set", "resources.nodes=2", "--set", "vllm.data_parallel_size=8"]
#: The fake server as a `... serve` command: multi-node followers run `serve --headless`.
FAKE_SERVE = "server.command=" + json.dumps([sys.executable, str(FAKE_VLLM), "serve"])


def render(*args, backend="pbs"):
    result = vlaunch("render", "--backend", backend, "--run-root", RUN_ROOT, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def vllm_line(script: str) -> str:
    return next(line for line in script.splitlines() if line.endswith(" &") and not line.startswith(" "))


@pytest.mark.parametrize("golden, args", [
    ("turbo-1node.sh", ["--profile", "turbo"]),
    ("turbo-2nodes.sh", ["--profile", "turbo", *TWO_NODES]),
    ("polaris.sh", ["--profile", "polaris"]),
])
def test_golden_and_byte_stable(golden, args):
    first = render(*args, "--model", MODEL, "--name", golden.removesuffix(".sh"))
    assert render(*args, "--model", MODEL, "--name", golden.removesuffix(".sh")) == first
    path = GOLDEN / golden
    if os.environ.get("VLAUNCH_UPDATE_GOLDEN"):
        path.write_text(first)
    assert first == path.read_text(), f"render drifted from {path} (VLAUNCH_UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("profile", ["turbo", "balanced", "large", "lowlat", "baseline", "auto", "cpu-tiny"])
def test_same_vllm_command_as_the_local_backend(profile):
    args = ["--profile", profile, "--model", MODEL, "--name", "same"]
    assert vllm_line(render(*args)) == vllm_line(render(*args, backend="local"))


def test_turbo_asks_pbs_pro_for_one_four_gpu_chunk():
    script = render("--profile", "turbo", "--model", MODEL, "--set", "resources.cpus_per_node=32",
                    "--set", "resources.memory=256G", "--set", "resources.walltime=1-02:00:00",
                    "--set", "backend.pbs.queue=prod", "--set", "backend.pbs.account=proj")
    for line in ["#PBS -q prod", "#PBS -A proj", "#PBS -l select=1:ngpus=4:ncpus=32:mem=256gb",
                 "#PBS -l walltime=26:00:00", "#PBS -j oe", f"#PBS -o {RUN_ROOT}/turbo/pbs.out"]:
        assert line in script
    assert "place=" not in script


def test_torque_dialect_asks_for_nodes_and_ppn():
    script = render("--profile", "turbo", "--model", MODEL, "--set", "backend.pbs.dialect=torque",
                    "--set", "resources.cpus_per_node=8", "--set", "resources.memory=16G", *TWO_NODES)
    assert "#PBS -l nodes=2:ppn=8:gpus=4\n#PBS -l mem=32gb\n" in script
    assert "select=" not in script and "place=" not in script


def test_unit_conversions():
    assert pbs_walltime("00:30:00") == "00:30:00" and pbs_walltime("2-01:00:00") == "49:00:00"
    assert pbs_memory("64G") == "64gb" and pbs_memory("512MB") == "512mb" and pbs_memory("1024") == "1024mb"


def test_hostile_option_values_are_quoted_in_directives():
    script = render("--profile", "cpu-tiny", "--model", "m", "--set", "backend.pbs.queue=a b; touch x",
                    "--set", "backend.pbs.account=$(id)")
    assert "#PBS -q 'a b; touch x'\n#PBS -A '$(id)'\n" in script


@pytest.mark.parametrize("setting, words", [
    ('backend.pbs.extra_directives=["-l debug=true\\ntouch x"]', "extra_directives must be one line"),
    ("backend.pbs.queue=q\n", "queue must be one line"),
    ("backend.pbs.dialect=slurm", "backend.pbs.dialect"),
    ("backend.pbs.qeue=debug", "did you mean 'queue'"),
])
def test_bad_options_are_one_line_errors(setting, words):
    assert_one_line_error(vlaunch("render", "--profile", "cpu-tiny", "--backend", "pbs", "--model", "m",
                                  "--set", setting), words)


def test_pro_only_resources_under_torque_are_an_error():
    result = vlaunch("render", "--profile", "polaris", "--backend", "pbs", "--model", "m",
                     "--set", "backend.pbs.dialect=torque")
    assert_one_line_error(result, "backend.pbs.place is a PBS Pro resource")


def test_multinode_uses_place_scatter_and_pbsdsh_when_asked():
    script = render("--profile", "turbo", "--model", MODEL, *TWO_NODES, "--set", "backend.pbs.launcher=pbsdsh")
    assert "#PBS -l select=2:ngpus=4:ncpus=32\n#PBS -l place=scatter\n" in script
    assert ('pbsdsh -n "$VLAUNCH_NODEFILE_LINE" -- /bin/bash -c "$VLAUNCH_FOLLOWER" vlaunch-follower'
            ' "$VLAUNCH_RUN_DIR" "$VLAUNCH_NODE_INDEX" "$VLAUNCH_START_RANK"') in script


def stand_in_mpiexec(bin_dir):
    """An ``mpiexec`` that records its arguments and runs the program in the Slurm rig's second host's
    network namespace (scripts/rig/hosts.sh), as a fake vLLM follower that records its argv and exits."""
    bin_dir.mkdir()
    (bin_dir / "mpiexec").write_text(
        '#!/bin/bash\nprintf "%s\\0" "$@" >"$LAUNCH_RECORD"\nwhile [ "$1" != /bin/bash ]; do shift; done\n'
        'FAKE_ARGV_FILE="$FOLLOWER_ARGV" FAKE_EXIT_CODE=0 exec nsenter --net=/run/netns/vlaunch-n2 "$@"\n')
    (bin_dir / "mpiexec").chmod(0o755)
    return bin_dir


def test_two_node_script_starts_a_headless_follower_with_its_rank(tmp_path):
    """Run the rendered two-node script here: PBS_NODEFILE names this machine and the rig's host vlnode2,
    where a stand-in mpiexec runs the follower (in vlnode2's network namespace)."""
    require_hosts()
    marker = tmp_path / "pwned"
    hostile = f"org/m; touch {marker} $(touch {marker})"
    runs = tmp_path / "runs"
    script = vlaunch("render", "--profile", "cpu-tiny", "--backend", "pbs", "--model", hostile, "--name", "two",
                     "--run-root", str(runs), "--set", FAKE_SERVE, "--set", "resources.nodes=2",
                     "--set", "vllm.data_parallel_size=2", "--set", 'backend.pbs.launcher_args=["--cpu-bind", "none"]',
                     "--set", "environment.variables.EVIL=$(touch " + str(marker) + ")")
    assert script.returncode == 0, script.stderr
    (runs / "two").mkdir(parents=True)
    # The key file up writes: without it the head fails, and its script then ends the follower too.
    (runs / "two" / "api_key.yaml").write_text(apikey.file_text("k"))
    bin_dir = stand_in_mpiexec(tmp_path / "bin")
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("nodeA\nnodeA\nvlnode2\nvlnode2\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PBS_NODEFILE": str(nodefile),
           "LAUNCH_RECORD": str(tmp_path / "launch"), "FOLLOWER_ARGV": str(tmp_path / "follower.json"),
           "FAKE_ARGV_FILE": str(tmp_path / "head.json")}
    job = subprocess.Popen(["bash", "-c", script.stdout], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ((tmp_path / "follower.json").exists() and (tmp_path / "head.json").exists()):
            assert time.monotonic() < deadline and job.poll() is None, (runs / "two" / "server.log").read_text()
            time.sleep(0.1)
    finally:
        os.killpg(job.pid, 15)
        job.wait(10)
    launch = (tmp_path / "launch").read_bytes().split(b"\0")[:-1]
    assert [w.decode() for w in launch[:6]] == ["-n", "1", "--hosts", "vlnode2", "--cpu-bind", "none"]
    follower, head = (json.loads((tmp_path / name).read_text()) for name in ("follower.json", "head.json"))
    rendezvous = json.loads((runs / "two" / "rendezvous.json").read_text())

    def value(argv, flag):
        return argv[argv.index(flag) + 1]

    assert "--headless" in follower and "--headless" not in head
    assert value(follower, "--data-parallel-start-rank") == "1" and value(follower, "--data-parallel-size-local") == "1"
    # This machine's address on the route to vlnode2: the rig's bridge.
    assert value(follower, "--data-parallel-address") == value(head, "--data-parallel-address") == RIG_BRIDGE
    assert value(follower, "--data-parallel-rpc-port") == value(head, "--data-parallel-rpc-port") != str(rendezvous["port"])
    assert value(head, "--port") == str(rendezvous["port"]) and value(follower, "serve") == value(head, "serve") == hostile
    assert not marker.exists()


def test_two_node_script_stops_when_the_node_file_is_short(tmp_path):
    runs = tmp_path / "runs"
    script = render("--profile", "cpu-tiny", "--model", "m", "--name", "short", "--set", "resources.nodes=2",
                    "--set", "vllm.data_parallel_size=2", "--set", FAKE_SERVE).replace(RUN_ROOT, str(runs))
    (runs / "short").mkdir(parents=True)
    (tmp_path / "nodefile").write_text("nodeA\nnodeA\n")
    done = subprocess.run(["bash", "-c", script], env={**os.environ, "PBS_NODEFILE": str(tmp_path / "nodefile")},
                          timeout=30)
    assert done.returncode == 1
    assert "2 nodes asked, $PBS_NODEFILE lists 1" in (runs / "short" / "server.log").read_text()
    assert (runs / "short" / "exit_code").read_text().strip() == "1"


def test_ray_spans_nodes_by_itself():
    script = render("--profile", "turbo", "--model", MODEL, *TWO_NODES, "--", "--distributed-executor-backend", "ray")
    assert "#PBS -l select=2:ngpus=4:ncpus=32\n#PBS -l place=scatter\n" in script
    assert "PBS_NODEFILE" not in script and "--headless" not in script
