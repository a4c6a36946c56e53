"""Backends by name: each registers its settings class and how to open it.

A backend module calls :func:`register` when imported; the built-in ones (``openai``,
``local``) are imported on the first lookup, and none of them imports torch or
transformers before it generates. Adding a backend is one module in ``llm/`` that
registers itself, plus its sub-block in the YAML.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from belle_kedro.common.config import Settings
    from belle_kedro.llm.base import ApiKind, LLMBackend
    from belle_kedro.llm.settings import BatchSettings

# (the backend's own settings, the block's model, the prompt API, credentials, where)
Opener = Callable[[Any, "str | None", "ApiKind", Mapping[str, Any], str], "LLMBackend"]


@dataclass(frozen=True)
class RegisteredBackend:
    """A backend's settings class, its opener, and its Batch API block if it has one."""

    settings: type[Settings]
    open: Opener
    batch: Callable[[Any], BatchSettings] | None = None


_BUILTIN_MODULES = ("belle_kedro.llm.openai_backend", "belle_kedro.llm.local_backend")
_REGISTRY: dict[str, RegisteredBackend] = {}


def register(
    name: str,
    settings: type[Settings],
    open: Opener,
    *,
    batch: Callable[[Any], BatchSettings] | None = None,
) -> None:
    """Make ``name`` usable as ``backend: <name>`` with a ``<name>:`` sub-block."""
    _REGISTRY[name] = RegisteredBackend(settings, open, batch)


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def registered_names() -> list[str]:
    """Every registered backend name, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def lookup(name: str) -> RegisteredBackend:
    """The registered backend ``name`` (KeyError when there is none)."""
    _load_builtins()
    return _REGISTRY[name]
