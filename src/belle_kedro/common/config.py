"""Typed parameter blocks: a dataclass built from a mapping, strict about its keys.

Every default lives in ``conf/base/parameters_<pipeline>.yml``; code that takes a block
of parameters builds one of these dataclasses (no field has a default), so a missing or
misspelled key fails at once and names its dotted key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ParameterError(ValueError):
    """A parameter block that does not match its declaration; names the dotted key."""


def from_params(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """``cls(**values)`` for a dataclass ``cls``; an absent or unknown key names ``where.key``."""
    if not isinstance(values, Mapping):
        raise ParameterError(f"parameter '{where}' must be a mapping, got {values!r}")
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(f'{where}.{key}' for key in unknown)}; "
            f"'{where}' takes {', '.join(names)}"
        )
    missing = [name for name in names if name not in values]
    if missing:
        raise ParameterError(
            f"missing parameter(s) {', '.join(f'{where}.{key}' for key in missing)}"
        )
    return cls(**values)
