"""Check rendered flags against vLLM's own argument parser, when vLLM is importable here.

Importing vLLM takes seconds, so only ``up`` (and ``vlaunch check``) call this, never ``render``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io

from .errors import ConfigError

__all__ = ["vllm_available", "check_flags"]


def vllm_available() -> bool:
    """True when ``import vllm`` would find a package."""
    return importlib.util.find_spec("vllm") is not None


def _parser():
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # vLLM before the launchers package
        from vllm.entrypoints.openai.cli_args import make_arg_parser
    return make_arg_parser(FlexibleArgumentParser())


def check_flags(model: str, flags: list[str]) -> None:
    """Raise :class:`ConfigError` with vLLM's words when it would reject ``flags``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            _, unknown = _parser().parse_known_args([model, *flags])
        except SystemExit:
            lines = [x for x in err.getvalue().splitlines() if x.strip()]
            raise ConfigError(f"vLLM rejects the flags: {lines[-1] if lines else 'invalid arguments'}") from None
    if unknown:
        raise ConfigError(f"vLLM does not know {' '.join(unknown)} (checked with the vLLM installed here;"
                          " --no-check-flags skips this)")
