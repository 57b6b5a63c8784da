"""The profile schema: what a TOML profile may say, validated by pydantic (unknown keys are errors)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .values import as_text, as_walltime, check_memory, refuse_control_characters

__all__ = ["Section", "VllmSection", "ServerSection", "ResourcesSection", "EnvironmentSection",
           "ReadinessSection", "PlanSection", "ReplicasSection", "ROUTER_POLICIES", "Profile"]


class Section(BaseModel):
    """Base for every table: unknown keys are rejected, assignments are validated, and the rules of
    :mod:`vlaunch.config.values` hold for every field (text where text is expected, one line each)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)
    #: Fields whose strings are shell lines, given verbatim (exempt from the one-line rule).
    verbatim: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _given_as_text(cls, value, info: ValidationInfo):
        return as_text(value, cls.model_fields[info.field_name].annotation)

    @field_validator("*")
    @classmethod
    def _one_line(cls, value, info: ValidationInfo):
        if info.field_name not in cls.verbatim:
            refuse_control_characters(info.field_name, value)
        return value


class VllmSection(Section):
    """Engine flags. Each typed field becomes ``--field-name`` on vLLM's command line."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model replica is split over (--tensor-parallel-size).")
    data_parallel_size: int = Field(1, ge=1, description="Independent engine replicas behind one endpoint (--data-parallel-size).")
    pipeline_parallel_size: int = Field(1, ge=1, description="Pipeline stages per replica (--pipeline-parallel-size).")
    enforce_eager: bool = Field(False, description="Disable CUDA graphs (slower decode). False keeps CUDA graphs on.")
    max_num_seqs: int | None = Field(None, ge=1, description="Most sequences one engine batches at once.")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="Token budget of one scheduler step (prefill chunk size).")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="Fraction of each GPU's memory vLLM may use.")
    max_model_len: int | None = Field(None, ge=1, description="Longest context (prompt + output) in tokens.")
    dtype: str | None = Field(None, description="Weight and activation dtype (auto, bfloat16, float16...).")
    quantization: str | None = Field(None, description="Quantisation method (awq, gptq, fp8...).")
    kv_cache_dtype: str | None = Field(None, description="KV cache dtype (auto, fp8...).")
    enable_prefix_caching: bool | None = Field(None, description="Reuse KV blocks of shared prompt prefixes.")
    enable_chunked_prefill: bool | None = Field(None, description="Split long prefills into chunks mixed with decodes.")
    api_server_count: int | None = Field(None, ge=1, description="API server processes in front of the engines"
                                         " (--api-server-count, always given); unset: server.api_servers_per_engine"
                                         " per data-parallel engine.")
    load_format: str | None = Field(None, description="How weights are loaded (auto, safetensors, dummy...).")
    seed: int | None = Field(None, description="Random seed.")
    extra_args: list[str] = Field(default_factory=list, description="Any other vLLM flags, as argv words; later layers win per flag.")


class ServerSection(Section):
    """What is served, where it listens and which command starts it."""

    model: str | None = Field(None, description="Model name on the Hugging Face hub, or a local path.")
    served_model_name: str | None = Field(None, description="Name clients use; defaults to the model.")
    host: str = Field("127.0.0.1", description="Address vLLM binds. 127.0.0.1 unless you mean to expose it.")
    port: int | Literal["auto"] = Field("auto", description="TCP port, or \"auto\" for a free one chosen where the server runs.")
    command: list[str] = Field(default_factory=lambda: ["vllm", "serve"],
                               description="argv that starts vLLM's OpenAI server; flags are appended.")
    api_servers_per_engine: int = Field(1, ge=1, description="API server processes per data-parallel engine, unless"
                                        " vllm.api_server_count gives the total. One API server process tops out"
                                        " near one CPU core.")
    api_key: bool = Field(True, description="Protect the API with a per-job key, handed to vLLM in a private --config file.")
    compile_cache: str | None = Field(
        "~/.cache/vlaunch/vllm", description="vLLM's cache (torch.compile artifacts: a second start is faster), as"
        " VLLM_CACHE_ROOT; \"~/\" is the home of the machine that runs vLLM; on clusters a shared filesystem path;"
        " \"\" leaves vLLM's own default.")
    data_parallel_interface: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:@-]{1,15}$", description="Multi-node jobs: the network interface (e.g."
        " \"ib0\") whose address the other nodes reach the first at (vLLM's --data-parallel-address). Default: the"
        " first node's address on the route to the second.")

    @field_validator("port")
    @classmethod
    def _port_range(cls, value):
        if value != "auto" and not 1 <= value <= 65535:
            raise ValueError("port must be 1-65535 or \"auto\"")
        return value

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value):
        if not value:
            raise ValueError("command must name a program")
        return value

    @property
    def name_for_clients(self) -> str | None:
        """The model name that ``/v1/models`` lists."""
        return self.served_model_name or self.model


class ResourcesSection(Section):
    """What the job asks the machine or scheduler for."""

    nodes: int = Field(1, ge=1, description="Nodes (hosts) the server spans.")
    gpus_per_node: int = Field(1, ge=0, description="GPUs per node; 0 for a CPU build of vLLM. When unset:"
                               " data x tensor x pipeline parallelism over the nodes.")
    cpus_per_node: int | None = Field(None, ge=1, description="CPU cores per node.")
    memory: str | None = Field(None, description="Memory per node, e.g. \"64G\".")
    walltime: str | None = Field(None, description="Time limit, [D-]HH:MM:SS or a duration such as 90m or 1h30m.")
    gpu_ids: list[int] | None = Field(None, description="Local backends only: which GPUs (CUDA_VISIBLE_DEVICES).")

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str | None) -> str | None:
        return value if value is None else as_walltime(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        return value if value is None else check_memory(value)


class EnvironmentSection(Section):
    """How the job's shell is prepared before vLLM starts."""

    verbatim = frozenset({"setup"})

    setup: list[str] = Field(default_factory=list,
                             description="Shell lines run first, verbatim (module load, conda activate, source venv).")
    variables: dict[str, str] = Field(default_factory=dict, description="Environment variables, quoted when rendered.")

    @field_validator("variables")
    @classmethod
    def _names(cls, value):
        for name in value:
            if not (name.isidentifier() and name.isascii()):
                raise ValueError(f"not a valid environment variable name: {name!r}")
        return value


