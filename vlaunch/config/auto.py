"""The ``auto`` profile's planning: ``[plan] auto = true`` fills tensor/data parallelism and batching from
``vlaunch plan``'s memory math for the model on the job's GPUs, beneath every value a layer sets.

Each decision is returned as a line that the rendered script carries as a comment, so ``render`` shows
why each value was chosen. When the model's ``config.json`` cannot be read here (a hub id not in the
local cache, a path only the compute nodes see), the fallback is data parallelism over every GPU,
said in one line: never a silent baseline.
"""

from __future__ import annotations

from pydantic import ValidationError

from ..errors import ConfigError
from .model import PlanSection, ResourcesSection, ServerSection, VllmSection

__all__ = ["plan_layout", "SOURCE"]

#: The source ``profiles show --sources`` names for a planned value.
SOURCE = "auto (vlaunch plan)"
_PLANNED = ("tensor_parallel_size", "data_parallel_size", "max_num_seqs", "max_num_batched_tokens", "max_model_len")


def plan_layout(merged: dict, sources: dict[str, str]) -> tuple[list[str], str | None]:
    """Plan ``merged`` (the profile's layers, merged) in place when it asks for it: the reasons, one per
    line, and the one that says why the memory math could not be done (None when it was, or not asked)."""
    try:
        settings = PlanSection.model_validate(merged.get("plan", {}))
        resources = ResourcesSection.model_validate(merged.get("resources", {}))
        server = ServerSection.model_validate(merged.get("server", {}))
        vllm = VllmSection.model_validate(merged.get("vllm", {}))
    except ValidationError:
        return [], None  # validating the whole profile reports it, with the layer that set it
    if not settings.auto or not server.model:
        return [], None
    if resources.gpus_per_node == 0:
        return ["auto: no GPUs (resources.gpus_per_node = 0), nothing to plan: vLLM's defaults"], None
    if vllm.pipeline_parallel_size > 1:
        return ["auto: pipeline parallelism is set, so the layout and batching stay as the layers give them"], None
    given = {key: sources[f"vllm.{key}"] for key in _PLANNED if f"vllm.{key}" in sources}
    values, notes, planned_by_math = _decide(settings, resources, server.model, vllm, given)
    fallback = None if planned_by_math else notes[0]
    planned = merged.setdefault("vllm", {})
    for key, value in values.items():
        if key in given:
            notes.append(f"auto: vllm.{key} = {getattr(vllm, key)} as set by {given[key]}")
        elif value is not None:
            planned[key] = value
            sources[f"vllm.{key}"] = SOURCE
    notes.append("auto: CUDA graphs " + (f"off: vllm.enforce_eager set by {sources['vllm.enforce_eager']}"
                                         if vllm.enforce_eager else "on (vllm.enforce_eager false)"))
    return notes, fallback


def _decide(settings: PlanSection, resources: ResourcesSection, model: str, vllm: VllmSection,
            given: dict[str, str]) -> tuple[dict, list[str], bool]:
    """The planned values (some may be None: vLLM's default), the lines that explain them, and whether the
    memory math made them (False: a fallback layout)."""
    from ..tuning.model_config import load_shape
    from ..tuning.plan import PlanInput, make_plan

    total = resources.nodes * resources.gpus_per_node
    tp = vllm.tensor_parallel_size if "tensor_parallel_size" in given else None
    if tp is None and "data_parallel_size" in given and total % vllm.data_parallel_size == 0:
        tp = total // vllm.data_parallel_size
    where = f"{resources.nodes} x {resources.gpus_per_node} GPUs of {settings.gpu_memory:g} GiB (plan.gpu_memory)"
    try:
        load_shape(model)
    except ConfigError:
        tp = tp or 1
        return ({"tensor_parallel_size": tp, "data_parallel_size": total // tp},
                [f"auto: cannot read the config.json of {model} here (`vlaunch plan -m MODEL` says why), so no"
                 f" memory math: tensor_parallel_size {tp} x data_parallel_size {total // tp}, the layout for a"
                 " model that fits one GPU, and vLLM's batching defaults; for a larger model set"
                 " vllm.tensor_parallel_size"], False)
    inp = PlanInput(model=model, gpus=resources.gpus_per_node, nodes=resources.nodes, gpu_memory=settings.gpu_memory,
                    utilization=vllm.gpu_memory_utilization or 0.9, prompt_len=settings.prompt_len,
                    output_len=settings.output_len, max_model_len=vllm.max_model_len, dtype=vllm.dtype,
                    kv_cache_dtype=vllm.kv_cache_dtype, tensor_parallel=tp)
    try:
        plan = make_plan(inp)
    except ConfigError:
        tp = tp or resources.gpus_per_node
        return ({"tensor_parallel_size": tp, "data_parallel_size": total // tp},
                [f"auto: by the memory math {model} does not fit {where} with room for its KV cache at any"
                 f" tensor-parallel size (`vlaunch plan` shows the figures): tensor_parallel_size {tp} x"
                 f" data_parallel_size {total // tp} and vLLM's batching defaults; set plan.gpu_memory for"
                 " your cards"], False)
    notes = [f"auto: vlaunch plan for {where}, {settings.prompt_len} in / {settings.output_len} out:"]
    notes += [f"auto: {line.strip()}" for line in plan.reasoning[1:]]  # [0] names the config file's path
    return ({"tensor_parallel_size": plan.tensor_parallel, "data_parallel_size": plan.data_parallel,
             "max_num_seqs": plan.max_num_seqs, "max_num_batched_tokens": plan.max_num_batched_tokens,
             "max_model_len": plan.max_model_len}, notes, True)
