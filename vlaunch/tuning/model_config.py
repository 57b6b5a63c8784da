"""A model's shape from its ``config.json`` (a local folder or the Hugging Face cache; never downloaded).

From the shape come the parameter count by part, the weight bytes, and the KV-cache bytes per token.
Dense decoders of the Llama / Qwen / Mistral kind and their mixture-of-experts variants (Mixtral,
Qwen-MoE) are modelled; multimodal configs use their ``text_config`` plus an estimate of the vision
encoder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["ModelShape", "find_config", "load_shape", "dtype_bytes", "GIB"]

GIB = 1024 ** 3
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "fp8": 1, "float8": 1}
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def dtype_bytes(name: str | None) -> int | None:
    """Bytes per element of a dtype name ("bfloat16" -> 2, "fp8_e4m3" -> 1), None when unknown."""
    if not name:
        return None
    name = str(name).lower().removeprefix("torch.")
    return next((b for key, b in _DTYPE_BYTES.items() if name == key or name.startswith(key + "_")), None)


def _hub_dirs() -> list[Path]:
    env = os.environ
    dirs = [env.get("HF_HUB_CACHE"), env.get("HUGGINGFACE_HUB_CACHE")]
    if env.get("HF_HOME"):
        dirs.append(str(Path(env["HF_HOME"]) / "hub"))
    dirs.append(str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"))
    return [Path(d) for d in dirs if d]


def _from_cache(repo_id: str, hubs: list[Path]) -> Path | None:
    folder_name = "models--" + repo_id.replace("/", "--")
    for hub in hubs:
        repo = hub / folder_name
        ref = repo / "refs" / "main"
        pinned = repo / "snapshots" / ref.read_text().strip() / "config.json" if ref.is_file() else None
        if pinned and pinned.is_file():
            return pinned
        found = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    return None


def find_config(model: str) -> Path:
    """The ``config.json`` of ``model``: a file, a folder holding one, or a hub id in the local HF cache."""
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path / "config.json"
        raise ConfigError(f"{path} has no config.json")
    hubs = _hub_dirs()
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        cached = _from_cache(model, hubs)
        if cached:
            return cached
    looked = ", ".join(str(h) for h in hubs)
    raise ConfigError(f"no config.json for {model!r}: not a local path and not in the Hugging Face cache"
                      f" (looked in {looked}); vlaunch never downloads, fetch only the config with"
                      f" `huggingface-cli download {model} config.json`")


@dataclass(frozen=True)
class ModelShape:
    """What the memory math needs from a config.json."""

    source: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool
    dtype: str
    experts: int = 0
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_expert_intermediate: int = 0
    sparse_layers: int = 0
    vision_params: int = 0
    quant_bits: int | None = None
    max_position: int | None = None

    @property
    def dtype_bytes(self) -> int:
        """Bytes per weight element of the unquantised parts."""
        return dtype_bytes(self.dtype) or 2

    def params(self) -> dict[str, int]:
        """Parameter counts by part: embeddings (+ untied output head), attention, MLP, experts, norms, vision."""
        h, hd = self.hidden, self.head_dim
        attention = h * self.heads * hd * 2 + h * self.kv_heads * hd * 2
        dense = self.layers - self.sparse_layers
        experts = self.sparse_layers * (self.experts * 3 * h * self.expert_intermediate + h * self.experts
                                        + (3 * h * self.shared_expert_intermediate + h
                                           if self.shared_expert_intermediate else 0))
        return {"embeddings": self.vocab * h * (1 if self.tied_embeddings else 2),
                "attention": self.layers * attention, "mlp": dense * 3 * h * self.intermediate,
                "experts": experts, "norms": self.layers * 2 * h + h, "vision": self.vision_params}

    @property
    def total_params(self) -> int:
        """All parameters."""
        return sum(self.params().values())

    @property
    def active_params(self) -> int:
        """Parameters one token passes through (all of them for a dense model)."""
        if not self.experts:
            return self.total_params
        idle_experts = self.experts - self.experts_per_token
        unused = self.sparse_layers * idle_experts * 3 * self.hidden * self.expert_intermediate
        return self.total_params - unused

    def weight_bytes(self) -> int:
        """Bytes of all weights: linear layers at ``quant_bits`` when quantised, the rest at the dtype."""
        parts = self.params()
        if not self.quant_bits:
            return self.total_params * self.dtype_bytes
        linear = parts["attention"] + parts["mlp"] + parts["experts"]
        return (self.total_params - linear) * self.dtype_bytes + linear * self.quant_bits // 8

    def kv_bytes_per_token(self, element_bytes: int, tensor_parallel: int = 1) -> int:
        """KV-cache bytes one token takes on one GPU: K and V x layers x KV heads on that GPU x head dim."""
        heads_here = max(1, -(-self.kv_heads // tensor_parallel))
        return 2 * self.layers * heads_here * self.head_dim * element_bytes


def _moe(cfg: dict) -> dict:
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
    if not experts:
        return {}
    layers = cfg["num_hidden_layers"]
    step = cfg.get("decoder_sparse_step") or 1
    dense_only = set(cfg.get("mlp_only_layers") or [])
    sparse = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    return {"experts": experts, "experts_per_token": cfg.get("num_experts_per_tok") or 0,
            "expert_intermediate": cfg.get("moe_intermediate_size") or cfg.get("intermediate_size") or 0,
            "shared_expert_intermediate": cfg.get("shared_expert_intermediate_size") or 0, "sparse_layers": sparse}


def _vision(cfg: dict) -> int:
    """A rough count for a vision encoder: per block 4 h^2 (attention) + 2 h i (MLP)."""
    vision = cfg.get("vision_config") or {}
    depth = vision.get("depth") or vision.get("num_hidden_layers") or 0
    h = vision.get("hidden_size") or vision.get("embed_dim") or 0
    i = vision.get("intermediate_size") or 4 * h
    return depth * (4 * h * h + 2 * h * i)


def load_shape(model: str) -> ModelShape:
    """Read ``model``'s config.json into a :class:`ModelShape`; errors name the file and the missing fields."""
    path = find_config(model)
    try:
        top = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(top, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    cfg = {**top, **(top.get("text_config") or {})}
    if "kv_lora_rank" in cfg:
        raise ConfigError(f"{path}: multi-head latent attention (kv_lora_rank, DeepSeek-style) is not modelled by plan")
    missing = [k for k in _REQUIRED if not cfg.get(k)]
    moe = _moe(cfg) if not missing else {}
    if not cfg.get("intermediate_size") and not moe:
        missing.append("intermediate_size")
    if missing:
        raise ConfigError(f"{path}: lacks {', '.join(missing)}, which the memory math needs"
                          " (is this a decoder-only language model's config.json?)")
    quant = cfg.get("quantization_config") or {}
    bits = quant.get("bits") or quant.get("weight_bits") or (8 if quant.get("quant_method") == "fp8" else None)
    heads = cfg["num_attention_heads"]
    return ModelShape(
        source=str(path), layers=cfg["num_hidden_layers"], hidden=cfg["hidden_size"], heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads, head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
        intermediate=cfg.get("intermediate_size") or 0, vocab=cfg["vocab_size"],
        tied_embeddings=bool(top.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        dtype=str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"), vision_params=_vision(top),
        quant_bits=int(bits) if bits else None, max_position=cfg.get("max_position_embeddings"), **moe)
