"""Profiles: schema, layering and vLLM flag rendering."""

from .flags import server_argv, vllm_flags
from .layers import Resolved, available_profiles, cli_layer, resolve_profile, validate_options
from .model import Profile

__all__ = ["Profile", "Resolved", "available_profiles", "cli_layer", "resolve_profile", "server_argv",
           "validate_options", "vllm_flags"]
