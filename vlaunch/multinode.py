"""Multi-node data parallelism without Ray, as vLLM does it natively.

The first node runs the API server with ``--data-parallel-size`` = all ranks and
``--data-parallel-size-local`` = ranks on that node; every other node runs the same command with
``--headless`` and its ``--data-parallel-start-rank``. All of them meet at the first node's
``--data-parallel-address`` / ``--data-parallel-rpc-port``. Batch backends use these words in their
own server blocks; the rest of the command line is the profile's, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config.model import Profile
from .errors import ConfigError

__all__ = ["DataParallelLayout", "data_parallel_layout", "head_words", "follower_words", "uses_ray"]


@dataclass(frozen=True)
class DataParallelLayout:
    """How data-parallel ranks spread over nodes."""

    nodes: int
    ranks: int
    local_ranks: int


def uses_ray(profile: Profile) -> bool:
    """True when the profile asks for vLLM's Ray executor."""
    args = profile.vllm.extra_args
    return any(a in ("--distributed-executor-backend=ray",) for a in args) or any(
        a == "--distributed-executor-backend" and args[i + 1:i + 2] == ["ray"] for i, a in enumerate(args))


def data_parallel_layout(profile: Profile) -> DataParallelLayout:
    """The layout of ``profile``; raises :class:`ConfigError` for what native multi-node DP cannot do."""
    v, r = profile.vllm, profile.resources
    if r.nodes == 1:
        return DataParallelLayout(1, v.data_parallel_size, v.data_parallel_size)
    per_replica = v.tensor_parallel_size * v.pipeline_parallel_size
    if r.gpus_per_node and per_replica > r.gpus_per_node and not uses_ray(profile):
        raise ConfigError(
            f"one model replica needs {per_replica} GPUs (tensor {v.tensor_parallel_size} x pipeline"
            f" {v.pipeline_parallel_size}) but a node has {r.gpus_per_node}: vlaunch spans nodes with vLLM's"
            " native data parallelism (whole replicas per node); lower tensor_parallel_size, or choose Ray with"
            " vllm.extra_args = [\"--distributed-executor-backend\", \"ray\"] and a Ray cluster of your own")
    if v.data_parallel_size % r.nodes:
        raise ConfigError(f"data_parallel_size {v.data_parallel_size} does not divide evenly over {r.nodes} nodes")
    command = profile.server.command
    if command[-1] != "serve":  # followers run `vllm serve --headless`; the api_server module has no such mode
        raise ConfigError(f"{r.nodes} nodes need vLLM's `serve` command (the other nodes run it with --headless),"
                          f" but server.command is {' '.join(command)!r}; set server.command = [\"vllm\", \"serve\"]")
    return DataParallelLayout(r.nodes, v.data_parallel_size, v.data_parallel_size // r.nodes)


def head_words(layout: DataParallelLayout, address: str, rpc_port: str) -> list[str]:
    """Extra words for the first node's API server (address and port may be :class:`vlaunch.shell.Var`)."""
    return ["--data-parallel-size-local", str(layout.local_ranks),
            "--data-parallel-address", address, "--data-parallel-rpc-port", rpc_port]


def follower_words(layout: DataParallelLayout, start_rank: str, address: str, rpc_port: str) -> list[str]:
    """Extra words for a headless follower node whose first rank is ``start_rank``."""
    return ["--headless", "--data-parallel-size-local", str(layout.local_ranks),
            "--data-parallel-start-rank", start_rank,
            "--data-parallel-address", address, "--data-parallel-rpc-port", rpc_port]