class ReadinessSection(Section):
    """How long each readiness stage may take, and whether a real completion is part of it."""

    queue_timeout: float | None = Field(None, gt=0, description="Seconds a job may wait in the queue; none = no limit.")
    start_timeout: float = Field(900, gt=0, description="Seconds from running to the port accepting connections.")
    http_timeout: float = Field(120, gt=0, description="Seconds for /health, /v1/models and the probe completion each.")
    probe_completion: bool = Field(True, description="Finish readiness with a one-token completion.")
    poll_interval: float = Field(0.1, gt=0, le=5, description="Seconds between HTTP probes.")


class PlanSection(Section):
    """Whether the profile's layout and batching come from ``vlaunch plan``'s memory math (the ``auto`` profile)."""

    auto: bool = Field(False, description="Plan tensor/data parallelism and batching for the model on the job's GPUs;"
                       " any value a layer sets stays as set.")
    gpu_memory: float = Field(80, gt=0, description="GiB per GPU the plan assumes (80: an A100 or H100 80GB); set"
                              " it for your cards.")
    prompt_len: int = Field(512, ge=1, description="Expected prompt length in tokens (sizes the prefill budget).")
    output_len: int = Field(256, ge=1, description="Expected output length in tokens (with prompt_len, the"
                            " context one sequence needs in the KV cache).")


#: vllm-router's routing policies that need nothing but the replicas' URLs.
ROUTER_POLICIES = ("round_robin", "power_of_two", "cache_aware", "random", "consistent_hash")


class ReplicasSection(Section):
    """Independent copies of the job behind one endpoint, vLLM's router (``vlaunch up --replicas N``)."""

    count: int = Field(1, ge=1, le=64, description="Jobs of this profile behind one router; 1 is one job and no"
                       " router, unless keep is set.")
    keep: int = Field(0, ge=0, description="Replacements the group may submit over its life for replicas that"
                      " fail or end (a walltime, a dead node), so a long batch outlives them.")
    backends: list[str] = Field(default_factory=list, description="Backends the replicas go to, in turn (e.g."
                                " [\"slurm\", \"local\"]); empty: the backend of the command line.")
    policy: Literal[ROUTER_POLICIES] = Field("round_robin", description="How the router spreads requests"
                                             " (vllm-router's --policy).")
    router: Literal["here", "job"] = Field("here", description="Where the router runs: \"here\", on the machine"
                                           " that runs vlaunch up, beside the group's keeper; \"job\", as its own"
                                           " small job on the replicas' backend, next to them.")
    router_host: str = Field("127.0.0.1", description="Address the router binds when it runs here (a router job"
                             " binds server.host). Its admin routes (add or remove a replica) take no key: widen it"
                             " knowingly.")
    router_port: int | Literal["auto"] = Field("auto", description="The router's port, or \"auto\".")
    router_command: list[str] = Field(default_factory=lambda: ["vllm-router"], description="router = \"job\": the"
                                      " router's program where the job runs (on the job's PATH, or a path).")
    router_set: list[str] = Field(default_factory=list, description="router = \"job\": settings for the router's"
                                  " job only, as --set takes them (e.g. [\"backend.slurm.partition=\\\"cpu\\\"\"]).")
    router_timeout: float = Field(30.0, gt=0, description="Seconds the router may leave its /health unanswered"
                                  " while it runs before the keeper ends it and starts (or submits) another.")

    @field_validator("router_port")
    @classmethod
    def _router_port_range(cls, value):
        if value != "auto" and not 1 <= value <= 65535:
            raise ValueError("router_port must be 1-65535 or \"auto\"")
        return value

    @field_validator("router_command")
    @classmethod
    def _router_command_not_empty(cls, value):
        if not value:
            raise ValueError("router_command must name a program")
        return value

    @property
    def grouped(self) -> bool:
        """Whether ``up`` starts a group (a router and its replicas) rather than one job."""
        return self.count > 1 or self.keep > 0 or len(self.backends) > 1


class Profile(Section):
    """A whole resolved profile."""

    description: str = Field("", description="One line shown by `vlaunch profiles`.")
    extends: str | None = Field(None, description="Profile this one starts from.")
    run_root: str | None = Field(None, description="Directory on the target for job files; default per transport.")
    vllm: VllmSection = Field(default_factory=VllmSection)
    server: ServerSection = Field(default_factory=ServerSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    readiness: ReadinessSection = Field(default_factory=ReadinessSection)
    plan: PlanSection = Field(default_factory=PlanSection)
    replicas: ReplicasSection = Field(default_factory=ReplicasSection)
    backend: dict[str, dict] = Field(default_factory=dict, description="One table of options per backend.")

    @model_validator(mode="after")
    def _parallelism_fits(self):
        v, r = self.vllm, self.resources
        ranks = v.data_parallel_size * v.tensor_parallel_size * v.pipeline_parallel_size
        if "gpus_per_node" not in r.model_fields_set:
            if ranks % r.nodes:
                raise ValueError(f"parallelism needs {ranks} GPUs, which do not divide evenly over {r.nodes} nodes")
            r.gpus_per_node = ranks // r.nodes
        gpus = r.nodes * r.gpus_per_node
        if gpus and ranks != gpus:
            raise ValueError(
                f"parallelism needs {ranks} GPUs (data {v.data_parallel_size} x tensor {v.tensor_parallel_size}"
                f" x pipeline {v.pipeline_parallel_size}) but resources give {gpus}"
                f" ({r.nodes} node(s) x {r.gpus_per_node} GPUs)")
        if r.gpu_ids is not None and len(r.gpu_ids) != r.gpus_per_node:
            raise ValueError(f"resources.gpu_ids lists {len(r.gpu_ids)} GPUs but gpus_per_node is {r.gpus_per_node}")
        return self
